"""The benchmarks must not rot: every module imports, and a tiny run of figures 1 and 5 works.

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


def test_tiny_run_of_reconcile_and_growth(tmp_path: Path) -> None:
    out = tmp_path / "rows.json"
    proc = subprocess.run(
        [sys.executable, "bench/run.py", "--scale", "0.001", "--only", "1,5", "--json", str(out)],
        cwd=REPO, capture_output=True, text=True, timeout=240, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    rows = json.loads(out.read_text())["rows"]
    assert {r["figure"] for r in rows} >= {"1", "5a", "5c", "5d"}
    notes = " ".join(n for r in rows for n in r["notes"])
    assert "WRONG OUTCOME" not in notes and "ERROR" not in notes and "REWRITTEN" not in notes
    assert "job completed" in notes and "old bytes unchanged" in notes
