"""The benchmarks must not rot: every module imports, a tiny run of figure 1 works end
to end, and figure 5's parts work in process.

Timings are not judged here (they belong to `make bench`); only that the harness runs end to end
and the figures' correctness checks hold.
"""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
MODULES = ("harness", "child", "context", "corpus", "calibrate", "fig_reconcile", "fig_submit", "fig_triage",
           "fig_duplicates", "fig_growth", "fig_calls", "run")  # fmt: skip


@pytest.mark.parametrize("name", MODULES)
def test_bench_module_imports(name: str) -> None:
    importlib.import_module(f"bench.{name}")


def test_tiny_run_of_reconcile(tmp_path: Path) -> None:
    out = tmp_path / "rows.json"
    proc = subprocess.run(
        [sys.executable, "bench/run.py", "--scale", "0.001", "--only", "1", "--json", str(out)],
        cwd=REPO, capture_output=True, text=True, timeout=240, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    rows = json.loads(out.read_text())["rows"]
    assert [r["figure"] for r in rows] == ["1"]
    notes = " ".join(n for r in rows for n in r["notes"])
    assert "WRONG OUTCOME" not in notes and "ERROR" not in notes and "job completed" in notes


def test_growth_figure_parts_in_process(tmp_path: Path) -> None:
    from batch_ops.ledger import read_summary
    from batch_ops.paths import Layout
    from bench import corpus, fig_growth

    repo = corpus.backlog(tmp_path, "repo", 8, seed=5)
    ids = sorted("-".join(p.name.split("-")[:2]) for p in (repo / "backlog" / "data" / "pending").glob("*.md"))
    fig_growth._write_history(repo, 20, 300, ids)
    assert fig_growth.rebuild(str(repo)) == {"requests": 300}
    assert fig_growth.command(str(repo), ["status"]) == {"exit": 0}
    assert read_summary(Layout(root=repo).ledger_file).totals()["requests"] == 300


def test_paired_runs_keep_the_pair_with_the_median_ratio() -> None:
    from bench.harness import Measured, paired

    walls = iter([2.0, 1.0, 9.0, 1.0, 3.0, 1.0])  # measured, baseline: ratios 2, 9, 3
    rss = iter([10.0, 50.0, 20.0])
    prepared: list[int] = []

    def measure() -> Measured:
        return Measured(wall_s=next(walls), cpu_s=0.0, peak_rss_mb=next(rss))

    def base() -> Measured:
        return Measured(wall_s=next(walls), cpu_s=0.0, peak_rss_mb=1.0)

    pair = paired(measure, base, 3, prepare=prepared.append)
    assert prepared == [0, 1, 2]
    assert pair.ratios == [2.0, 9.0, 3.0] and pair.ratio == 3.0 and pair.measured.wall_s == 3.0
    assert pair.peak_rss_mb == 50.0  # the ceiling is judged on the worst run, not the median one
    assert "2.00, 9.00, 3.00" in pair.note()
