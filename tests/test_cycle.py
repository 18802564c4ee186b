"""The walking skeleton end to end: real CLI, real SDK over HTTP, the sandbox as the API."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from batch_ops.cli import main
from batch_ops.ledger import iter_ledger
from batch_ops.paths import Layout
from batch_ops.queue import read_queue
from batch_ops.sandbox import SandboxServer
from tests.conftest import TEST_KEY


def _reconcile_until_done(cli: Any, repo: Path, limit: float = 30.0) -> None:
    end = time.monotonic() + limit
    while time.monotonic() < end:
        assert cli(repo, "reconcile").code == 0
        jobs, _ = read_queue(Layout(repo))
        if jobs and all(j.terminal for j in jobs):
            return
        time.sleep(0.2)
    raise AssertionError("jobs did not finish")


def test_enqueue_submit_reconcile_completes_every_job(cli: Any, sample_repo: Path, sandbox: SandboxServer) -> None:
    res = cli(sample_repo, "enqueue", "--phase", "bulk-ticket-validation")
    assert res.code == 0, res.err
    assert "FEAT-033" in res.err and "broken YAML" in res.err  # reported, not fatal
    assert cli(sample_repo, "submit").code == 0
    _reconcile_until_done(cli, sample_repo)

    layout = Layout(sample_repo)
    jobs, bad = read_queue(layout)
    assert not bad
    assert {j.model_alias for j in jobs} == {"cheap", "frontier"}
    assert all(j.status == "completed" for j in jobs)
    lines = list(iter_ledger(layout.ledger_file))
    assert len(lines) == sum(j.request_count for j in jobs)
    assert len({(line.job_id, line.custom_id) for line in lines}) == len(lines)
    for line in lines:
        assert line.mode == "batch" and line.status == "succeeded"
        assert line.cost_usd * 2 == line.interactive_cost_usd
        assert line.savings_usd == line.interactive_cost_usd - line.cost_usd
        assert line.input_tokens > 0 and line.output_tokens > 0
    report = (sample_repo / ".backlog-ops/reports/validation.md").read_text()
    assert "| SEC-002 | requires-frontier |" in report
    data = json.loads((sample_repo / ".backlog-ops/reports/validation.json").read_text())
    frontier = next(r for r in data if r["ticket_id"] == "SEC-002")
    assert frontier["model_verdict"] is not None and isinstance(frontier["model_verdict"]["valid"], bool)
    no_llm = next(r for r in data if r["ticket_id"] == "FEAT-015")
    assert no_llm["bucket"] == "no-llm" and no_llm["model_verdict"] is None


def test_running_every_command_twice_is_harmless(cli: Any, sample_repo: Path, sandbox: SandboxServer) -> None:
    # One phase: refinement edits tickets, which rightly makes other phases see new work.
    for _ in range(2):
        assert cli(sample_repo, "enqueue", "--phase", "bulk-ticket-validation").code == 0
        assert cli(sample_repo, "submit").code == 0
    assert sandbox.calls["create"] == 2
    _reconcile_until_done(cli, sample_repo)
    layout = Layout(sample_repo)
    before_ledger = layout.ledger_file.read_bytes()
    before_queue = layout.queue_file.read_bytes()
    for _ in range(2):
        assert cli(sample_repo, "reconcile").code == 0
        res = cli(sample_repo, "enqueue", "--phase", "bulk-ticket-validation")
        assert res.code == 0 and "nothing new" in res.out
        assert cli(sample_repo, "submit").code == 0
    assert layout.ledger_file.read_bytes() == before_ledger
    assert layout.queue_file.read_bytes() == before_queue
    assert sandbox.calls["create"] == 2


def test_changed_ticket_is_enqueued_again(cli: Any, sample_repo: Path, sandbox: SandboxServer) -> None:
    validation = ("--phase", "bulk-ticket-validation")
    assert cli(sample_repo, "cycle", *validation, "--wait", "--poll", "0.2", "--timeout", "30").code == 0
    path = sample_repo / "backlog/data/pending/FEAT-026-expense-receipts.md"
    path.write_bytes(path.read_bytes() + b"\nOne more line.\n")
    res = cli(sample_repo, "enqueue", *validation)
    assert res.code == 0 and "queued job-" in res.out
    jobs, _ = read_queue(Layout(sample_repo))
    newest = jobs[-1]
    assert newest.request_count == 1 and newest.model_alias == "cheap"


def test_status_json_shows_jobs_and_totals(cli: Any, sample_repo: Path) -> None:
    validation = ("--phase", "bulk-ticket-validation")
    assert cli(sample_repo, "cycle", *validation, "--wait", "--poll", "0.2", "--timeout", "30").code == 0
    res = cli(sample_repo, "status", "--json")
    data = json.loads(res.out)
    assert data["counts"] == {"completed": 2}
    assert data["ledger"]["requests"] == 11
    assert abs(data["ledger"]["cost_usd"] * 2 - data["ledger"]["interactive_cost_usd"]) < 1e-12
    human = cli(sample_repo, "status")
    assert "completed" in human.out and "ledger: 11 request(s)" in human.out


def test_missing_api_key_is_one_line_not_a_traceback(
    sample_repo: Path, monkeypatch: Any, capsys: Any, sandbox: SandboxServer
) -> None:
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    monkeypatch.setenv("ANTHROPIC_BASE_URL", sandbox.url)
    assert main(["enqueue", "--repo", str(sample_repo)]) == 0  # zero tokens: no key needed
    capsys.readouterr()
    assert main(["submit", "--repo", str(sample_repo)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["batch-ops: ANTHROPIC_API_KEY is not set (use `batch-ops demo` to try the sandbox without one)"]


def test_against_a_separately_served_sandbox(tmp_path: Path) -> None:
    """`batch-ops sandbox serve` in its own process; each command a separate process too."""
    from batch_ops.testing.ticketgen import generate_backlog

    repo = tmp_path / "repo"
    generate_backlog(repo, 60, duplicates=3, seed=7)
    server = subprocess.Popen(
        [sys.executable, "-m", "batch_ops", "sandbox", "serve", "--port", "0", "--processing-seconds", "0.5"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None
        line = server.stdout.readline()
        assert line.startswith("sandbox listening on http://"), line
        url = line.rsplit(" ", 1)[-1].strip()
        env = {**os.environ, "ANTHROPIC_BASE_URL": url, "ANTHROPIC_API_KEY": TEST_KEY}

        def run(*args: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run(
                [sys.executable, "-m", "batch_ops", *args, "--repo", str(repo)],
                env=env, capture_output=True, text=True, timeout=120,
            )  # fmt: skip

        assert run("enqueue", "--phase", "bulk-ticket-validation").returncode == 0
        assert run("submit").returncode == 0
        end = time.monotonic() + 60
        while time.monotonic() < end:
            assert run("reconcile").returncode == 0
            jobs, _ = read_queue(Layout(repo))
            if all(j.terminal for j in jobs):
                break
            time.sleep(0.3)
        jobs, _ = read_queue(Layout(repo))
        assert jobs and all(j.status == "completed" for j in jobs)
        lines = list(iter_ledger(Layout(repo).ledger_file))
        assert len(lines) == sum(j.request_count for j in jobs)
        assert all(line.cost_usd * 2 == line.interactive_cost_usd for line in lines)
        status = run("status", "--json")
        assert status.returncode == 0 and TEST_KEY not in status.stdout + status.stderr
    finally:
        server.terminate()
        server.wait(timeout=10)


def test_demo_runs_to_the_end(tmp_path: Path, capsys: Any) -> None:
    assert main(["demo", "--dir", str(tmp_path / "demo"), "--processing-seconds", "0.2"]) == 0
    out = capsys.readouterr().out
    assert "requires-frontier" in out and "completed" in out and "saved $" in out
    assert (tmp_path / "demo/.backlog-ops/reports/validation.md").exists()
