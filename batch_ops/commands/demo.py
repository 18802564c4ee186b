"""`batch-ops demo`: the whole job on a sample backlog against the built-in sandbox; no API key.

Copies the shipped sample repository to a temporary folder, starts the emulator in-process on a
free port, runs one cycle to the end, and prints what happened. The sandbox's answers are
synthetic (a deterministic stand-in model), but every call goes through the real SDK over HTTP.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import tempfile
from importlib import resources
from pathlib import Path

from batch_ops.backlog import scan_backlog
from batch_ops.commands._common import emit_json
from batch_ops.commands.cycle import run_cycle
from batch_ops.config import load_config
from batch_ops.ledger import iter_ledger
from batch_ops.paths import Layout
from batch_ops.queue import read_queue
from batch_ops.triage import buckets, triage

# Not a secret: the sandbox accepts any key, and this one is never sent anywhere else.
_SANDBOX_KEY = "sandbox-demo-key"


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("demo", help="run the full cycle on a sample backlog against the local sandbox")
    p.add_argument("--dir", help="where to create the demo repository (default: a new temporary folder)")
    p.add_argument("--processing-seconds", type=float, default=2.0, help="how long sandbox batches take")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=run)


def _copy_sample(target: Path) -> None:
    sample = resources.files("batch_ops") / "data" / "sample"
    with resources.as_file(sample) as src:
        shutil.copytree(src, target, dirs_exist_ok=True, ignore=shutil.ignore_patterns("README.md"))
    # A real repository, so the commit history can be looked at afterwards; optional.
    if shutil.which("git"):
        for cmd in (["git", "init", "-q"], ["git", "add", "-A"]):
            subprocess.run(cmd, cwd=target, check=False, capture_output=True)
        subprocess.run(
            [
                "git",
                "-c",
                "user.name=batch-ops demo",
                "-c",
                "user.email=demo@localhost",
                "commit",
                "-qm",
                "sample backlog",
            ],
            cwd=target,
            check=False,
            capture_output=True,
        )


def run(args: argparse.Namespace) -> int:
    # Imported here: the SDK is slow to import, and every other command's start-up would pay for it.
    from batch_ops.providers.anthropic import AnthropicProvider
    from batch_ops.sandbox import SandboxServer

    target = Path(args.dir).resolve() if args.dir else Path(tempfile.mkdtemp(prefix="batch-ops-demo-"))
    target.mkdir(parents=True, exist_ok=True)
    _copy_sample(target)
    config = load_config(target)
    layout = Layout(root=target, data_dir=config.backlog.data_dir)
    scan = scan_backlog(target, config.backlog.data_dir)
    bucketed = buckets(triage(scan.pending, config.ticket_validation))

    with SandboxServer(processing_seconds=args.processing_seconds) as srv:
        provider = AnthropicProvider(api_key=_SANDBOX_KEY, base_url=srv.url, timeout=30)
        cycle_args = argparse.Namespace(
            repo=str(target), phase=None, wait=True, timeout=300.0, poll=0.5, time_budget=300.0
        )
        summary, done = run_cycle(cycle_args, layout, config, provider)
        calls = dict(srv.calls)

    jobs, _ = read_queue(layout)
    totals = {
        "requests": 0,
        "input_tokens": 0,
        "output_tokens": 0,
        "cost_usd": 0.0,
        "interactive_cost_usd": 0.0,
    }
    for line in iter_ledger(layout.ledger_file):
        totals["requests"] += 1
        totals["input_tokens"] += (
            line.input_tokens + line.cache_creation_input_tokens + line.cache_read_input_tokens
        )
        totals["output_tokens"] += line.output_tokens
        totals["cost_usd"] += line.cost_usd
        totals["interactive_cost_usd"] += line.interactive_cost_usd
    savings = totals["interactive_cost_usd"] - totals["cost_usd"]
    result = {
        "repository": str(target),
        "skipped_tickets": [str(p) for p in scan.problems],
        "buckets": bucketed,
        "jobs": [
            {
                "id": j.id,
                "phase": j.phase,
                "alias": j.model_alias,
                "status": j.status,
                "requests": j.request_count,
            }
            for j in jobs
        ],
        "reports": sorted(set(summary.reports)),
        "ledger": totals,
        "savings_usd": savings,
        "sandbox_calls": calls,
        "all_jobs_ended": done,
    }
    if args.json:
        emit_json(result)
        return 0 if done else 1
    print(f"demo repository: {target}")
    print(f"tickets read: {len(scan.tickets)}; skipped with a reason: {len(scan.problems)}")
    for problem in scan.problems:
        print(f"  skipped {problem}")
    for bucket, ids in bucketed.items():
        print(f"{bucket:>17}: {len(ids):>2}  {' '.join(ids)}")
    print("jobs:")
    for j in jobs:
        print(f"  {j.id}  {j.phase}  {j.model_alias:<8}  {j.status:<9}  {j.request_count} request(s)")
    for report in sorted(set(summary.reports)):
        print(f"report: {target / report}")
    print(
        f"tokens: {totals['input_tokens']} in, {totals['output_tokens']} out over {totals['requests']} request(s)\n"
        f"cost: ${totals['cost_usd']:.6f} (batch) vs ${totals['interactive_cost_usd']:.6f} interactive; "
        f"saved ${savings:.6f}"
    )
    print(f"sandbox calls: {', '.join(f'{k} {v}' for k, v in sorted(calls.items()))}")
    print("note: the sandbox's answers are synthetic; the calls, files and accounting are real.")
    return 0 if done else 1
