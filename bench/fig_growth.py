"""Figure 5: a large queue and a large ledger.

Setup (untimed): a repository whose queue holds J jobs (all completed validation jobs with their
results files, but one, which is in flight with a small batch that has ended in the sandbox) and
whose usage ledger holds L lines.

Measured, each in a fresh process through the real CLI entry point: ``batch-ops status``,
``batch-ops report`` (once that command exists), and one ``batch-ops reconcile`` that has exactly
one job to settle. After the reconcile, the ledger must be the same file (same inode) with the old
bytes unchanged and the new lines appended.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import json
import os
from pathlib import Path
from typing import Any

import batch_ops.providers.anthropic  # noqa: F401 - the SDK import is not the growth being measured
from batch_ops.cli import main
from batch_ops.paths import Layout
from batch_ops.queue import BatchRef, JobRecord, read_queue
from bench import corpus
from bench.context import Context
from bench.harness import Row, Sandbox, rate, run_child

BAR_S = 2.0


def command(repo: str, argv: list[str]) -> dict[str, Any]:
    with open(os.devnull, "w", encoding="utf-8") as sink, contextlib.redirect_stdout(sink):
        code = main([argv[0], "--repo", repo, *argv[1:]])
    if code != 0:
        raise RuntimeError(f"batch-ops {' '.join(argv)} exited {code}")
    return {"exit": code}


def rebuild(repo: str) -> dict[str, Any]:
    from batch_ops.ledger import refresh_summary

    summary = refresh_summary(Layout(root=Path(repo)).ledger_file)
    return {"requests": summary.totals()["requests"]}


def _day(k: int) -> str:
    month0, dom = divmod(k, 28)
    return f"{2024 + month0 // 12:04d}{month0 % 12 + 1:02d}{dom + 1:02d}"


def _write_history(repo: Path, n_jobs: int, n_lines: int, ticket_ids: list[str]) -> None:
    layout = Layout(root=repo)
    layout.results_dir.mkdir(parents=True, exist_ok=True)
    queue_lines = []
    for k in range(n_jobs):
        day = _day(k // 4)
        job_id = f"job-{day}-{k % 4 + 1:04d}"
        stamp = f"{day[:4]}-{day[4:6]}-{day[6:]}T03:00:00Z"
        result_path = layout.results_dir / f"{job_id}.jsonl"
        picked = [ticket_ids[(k * 2 + j) % len(ticket_ids)] for j in range(2)]
        result_path.write_text(
            "".join(
                json.dumps(
                    {
                        "custom_id": f"btv-{tid}",
                        "status": "succeeded",
                        "meta": {"ticket_id": tid},
                        "output": {"valid": True, "summary": "fine", "findings": []},
                        "batch_id": f"msgbatch_{k:08d}",
                        "usage": {"input_tokens": 900, "output_tokens": 120},
                    }
                )
                + "\n"
                for tid in picked
            ),
            encoding="utf-8",
        )
        job = JobRecord(
            id=job_id,
            workflow="bulk-ticket-validation",
            phase="bulk-ticket-validation",
            payload_path=f".backlog-ops/payloads/{job_id}.jsonl",
            model_alias="cheap",
            status="completed",
            attempts=1,
            created_at=stamp,
            updated_at=stamp,
            result_path=layout.rel(result_path),
            request_count=2,
            batches=[
                BatchRef(
                    id=f"msgbatch_{k:08d}",
                    request_count=2,
                    status="settled",
                    ledger_state="done",
                    intent_at=stamp,
                    submitted_at=stamp,
                    ended_at=stamp,
                )
            ],
            round_submitted=True,
            settled={"succeeded": 2},
        )
        queue_lines.append(job.model_dump_json() + "\n")
    layout.queue_file.write_text("".join(queue_lines), encoding="utf-8")
    with open(layout.ledger_file, "w", encoding="utf-8") as fh:
        for i in range(n_lines):
            k = i * n_jobs // max(n_lines, 1)
            day = _day(k // 4)
            fh.write(
                json.dumps(
                    {
                        "timestamp": f"{day[:4]}-{day[4:6]}-{day[6:]}T03:10:00Z",
                        "workflow": "bulk-ticket-validation",
                        "phase": "bulk-ticket-validation",
                        "job_id": f"job-{day}-{k % 4 + 1:04d}",
                        "batch_id": f"msgbatch_{k:08d}",
                        "custom_id": f"btv-{ticket_ids[i % len(ticket_ids)]}-{i}",
                        "ticket_id": ticket_ids[i % len(ticket_ids)],
                        "provider": "anthropic",
                        "model_alias": "cheap" if i % 3 else "frontier",
                        "model": "claude-haiku-4-5" if i % 3 else "claude-opus-4-6",
                        "mode": "batch" if i % 10 else "interactive",
                        "input_tokens": 900 + i % 300,
                        "output_tokens": 120 + i % 50,
                        "cache_creation_input_tokens": 0,
                        "cache_read_input_tokens": 0,
                        "cost_usd": 0.0005,
                        "interactive_cost_usd": 0.001,
                        "savings_usd": 0.0005,
                        "status": "succeeded",
                        "attempts": 1,
                        "error": None,
                    },
                    separators=(",", ":"),
                )
                + "\n"
            )


def _fingerprint(path: Path, size: int | None = None) -> str:
    digest = hashlib.sha256()
    left = path.stat().st_size if size is None else size
    with open(path, "rb") as fh:
        while left > 0:
            block = fh.read(min(left, 1 << 22))
            if not block:
                break
            digest.update(block)
            left -= len(block)
    return digest.hexdigest()


def _timed(figure: str, what: str, size: str, repo: Path, argv: list[str], env: dict[str, str] | None = None) -> Row:
    measured = run_child("bench.fig_growth:command", {"repo": str(repo), "argv": argv}, env=env)
    return Row(
        figure=figure,
        what=what,
        size=size,
        wall_s=measured.wall_s,
        rss_mb=measured.peak_rss_mb,
        bar=f"<= {BAR_S:g} s",
        ok=measured.wall_s <= BAR_S,
        notes=[f"fig {figure}: client CPU {measured.cpu_s:.2f}s"],
    )


def run(ctx: Context) -> list[Row]:
    n_jobs = ctx.n(10_000, 10)
    n_lines = ctx.n(1_000_000, 1000)
    tickets = corpus.backlog(ctx.workdir, "fig5", 40, seed=5)
    layout = Layout(root=tickets)
    if layout.ops_dir.exists():
        import shutil

        shutil.rmtree(layout.ops_dir)
    ids = sorted(p.name.split("-")[0] + "-" + p.name.split("-")[1] for p in layout.backlog_dir.glob("pending/*.md"))
    ctx.say(f"fig 5: writing a queue of {n_jobs:,} jobs and a ledger of {n_lines:,} lines")
    _write_history(tickets, n_jobs - 1, n_lines, ids)
    size = f"{n_jobs:,} jobs, {n_lines / 1e6:g} M ledger lines"
    # The ledger was written directly, so it has no summary yet: build it once, as the first append
    # after an upgrade would (every later append keeps it current). Shown, not judged.
    built = run_child("bench.fig_growth:rebuild", {"repo": str(tickets)})
    rows = [
        Row(
            figure="5·",
            what="ledger summary, built once from scratch",
            size=f"{n_lines / 1e6:g} M ledger lines",
            wall_s=built.wall_s,
            rss_mb=built.peak_rss_mb,
            throughput=rate(n_lines, built.wall_s, "lines"),
            notes=[f"fig 5·: one-off rebuild covering {built.info['requests']:,} lines (no bar: not per run)"],
        ),
        _timed("5a", "status", size, tickets, ["status"]),
    ]
    if importlib.util.find_spec("batch_ops.commands.report") is not None:
        rows.append(_timed("5b", "report", size, tickets, ["report"]))
    else:
        rows.append(
            Row(
                figure="5b",
                what="report",
                size=size,
                bar="<= 2 s",
                notes=["fig 5b: `batch-ops report` is not available yet (it is being added on branch `phases`)"],
            )
        )
    with Sandbox(ctx.workdir, processing_seconds=0.2) as sandbox:
        payload = layout.payloads_dir / "job-20991231-0001.jsonl"
        count = corpus.write_payload(payload, corpus.validation_lines(tickets, 5))
        batch = sandbox.create(corpus.body_parts(payload))
        corpus.add_job(tickets, payload.name, count, job_id="job-20991231-0001", batch_id=batch["id"])
        sandbox.wait_ended(batch["id"])
        before_size = layout.ledger_file.stat().st_size
        before_inode = layout.ledger_file.stat().st_ino
        before_hash = _fingerprint(layout.ledger_file)
        row = _timed(
            "5c", "reconcile touching one job", size, tickets, ["reconcile"], {"ANTHROPIC_BASE_URL": sandbox.url}
        )
    after = layout.ledger_file.stat()
    appended = after.st_ino == before_inode and after.st_size > before_size
    unchanged = appended and _fingerprint(layout.ledger_file, before_size) == before_hash
    jobs, _ = read_queue(layout)
    done = [j for j in jobs if j.id == "job-20991231-0001" and j.status == "completed"]
    row.notes.append(
        f"fig 5c: ledger {'appended to in place, old bytes unchanged' if unchanged else 'REWRITTEN or not appended'}"
        f" ({before_size:,} -> {after.st_size:,} bytes); the in-flight job "
        f"{'completed' if done else 'DID NOT complete'}"
    )
    row.bar = f"<= {BAR_S:g} s, append only"
    row.ok = bool(row.ok and unchanged and done)
    rows.append(row)
    rows.append(_timed("5d", "status after the reconcile", size, tickets, ["status"]))
    return rows
