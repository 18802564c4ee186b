"""Part 2 of #7: paths stay where they belong.

Queue records' paths resolve inside ``.backlog-ops/``; ticket files inside the repository; names
made from ids are plain file names. A hand-edited line that points elsewhere is quarantined, and a
symlink that leads out of the repository is refused rather than followed.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from batch_ops.backlog import scan_backlog
from batch_ops.errors import PathError
from batch_ops.paths import Layout, relative_only, safe_file_name
from batch_ops.queue import QueueStore, read_queue
from tests.hostile import strategies as s

FIXTURES = Path(__file__).parent.parent / "fixtures" / "hostile"
GOOD = (FIXTURES / "tickets" / "good.md").read_bytes()

path_text = st.one_of(
    st.sampled_from(s.PATH_VALUES),
    st.lists(
        st.sampled_from(["..", ".", ".backlog-ops", "payloads", "x", "", "/", "~", "\x00", "a b"]), max_size=6
    ).map("/".join),
    st.text(max_size=30),
)


@given(path_text)
def test_resolve_ops_path_is_inside_or_refused(stored: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        layout = Layout(Path(tmp))
        (layout.ops_dir / "payloads").mkdir(parents=True)
        outside = Path(tmp).parent / f"{Path(tmp).name}-outside"
        os.symlink(outside, layout.ops_dir / "link-out")
        try:
            full = layout.resolve_ops_path(stored)
        except PathError as exc:
            assert str(exc)
            return
        ops = layout.ops_dir.resolve()
        assert full == ops or ops in full.parents


@given(st.lists(path_text, min_size=1, max_size=4))
def test_the_queue_reads_path_check_agrees_with_resolve_ops_path(stored: list[str]) -> None:
    """The cached check a queue read uses refuses and accepts exactly what ``resolve_ops_path`` does."""
    with tempfile.TemporaryDirectory() as tmp:
        layout = Layout(Path(tmp))
        (layout.ops_dir / "payloads").mkdir(parents=True)
        outside = Path(tmp).parent / f"{Path(tmp).name}-outside"
        os.symlink(outside, layout.ops_dir / "link-out")
        os.symlink(outside / "file.jsonl", layout.ops_dir / "payloads" / "leaf-out.jsonl")
        os.symlink(layout.ops_dir / "payloads", layout.ops_dir / "link-in")
        os.symlink("loop", layout.ops_dir / "loop")
        check = layout.ops_paths()
        for text in [*stored, *stored]:  # twice: the second time from the cache
            for candidate in (text, f".backlog-ops/{text}", f".backlog-ops/payloads/{text}"):
                try:
                    expected: str | None = str(layout.resolve_ops_path(candidate))
                except (PathError, RuntimeError):
                    expected = None
                try:
                    got: str | None = check.resolve(candidate)
                except PathError:
                    got = None
                assert got == expected, candidate


@given(st.text(max_size=200), st.integers(min_value=1, max_value=120))
def test_safe_file_name_is_one_plain_name(text: str, limit: int) -> None:
    name = safe_file_name(text, limit=limit)
    assert 0 < len(name) <= limit
    assert name not in (".", "..") and not name.startswith(".")
    assert all(c.isascii() and (c.isalnum() or c in "_.-") for c in name)
    base = Path("/srv/repo/.backlog-ops/results")
    assert (base / name).parent == base and relative_only(name) == Path(name)


def _queue_line(**changes: Any) -> str:
    record = s.job_record("job-20260218-0001")
    record.update(changes)
    return json.dumps(record)


@pytest.mark.parametrize(
    "field,value",
    [
        ("payload_path", "../outside.jsonl"),
        ("payload_path", ".backlog-ops/payloads/../../../outside.jsonl"),
        ("payload_path", "/etc/passwd"),
        ("result_path", ".backlog-ops/link-out/results.jsonl"),
        ("report_path", "backlog/data/pending/FEAT-1.md"),
        ("payload_path", "a\x00b"),
    ],
)
def test_hand_edited_queue_line_pointing_elsewhere_is_quarantined(tmp_path: Path, field: str, value: str) -> None:
    repo = tmp_path / "repo"
    layout = Layout(repo)
    layout.ops_dir.mkdir(parents=True)
    (tmp_path / "outside").mkdir()
    os.symlink(tmp_path / "outside", layout.ops_dir / "link-out")
    good = json.dumps(s.job_record("job-20260218-0002"))
    layout.queue_file.write_text(_queue_line(**{field: value}) + "\n" + good + "\n")
    warnings: list[str] = []
    with QueueStore(layout, warnings.append).locked() as queue:
        assert [j.id for j in queue.jobs] == ["job-20260218-0002"]
    kept = [json.loads(line) for line in layout.queue_quarantine.read_text().splitlines()]
    assert len(kept) == 1 and kept[0]["reason"].startswith(f"path refused: {field}")
    assert warnings and "path refused" in warnings[0] and "batch-queue.quarantine.jsonl" in warnings[0]
    assert [j.id for j in read_queue(layout)[0]] == ["job-20260218-0002"]
    assert list((tmp_path / "outside").iterdir()) == []


def test_reconcile_never_follows_a_queue_line_that_points_out(cli: Any, sample_repo: Path, tmp_path: Path) -> None:
    """A record whose results sit outside: reconcile quarantines it and reports why, exit 0."""
    outside = tmp_path / "outside.jsonl"
    outside.write_text('{"custom_id": "btv-FEAT-035", "status": "succeeded"}\n')
    layout = Layout(sample_repo)
    layout.ops_dir.mkdir()
    record = s.job_record("job-20260218-0001")
    record.update(status="completed", result_path=str(outside), payload_path="../../outside.jsonl")
    layout.queue_file.write_text(json.dumps(record) + "\n")
    res = cli(sample_repo, "reconcile")
    assert res.code == 0, res.err
    assert "path refused" in res.err
    assert read_queue(layout) == ([], [])
    assert "outside.jsonl" in layout.queue_quarantine.read_text()


def test_ticket_symlinks_out_of_the_repository_are_refused(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    pending = repo / "backlog/data/pending"
    pending.mkdir(parents=True)
    (tmp_path / "secret.md").write_bytes(GOOD.replace(b"GOOD-001", b"SECRET-001"))
    os.symlink(tmp_path / "secret.md", pending / "SECRET-001-link.md")
    (repo / "inside.md").write_bytes(GOOD.replace(b"GOOD-001", b"INSIDE-001"))
    os.symlink(repo / "inside.md", pending / "INSIDE-001-link.md")
    scan = scan_backlog(repo)
    assert [t.id for t in scan.tickets] == ["INSIDE-001"]  # a link within the repository is fine
    assert [p.path for p in scan.problems] == ["backlog/data/pending/SECRET-001-link.md"]
    assert "outside the repository" in scan.problems[0].reason


def test_a_data_dir_folder_that_links_out_is_refused(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    (repo / "backlog/data").mkdir(parents=True)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "GOOD-001-good.md").write_bytes(GOOD)
    os.symlink(elsewhere, repo / "backlog/data/pending")
    scan = scan_backlog(repo)
    assert scan.tickets == [] and len(scan.problems) == 1
    assert "outside the repository" in scan.problems[0].reason


@pytest.mark.parametrize("entry", ["", "reports", "results", "payloads", "usage-ledger.jsonl", "batch-queue.jsonl"])
def test_own_files_that_link_out_stop_the_command(cli: Any, sample_repo: Path, tmp_path: Path, entry: str) -> None:
    """``.backlog-ops`` (or one of its fixed entries) committed as a symlink out: nothing is written there."""
    outside = tmp_path / "outside"
    outside.mkdir()
    if entry == "":
        os.symlink(outside, sample_repo / ".backlog-ops")
    else:
        (sample_repo / ".backlog-ops").mkdir()
        target = outside / entry
        if "." not in entry:
            target.mkdir()
        os.symlink(target, sample_repo / ".backlog-ops" / entry)
    res = cli(sample_repo, "enqueue")
    assert res.code == 1
    assert "refused" in res.err and "Traceback" not in res.err
    assert [p.name for p in outside.rglob("*")] == ([entry] if entry and "." not in entry else [])


def test_result_folder_of_a_job_that_links_out_is_refused(cli: Any, sample_repo: Path, tmp_path: Path) -> None:
    assert cli(sample_repo, "enqueue", "--batch").code == 0
    outside = tmp_path / "outside"
    outside.mkdir()
    layout = Layout(sample_repo)
    jobs, _ = read_queue(layout)
    layout.results_dir.mkdir(exist_ok=True)
    shutil.rmtree(layout.results_dir / jobs[0].id, ignore_errors=True)  # submit keeps its ids there
    os.symlink(outside, layout.results_dir / jobs[0].id)
    import time

    time.sleep(0.4)
    res = cli(sample_repo, "reconcile")
    assert res.code == 1 and "resolves outside .backlog-ops/" in res.err
    assert list(outside.iterdir()) == []
    shutil.rmtree(outside)
