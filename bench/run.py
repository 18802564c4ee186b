"""Run the scale benchmarks and print one table: ``python bench/run.py --scale 1.0``.

``--scale`` multiplies every size (1.0 is the issue's full size: 100,000 results, 100,000
requests, 10,000 / 100,000 tickets, 10,000 jobs and 1,000,000 ledger lines; ``make bench-quick``
uses 0.1). Each figure sits beside a baseline measured in the same run on the same data, so the
ratio, not the seconds, is what the bars judge (the machine is shared and noisy).
"""

from __future__ import annotations

import argparse
import importlib
import json
import platform
import shutil
import sys
import tempfile
import time
import traceback
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.context import Context
from bench.harness import Row, table

FIGURES = {
    "0": "bench.calibrate",
    "1": "bench.fig_reconcile",
    "2": "bench.fig_submit",
    "3": "bench.fig_triage",
    "4": "bench.fig_duplicates",
    "5": "bench.fig_growth",
    "6": "bench.fig_calls",
}


def machine() -> str:
    cpu = "unknown CPU"
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as fh:
            for line in fh:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    import os

    cores = os.cpu_count()
    try:
        with open("/proc/meminfo", encoding="ascii") as fh:
            mem_gb = int(fh.readline().split()[1]) / 2**20
    except OSError:
        mem_gb = 0.0
    try:
        load = " ".join(f"{x:.1f}" for x in os.getloadavg())
    except OSError:
        load = "?"
    return (
        f"{cpu}, {cores} cores, {mem_gb:.0f} GB RAM, {platform.system()} {platform.release()}, "
        f"Python {platform.python_version()}, load average at start {load}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--scale", type=float, default=1.0, help="size multiplier (1.0 = the issue's sizes)")
    parser.add_argument(
        "--repeats", type=int, default=5, help="measured/baseline pairs per ratio figure (the median pair stands)"
    )
    parser.add_argument("--only", default="", help="comma-separated figures to run, e.g. 1,3 (default: all)")
    parser.add_argument("--workdir", help="keep generated data here and reuse it (default: a temp dir, removed)")
    parser.add_argument("--json", help="also write the rows as JSON to this file")
    parser.add_argument("--markdown", action="store_true", help="print the table as Markdown")
    parser.add_argument("--strict", action="store_true", help="exit 1 when a bar fails (default: only on errors)")
    args = parser.parse_args(argv)
    chosen = [f.strip() for f in args.only.split(",") if f.strip()] or list(FIGURES)
    unknown = [f for f in chosen if f not in FIGURES]
    if unknown:
        parser.error(f"unknown figure(s) {', '.join(unknown)}; known: {', '.join(FIGURES)}")

    workdir = Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="batch-ops-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    ctx = Context(workdir=workdir.resolve(), scale=args.scale, repeats=args.repeats)
    described = machine()
    print(f"batch-ops benchmarks, scale {args.scale:g}, on {described}", flush=True)
    started = time.monotonic()
    rows: list[Row] = []
    errors = False
    try:
        for figure in chosen:
            print(f"figure {figure} ...", flush=True)
            begun = time.monotonic()
            try:
                module = importlib.import_module(FIGURES[figure])
                got: list[Row] = module.run(ctx)
            except Exception as exc:
                traceback.print_exc()
                errors = True
                got = [
                    Row(figure=figure, what=FIGURES[figure], size="", ok=False, notes=[f"fig {figure}: ERROR {exc!r}"])
                ]
            rows.extend(got)
            print(f"figure {figure} done in {time.monotonic() - begun:.0f}s", flush=True)
    finally:
        if not args.workdir:
            shutil.rmtree(workdir, ignore_errors=True)
    total = time.monotonic() - started
    print()
    print(table(rows, markdown=args.markdown))
    print()
    for row in rows:
        for note in row.notes:
            print(f"- {note}")
    print(f"\ntotal {total:.0f}s")
    failed = any(r.ok is False for r in rows)
    if args.json:
        Path(args.json).write_text(
            json.dumps(
                {"scale": args.scale, "machine": described, "total_s": total, "rows": [r.as_dict() for r in rows]},
                indent=2,
            )
            + "\n",
            encoding="utf-8",
        )
    if errors:
        return 2
    return 1 if failed and args.strict else 0


if __name__ == "__main__":
    sys.exit(main())
