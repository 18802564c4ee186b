"""``llmOps.budget``: refuse a job that would pass the hard stop; show the warning state."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from batch_ops.budget import estimate_request_usd
from batch_ops.config import DEFAULT_MODELS
from batch_ops.ledger import LedgerLine, append_lines
from batch_ops.paths import Layout
from batch_ops.queue import iso, read_queue, utcnow
from batch_ops.sandbox import SandboxServer
from tests.conftest import SAMPLE

VALIDATION = ("--phase", "bulk-ticket-validation")


def _budget(repo: Path, monthly: float, **extra: float) -> None:
    path = repo / "backlog.config.json"
    data = json.loads(path.read_text())
    data["llmOps"]["budget"] = {"monthlyUsd": monthly, **extra}
    path.write_text(json.dumps(data, indent=2))


def _spent(repo: Path, usd: float, *, month: str | None = None) -> None:
    stamp = iso(utcnow()) if month is None else f"{month}-15T00:00:00Z"
    line = LedgerLine(
        timestamp=stamp, workflow="refinement", phase="refinement", job_id="job-x", batch_id="b", custom_id="c",
        ticket_id=None, provider="anthropic", model_alias="cheap", model="claude-haiku-4-5", mode="batch",
        input_tokens=1, output_tokens=1, cache_creation_input_tokens=0, cache_read_input_tokens=0,
        cost_usd=usd, interactive_cost_usd=2 * usd, savings_usd=usd, status="succeeded",
    )  # fmt: skip
    append_lines(Layout(repo).ledger_file, [line])


def test_estimate_is_an_upper_bound_from_characters_and_max_output() -> None:
    params = {
        "model": "m",
        "max_tokens": 1000,
        "system": "s" * 400,
        "messages": [{"role": "user", "content": "u" * 400}],
    }
    cheap = DEFAULT_MODELS["cheap"]
    # 800 characters = 200 tokens at 4 per token, plus 1000 output tokens; batch halves it.
    assert estimate_request_usd(params, cheap, "interactive") == (200 * 1.0 + 1000 * 5.0) / 1e6
    assert estimate_request_usd(params, cheap, "batch") == (200 * 1.0 + 1000 * 5.0) / 1e6 / 2


def test_a_job_past_the_hard_stop_is_refused_with_exit_2(cli: Any, sample_repo: Path, sandbox: SandboxServer) -> None:
    _budget(sample_repo, 0.001)
    res = cli(sample_repo, "enqueue", *VALIDATION)
    assert res.code == 2
    assert "budget:" in res.err and "hard stop" in res.err and "not enqueued" in res.err
    jobs, _ = read_queue(Layout(sample_repo))
    assert jobs == []
    assert cli(sample_repo, "cycle", *VALIDATION).code == 2
    assert sandbox.calls["create"] == 0 and sandbox.calls["messages"] == 0


def test_jobs_that_fit_go_ahead_and_queued_estimates_count(cli: Any, sample_repo: Path) -> None:
    _budget(sample_repo, 1000.0)
    assert cli(sample_repo, "enqueue", *VALIDATION).code == 0
    jobs, _ = read_queue(Layout(sample_repo))
    cheap, frontier = sorted(jobs, key=lambda j: j.model_alias)
    assert cheap.estimated_cost_usd and frontier.estimated_cost_usd
    # Room for the cheap job but not for both: the frontier one is refused, the other written.
    room = cheap.estimated_cost_usd + frontier.estimated_cost_usd / 2
    fresh = sample_repo.parent / "fresh"
    shutil.copytree(SAMPLE, fresh, ignore=shutil.ignore_patterns("README.md"))
    _budget(fresh, room)
    res = cli(fresh, "cycle", *VALIDATION, "--wait", "--poll", "0.1", "--timeout", "30")
    assert res.code == 2 and "bulk-ticket-validation/frontier" in res.err
    jobs, _ = read_queue(Layout(fresh))
    assert [(j.model_alias, j.status) for j in jobs] == [("cheap", "completed")]


def test_status_and_report_show_the_warning_state(cli: Any, sample_repo: Path) -> None:
    _budget(sample_repo, 10.0, warnRatio=0.7)
    _spent(sample_repo, 7.5)
    _spent(sample_repo, 500.0, month="2020-01")  # another month does not count
    status = cli(sample_repo, "status", "--json")
    data = json.loads(status.out)["budget"]
    assert data["state"] == "warning" and abs(data["spent_usd"] - 7.5) < 1e-9
    human = cli(sample_repo, "status")
    assert "WARNING: past warnRatio 70%" in human.out
    assert cli(sample_repo, "report").code == 0
    assert "WARNING" in (sample_repo / ".backlog-ops/reports/cost.md").read_text()
    _spent(sample_repo, 3.0)
    assert "HARD STOP" in cli(sample_repo, "status").out
    assert cli(sample_repo, "enqueue", *VALIDATION).code == 2
