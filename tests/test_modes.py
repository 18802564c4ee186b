"""Interactive mode below forceBatchWhenQueueOver, batch at or above it, and the flags that force either."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from batch_ops.ledger import iter_ledger
from batch_ops.paths import Layout
from batch_ops.phases.io import iter_settled
from batch_ops.providers.base import ProviderResult
from batch_ops.queue import read_queue
from batch_ops.sandbox import SandboxServer

VALIDATION = ("--phase", "bulk-ticket-validation")


def _set_threshold(repo: Path, value: int) -> None:
    path = repo / "backlog.config.json"
    data = json.loads(path.read_text())
    data["llmOps"]["batchPolicy"]["forceBatchWhenQueueOver"] = value
    path.write_text(json.dumps(data, indent=2))


def _results(repo: Path) -> dict[str, tuple[str, list[str]]]:
    layout = Layout(repo)
    jobs, _ = read_queue(layout)
    out: dict[str, tuple[str, list[str]]] = {}
    for job in jobs:
        assert job.result_path is not None
        for res in iter_settled(layout.resolve_ops_path(job.result_path)):
            out[res.custom_id] = (res.status, sorted(res.output or {}))
    return out


def test_interactive_and_batch_give_the_same_results_file_apply_and_ledger_shape(
    cli: Any, sample_repo: Path, sandbox: SandboxServer, tmp_path: Path
) -> None:
    batch_repo = tmp_path / "batch"
    shutil.copytree(sample_repo, batch_repo)
    res = cli(sample_repo, "enqueue", *VALIDATION, "--interactive")
    assert res.code == 0 and "interactive" in res.out
    assert cli(sample_repo, "submit").code == 0
    assert sandbox.calls["messages"] == 11 and sandbox.calls["create"] == 0
    jobs, _ = read_queue(Layout(sample_repo))
    assert {j.mode for j in jobs} == {"interactive"} and all(j.status == "completed" for j in jobs)

    assert cli(batch_repo, "cycle", *VALIDATION, "--batch", "--wait", "--poll", "0.1", "--timeout", "30").code == 0
    assert sandbox.calls["create"] == 2
    assert _results(sample_repo).keys() == _results(batch_repo).keys()
    assert _results(sample_repo) == _results(batch_repo)  # same statuses, same answer shapes
    for repo in (sample_repo, batch_repo):
        assert "| SEC-002 | requires-frontier |" in (repo / ".backlog-ops/reports/validation.md").read_text()

    interactive = list(iter_ledger(Layout(sample_repo).ledger_file))
    batch = list(iter_ledger(Layout(batch_repo).ledger_file))
    assert {line.mode for line in interactive} == {"interactive"} and {line.mode for line in batch} == {"batch"}
    assert sorted(line.custom_id for line in interactive) == sorted(line.custom_id for line in batch)
    assert interactive[0].model_dump().keys() == batch[0].model_dump().keys()
    for line in interactive:
        assert line.savings_usd == 0 and line.cost_usd == line.interactive_cost_usd
        assert line.batch_id is not None and line.batch_id.startswith("interactive-")
    # Interactive requests run back to back, so the cache the rule chose (5 minutes) is read after one write.
    cheap = [line for line in interactive if line.model_alias == "cheap"]
    assert sum(1 for line in cheap if line.cache_creation_input_tokens) == 1
    assert sum(1 for line in cheap if line.cache_read_input_tokens) == len(cheap) - 1


def test_below_the_threshold_runs_interactively_unless_batch_is_forced(cli: Any, sample_repo: Path) -> None:
    _set_threshold(sample_repo, 12)  # validation has 11 requests across its two jobs
    assert cli(sample_repo, "enqueue", *VALIDATION).code == 0
    jobs, _ = read_queue(Layout(sample_repo))
    assert [j.mode for j in jobs] == ["interactive", "interactive"]

    _set_threshold(sample_repo, 11)
    assert cli(sample_repo, "enqueue", "--phase", "refinement").code == 0
    jobs, _ = read_queue(Layout(sample_repo))
    assert [j.mode for j in jobs if j.phase == "refinement"] == ["batch", "batch"]  # 11 is not below 11

    _set_threshold(sample_repo, 1000)
    assert cli(sample_repo, "enqueue", "--phase", "duplicate-detection", "--batch").code == 0
    jobs, _ = read_queue(Layout(sample_repo))
    assert [j.mode for j in jobs if j.phase == "duplicate-detection"] == ["batch"]


def test_interactive_run_resumes_after_a_crash_without_resending(
    cli: Any, sample_repo: Path, sandbox: SandboxServer
) -> None:
    assert cli(sample_repo, "enqueue", *VALIDATION, "--interactive").code == 0
    layout = Layout(sample_repo)
    jobs, _ = read_queue(layout)
    cheap = next(j for j in jobs if j.model_alias == "cheap")
    first = json.loads(layout.resolve_ops_path(cheap.payload_path).read_text().splitlines()[0])
    # What a run killed after its first answer leaves behind: one fsynced line and a torn one.
    part = layout.results_dir / cheap.id / "r1-c0.results.jsonl.part"
    part.parent.mkdir(parents=True)
    done = ProviderResult(custom_id=first["custom_id"], outcome="succeeded", text='{"valid": true}')
    part.write_text(done.model_dump_json() + '\n{"custom_id": "btv-tor')
    assert cli(sample_repo, "submit").code == 0
    assert sandbox.calls["messages"] == 11 - 1
    jobs, _ = read_queue(layout)
    assert all(j.status == "completed" for j in jobs)
    settled = {r.custom_id: r for r in iter_settled(layout.results_dir / f"{cheap.id}.jsonl")}
    assert len(settled) == cheap.request_count
    # The recovered answer is kept, and fails on its own merits (it lacks the schema's fields).
    assert settled[first["custom_id"]].status == "failed" and "verdict schema" in (
        settled[first["custom_id"]].error or ""
    )
