"""Figure 1: reconcile of one full batch.

Setup (untimed): a job of N validation requests built from generated tickets is submitted to the
sandbox as one batch, with a scenario that makes some results ``errored`` (overloaded and invalid
request) and some ``expired``; ``maxRetries`` is 0 so every result settles in this one pass. Once
the batch has ended, its results are downloaded once with plain HTTP to a local file: that file is
the baseline's input, and the download also lets the sandbox render the results before the clock
starts.

Measured: ``Engine.reconcile()`` in a fresh process: the retrieve call, the results stream through
the real SDK, the join on ``custom_id`` against the payload, settling, the ledger append, the
job's results file, the phase's apply step (the validation report; the repository's backlog holds
no pending tickets at this point, so the report is short: the report over a large backlog is the
scan and triage cost of figure 3), and the queue writes.

Baseline: reading the same JSONL from the local file and ``json.loads``-ing every line.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from typing import Any

import batch_ops.providers.anthropic  # noqa: F401 - imported before the clock starts
from batch_ops.commands._common import default_provider
from batch_ops.config import load_config
from batch_ops.engine import Engine, RunSummary
from batch_ops.paths import Layout
from batch_ops.phases import all_phases
from batch_ops.queue import JobRecord, read_queue
from bench import corpus
from bench.context import Context
from bench.harness import Row, Sandbox, paired, rate, run_child

SCENARIO = {"requests": {"errored_every": 20, "invalid_every": 50, "expired_every": 33}}
JOB_ID = "job-20260101-0001"


def reconcile(repo: str) -> dict[str, Any]:
    layout = Layout(root=Path(repo))
    config = load_config(layout.root)
    phases = all_phases()
    spent = {"apply_s": 0.0}
    for phase in phases.values():
        # Instrumentation only: time the phase's apply step (it reads the job's results back).
        def timed(*args: Any, _apply: Any = phase.apply) -> Any:
            started = time.perf_counter()
            try:
                return _apply(*args)
            finally:
                spent["apply_s"] += time.perf_counter() - started

        phase.apply = timed  # type: ignore[method-assign,assignment]
    engine = Engine(layout, config, phases, default_provider)
    summary = RunSummary()
    engine.reconcile(summary)
    return {
        "settled": summary.settled,
        "ledger_lines": summary.ledger_lines,
        "completed": summary.completed_jobs,
        **spent,
    }


def baseline(path: str) -> dict[str, Any]:
    n = 0
    with open(path, "rb") as fh:
        for line in fh:
            json.loads(line)
            n += 1
    return {"lines": n}


def _outcome(repo: Path) -> tuple[JobRecord | None, int]:
    """The job as the reconcile left it, and the ledger's line count."""
    jobs, _ = read_queue(Layout(root=repo))
    ledger = repo / ".backlog-ops" / "usage-ledger.jsonl"
    lines = len(ledger.read_bytes().splitlines()) if ledger.exists() else 0
    return (jobs[0] if jobs else None), lines


def _settled_once(outcome: tuple[JobRecord | None, int], count: int) -> bool:
    """The job completed and every result settled exactly once, with one ledger line each."""
    job, lines = outcome
    return job is not None and job.status == "completed" and lines == count and sum(job.settled.values()) == count


def run(ctx: Context) -> list[Row]:
    n = ctx.n(100_000, 100)
    source = ctx.big_backlog()
    repo = corpus.empty_repo(
        ctx.workdir, "fig1", source, policy={"retryPolicy": {"maxRetries": 0, "backoffMultiplier": 2.0}}
    )
    payload = repo / ".backlog-ops" / "payloads" / f"{JOB_ID}.jsonl"
    count = corpus.write_payload(payload, corpus.validation_lines(source, n))
    results = ctx.workdir / "fig1-results.jsonl"
    with Sandbox(ctx.workdir, processing_seconds=0.5, scenario=SCENARIO, max_body_bytes=1 << 40) as sandbox:
        ctx.say(f"fig 1: submitting {count:,} requests as one batch ({payload.stat().st_size / 1e6:,.0f} MB)")
        batch = sandbox.create(corpus.body_parts(payload))
        corpus.add_job(repo, payload.name, count, job_id=JOB_ID, batch_id=batch["id"])
        sandbox.wait_ended(batch["id"])
        started = time.perf_counter()
        size = sandbox.download(batch["id"], results)
        ctx.say(f"fig 1: first download (sandbox renders) {size / 1e6:,.0f} MB in {time.perf_counter() - started:.1f}s")
        # The reconcile consumes the repository's state: each pair starts from a copy of it.
        pristine = repo.with_name("fig1-before-reconcile")
        shutil.rmtree(pristine, ignore_errors=True)
        shutil.copytree(repo, pristine)
        calls: list[dict[str, int]] = []
        outcomes: list[bool] = []

        def fresh_state(i: int) -> None:
            if i:
                outcomes.append(_settled_once(_outcome(repo), count))
                shutil.rmtree(repo)
                shutil.copytree(pristine, repo)
            calls.append(sandbox.calls())

        pair = paired(
            lambda: run_child(
                "bench.fig_reconcile:reconcile", {"repo": str(repo)}, env={"ANTHROPIC_BASE_URL": sandbox.url}
            ),
            lambda: run_child("bench.fig_reconcile:baseline", {"path": str(results)}),
            ctx.repeats,
            prepare=fresh_state,
        )
        # The sandbox's counts for the last reconcile alone (they are cumulative).
        after = sandbox.calls()
        sandbox_calls = {k: after.get(k, 0) - calls[-1].get(k, 0) for k in after}
    last = _outcome(repo)
    outcomes.append(_settled_once(last, count))
    shutil.rmtree(pristine, ignore_errors=True)
    measured, base = pair.measured, pair.base
    job, ledger_lines = last
    assert job is not None, "the reconcile left no job"
    notes = [
        f"fig 1: {size / count:,.0f} bytes per result line, {size / 1e6:,.0f} MB; outcomes {job.settled}; "
        f"job {job.status}; ledger lines {ledger_lines:,}; sandbox calls "
        f"retrieve {sandbox_calls['retrieve']}, results {sandbox_calls['results']}; "
        f"client CPU {measured.cpu_s:.2f}s vs baseline CPU {base.cpu_s:.2f}s (CPU ratio "
        f"{measured.cpu_s / max(base.cpu_s, 1e-9):.2f})",
    ]
    apply_s = float(measured.info["apply_s"])
    notes.append(
        f"fig 1: of the {measured.wall_s:.2f}s, the validation phase's apply (reading the {count:,} settled "
        f"results back) took {apply_s:.2f}s; without it the ratio is {(measured.wall_s - apply_s) / base.wall_s:.2f}"
    )
    notes.append(f"fig 1: {pair.note()}")
    correct = all(outcomes)
    if not correct:
        notes.append("fig 1: WRONG OUTCOME: a reconcile did not settle every result exactly once")
    ratio = pair.ratio
    return [
        Row(
            figure="1",
            what="reconcile one full batch",
            size=f"{count:,} results, {size / 1e6:,.0f} MB",
            wall_s=measured.wall_s,
            rss_mb=pair.peak_rss_mb,
            throughput=rate(count, measured.wall_s, "results"),
            baseline_s=base.wall_s,
            ratio=ratio,
            bar="RSS <= 150 MB, ratio <= 3",
            ok=correct and pair.peak_rss_mb <= 150 and ratio <= 3,
            notes=notes,
        )
    ]
