"""`batch-ops summary`: the job summary table and the annotations, with hostile text escaped."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from batch_ops.cli import main
from batch_ops.github.summary import annotation, escape_data, escape_property
from tests.ghactions.state import append_ledger, job, ledger_line, pause, write_jobs, write_results

HOSTILE = "bad | cell @octocat\n::add-mask::x 100%"


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    root.mkdir()
    rel = write_results(root, "job-1", [("val-A", "succeeded", "A-1", None), ("val-B", "failed", "B-2", HOSTILE)])
    write_jobs(root, [
        job("job-1", "completed", result_path=rel, request_count=2, settled={"succeeded": 1, "failed": 1}),
        job("job-2", "running", request_count=5, created_at="2026-02-18T01:00:00Z"),
    ])  # fmt: skip
    append_ledger(root, ledger_line("job-1", "val-A", 0.5), ledger_line("job-1", "val-B", 0.25))
    return root


def test_summary_table_annotations_and_escaping(
    repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    out_file = tmp_path / "summary.md"
    run_file = tmp_path / "reconcile.json"
    run_file.write_text(json.dumps({"completed_jobs": ["job-1"], "ledger_lines": 2, "settled": {"succeeded": 1,
                                                                                                 "failed": 1}}))
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(out_file))
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    pause(repo)
    assert main(["summary", "--repo", str(repo), "--title", "batch-reconcile", "--run", str(run_file),
                 "--run", str(tmp_path / "missing.json")]) == 0  # fmt: skip
    md = out_file.read_text()
    assert md.startswith("## batch-reconcile")
    row = "| job-1 | bulk-ticket-validation | cheap | **completed** | 2 | failed 1, succeeded 1 | $0.7500 | $0.7500 |"
    assert row in md
    assert "| job-2 | bulk-ticket-validation | cheap | running | 5 | - | $0.0000 | $0.0000 |" in md
    assert "| requests settled | 2 (failed 1, succeeded 1) |" in md and "| cost | $0.7500 |" in md
    assert "bad \\| cell @\u200boctocat ::add-mask::x 100%" in md  # one line, no table break, no ping
    assert "[!WARNING]" in md and "missing.json missing or unreadable" in md
    lines = capsys.readouterr().out.splitlines()
    assert "::error title=batch-ops%3A failed request job-1 val-B::bad | cell @octocat ::add-mask::x 100%25" in lines
    assert any(line.startswith("::error title=batch-ops%3A queue paused::") for line in lines)
    assert all(line.startswith("::") for line in lines)


def test_summary_prints_markdown_without_annotations_outside_actions(
    repo: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)
    monkeypatch.delenv("GITHUB_ACTIONS", raising=False)
    assert main(["summary", "--repo", str(repo)]) == 0
    out = capsys.readouterr().out
    assert "### Jobs" in out and "::error" not in out


def test_workflow_command_escaping() -> None:
    assert escape_data("a%b\r\nc") == "a%25b%0D%0Ac"
    assert escape_property("x: y, z") == "x%3A y%2C z"
    assert annotation("error", "t:1", "line1\nline2 ::x") == "::error title=t%3A1::line1 line2 ::x"
