"""Figure 6: API calls per cycle, counted by the sandbox (its admin endpoints are not counted).

In one child process, with a sandbox whose batches stay in progress for a few seconds:

1. submit two jobs (two batches), wait until they have ended, then submit three more jobs;
2. reconcile at once: 2 ended + 3 in progress in flight;
3. reconcile again at once: 3 in progress;
4. wait until those end and reconcile: 3 ended;
5. reconcile and submit with nothing in flight and nothing queued.

Expected: one retrieve per in-flight batch per reconcile, one results stream per ended batch, and no
call at all when nothing is in flight.
"""

from __future__ import annotations

import json
import time
import urllib.request
from pathlib import Path
from typing import Any

import batch_ops.providers.anthropic  # noqa: F401 - imported before the clock starts
from batch_ops.commands._common import default_provider
from batch_ops.config import load_config
from batch_ops.engine import Engine, RunSummary
from batch_ops.paths import Layout
from batch_ops.phases import all_phases
from bench import corpus
from bench.context import Context
from bench.harness import Row, run_child

PROCESSING_S = 4.0


def _calls(url: str) -> dict[str, int]:
    with urllib.request.urlopen(url + "/_sandbox/stats", timeout=30) as resp:
        calls: dict[str, int] = json.loads(resp.read())["calls"]
    return calls


def cycle_calls(repo: str, url: str, first: list[str], second: list[str]) -> dict[str, Any]:
    layout = Layout(root=Path(repo))
    config = load_config(layout.root)

    def step(kind: str) -> dict[str, int]:
        before = _calls(url)
        engine = Engine(layout, config, all_phases(), default_provider)
        getattr(engine, kind)(RunSummary())
        after = _calls(url)
        return {k: after[k] - before[k] for k in after if after[k] != before[k]}

    steps: dict[str, dict[str, int]] = {}
    steps["submit 2 jobs"] = step("submit")
    time.sleep(PROCESSING_S + 0.5)
    for name in second:
        corpus.add_job(layout.root, name + ".jsonl", 3, job_id=name)
    steps["submit 3 more jobs"] = step("submit")
    steps["reconcile: 2 ended + 3 in progress"] = step("reconcile")
    steps["reconcile: 3 in progress"] = step("reconcile")
    time.sleep(PROCESSING_S + 0.5)
    steps["reconcile: 3 ended"] = step("reconcile")
    steps["reconcile: nothing in flight"] = step("reconcile")
    steps["submit: nothing queued"] = step("submit")
    return {"steps": steps}


EXPECTED: dict[str, dict[str, int]] = {
    "submit 2 jobs": {"create": 2},
    "submit 3 more jobs": {"create": 3},
    "reconcile: 2 ended + 3 in progress": {"retrieve": 5, "results": 2},
    "reconcile: 3 in progress": {"retrieve": 3},
    "reconcile: 3 ended": {"retrieve": 3, "results": 3},
    "reconcile: nothing in flight": {},
    "submit: nothing queued": {},
}


def run(ctx: Context) -> list[Row]:
    from bench.harness import Sandbox

    source = ctx.small_backlog()
    repo = corpus.empty_repo(ctx.workdir, "fig6", source)
    layout = Layout(root=repo)
    first = ["job-20260101-0001", "job-20260101-0002"]
    second = ["job-20260101-0003", "job-20260101-0004", "job-20260101-0005"]
    lines = list(corpus.validation_lines(source, 15))
    for i, name in enumerate(first + second):
        corpus.write_payload(layout.payloads_dir / f"{name}.jsonl", iter(lines[3 * i : 3 * i + 3]))
    for name in first:
        corpus.add_job(repo, name + ".jsonl", 3, job_id=name)
    with Sandbox(ctx.workdir, processing_seconds=PROCESSING_S) as sandbox:
        measured = run_child(
            "bench.fig_calls:cycle_calls",
            {"repo": str(repo), "url": sandbox.url, "first": first, "second": second},
            env={"ANTHROPIC_BASE_URL": sandbox.url},
        )
    steps: dict[str, dict[str, int]] = measured.info["steps"]
    wrong = {name: got for name, got in steps.items() if got != EXPECTED[name]}
    notes = [f"fig 6: {name}: {got or 'no calls'}" for name, got in steps.items()]
    notes += [f"fig 6: MISMATCH in '{name}': expected {EXPECTED[name] or 'no calls'}" for name in wrong]
    return [
        Row(
            figure="6",
            what="API calls per cycle",
            size="5 batches, 7 steps",
            bar="1 retrieve/in-flight batch, 1 stream/ended batch, 0 idle",
            ok=not wrong,
            throughput=f"{sum(sum(s.values()) for s in steps.values())} calls",
            notes=notes,
        )
    ]
