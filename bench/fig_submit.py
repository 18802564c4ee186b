"""Figure 2: submit of one full job.

Setup (untimed): a queued job of N validation requests built from generated tickets (about 4 KB
each, so at full size the job exceeds 256 MB and splits into several batches).

Measured: ``Engine.submit()`` in a fresh process: reading the payload, chunking it under the
100,000-request and 256 MB limits, and one create call per chunk through the real SDK to a sandbox
in another process. The figure judged is the client's: the wall time less the time the sandbox
spent on each create once it had the body (parsing 256 MB of JSON in Python, which a real API
does on its own machines); the full wall time is in the notes.

Baseline: ``json.dumps`` of the same requests (the ``custom_id`` and ``params`` of every payload line).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import batch_ops.providers.anthropic  # noqa: F401 - imported before the clock starts
from batch_ops.commands._common import default_provider
from batch_ops.config import load_config
from batch_ops.engine import Engine, RunSummary
from batch_ops.paths import Layout
from batch_ops.phases import all_phases
from batch_ops.queue import read_queue
from bench import corpus
from bench.context import Context
from bench.harness import Row, Sandbox, rate, run_child

JOB_ID = "job-20260101-0002"
RSS_ALLOWANCE_MB = 100


def submit(repo: str) -> dict[str, Any]:
    layout = Layout(root=Path(repo))
    config = load_config(layout.root)
    engine = Engine(layout, config, all_phases(), default_provider)
    summary = RunSummary()
    engine.submit(summary)
    return {"batches": summary.submitted_batches, "notes": summary.notes}


def baseline(path: str) -> dict[str, Any]:
    spent = 0.0
    n = 0
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            data = json.loads(line)
            request = {"custom_id": data["custom_id"], "params": data["params"]}
            started = time.perf_counter()
            json.dumps(request)
            spent += time.perf_counter() - started
            n += 1
    return {"wall_s": spent, "requests": n}


def run(ctx: Context) -> list[Row]:
    n = ctx.n(100_000, 100)
    source = ctx.big_backlog()
    repo = corpus.empty_repo(ctx.workdir, "fig2", source)
    payload = repo / ".backlog-ops" / "payloads" / f"{JOB_ID}.jsonl"
    count = corpus.write_payload(payload, corpus.validation_lines(source, n))
    chunks = corpus.chunk_sizes(payload)
    corpus.add_job(repo, payload.name, count, job_id=JOB_ID)
    biggest_mb = max(size for _, size in chunks) / 2**20
    with Sandbox(ctx.workdir, processing_seconds=3600) as sandbox:
        measured = run_child("bench.fig_submit:submit", {"repo": str(repo)}, env={"ANTHROPIC_BASE_URL": sandbox.url})
        calls = sandbox.calls()
        server_s = sandbox.busy_seconds()["create"]
    base = run_child("bench.fig_submit:baseline", {"path": str(payload)})
    jobs, _ = read_queue(Layout(root=repo))
    job = jobs[0]
    sent = [b for b in job.batches if b.id]
    correct = (
        calls["create"] == len(chunks)
        and len(sent) == len(chunks)
        and sum(b.request_count for b in sent) == count
        and job.round_submitted
    )
    total_mb = sum(size for _, size in chunks) / 2**20
    rss_bar = biggest_mb + RSS_ALLOWANCE_MB
    notes = [
        f"fig 2: {len(chunks)} batch(es) of "
        + ", ".join(f"{c:,} requests / {s / 2**20:,.0f} MB" for c, s in chunks)
        + f"; create calls {calls['create']}; job {job.status}; client CPU {measured.cpu_s:.2f}s",
        f"fig 2: wall {measured.wall_s:.2f}s of which the sandbox parsing and storing the bodies "
        f"{server_s:.2f}s; wall / baseline {measured.wall_s / base.wall_s:.2f}",
    ]
    client_s = measured.wall_s - server_s
    if not correct:
        notes.append("fig 2: WRONG OUTCOME: the batches created do not match the chunks expected")
    ratio = client_s / base.wall_s
    return [
        Row(
            figure="2",
            what="submit one full job (client)",
            size=f"{count:,} requests, {total_mb:,.0f} MB",
            wall_s=client_s,
            rss_mb=measured.peak_rss_mb,
            throughput=rate(total_mb, client_s, "MB"),
            baseline_s=base.wall_s,
            ratio=ratio,
            bar=f"ratio <= 3, RSS <= {rss_bar:,.0f} MB",
            ok=correct and ratio <= 3 and measured.peak_rss_mb <= rss_bar,
            notes=notes,
        )
    ]
