"""The payload's meta index: written at enqueue, used by the join only when it is the payload's own."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import pytest

from batch_ops.config import parse_config
from batch_ops.engine import Engine
from batch_ops.paths import Layout
from batch_ops.payload import iter_payload_meta, meta_index_path, read_meta_index, write_meta_index, write_payload
from batch_ops.queue import JobRecord

RECORDS: list[tuple[str, dict[str, Any], dict[str, Any]]] = [
    ("btv-A-1", {"t": 'é ,"meta":{}\u2028'}, {"ticket_id": "A-1", "ticket_path": "p é", "content_hash": "h"}),
    ("btv-A-2", {"meta": {"x": 1}}, {"x": {"meta": 2}, "ticket_id": "A-2"}),
    ("btv-A-3", {}, {}),
    ("btv-A-4", {"x": [1.5, None]}, {"ticket_id": 'q"\\\t'}),
]


def _old_engine_text(records: list[tuple[str, dict[str, Any], dict[str, Any]]]) -> str:
    # What Engine._new_job wrote before the index (the payload's bytes must not change).
    return "".join(
        json.dumps({"custom_id": c, "params": p, "meta": m}, separators=(",", ":"), ensure_ascii=False) + "\n"
        for c, p, m in records
    )


def _job(layout: Layout) -> JobRecord:
    return JobRecord(id="job-1", workflow="w", phase="p", payload_path=".backlog-ops/payloads/job-1.jsonl",
                     model_alias="cheap", created_at="2026-01-01T00:00:00Z", updated_at="2026-01-01T00:00:00Z",
                     request_count=len(RECORDS))  # fmt: skip


def _write(tmp_path: Path) -> tuple[Layout, Path]:
    layout = Layout(tmp_path)
    layout.payloads_dir.mkdir(parents=True)
    payload = layout.payloads_dir / "job-1.jsonl"
    assert write_payload(payload, RECORDS) == len(RECORDS)
    return layout, payload


def _indexed(payload: Path) -> list[tuple[str, str]] | None:
    entries = read_meta_index(payload, meta_index_path(payload))
    return None if entries is None else list(entries)


def _scanned(payload: Path) -> list[tuple[str, str]]:
    return [(m.custom_id, m.meta) for m in iter_payload_meta(payload)]


def test_the_payload_is_unchanged_and_the_index_is_what_the_scan_reads(tmp_path: Path) -> None:
    _, payload = _write(tmp_path)
    assert payload.read_text(encoding="utf-8") == _old_engine_text(RECORDS)
    assert _indexed(payload) == _scanned(payload)


def test_an_index_written_from_the_payload_is_the_same(tmp_path: Path) -> None:
    _, payload = _write(tmp_path)
    first = meta_index_path(payload).read_bytes()
    assert write_meta_index(payload)
    header = json.loads(first.split(b"\n", 1)[0])
    again = meta_index_path(payload).read_bytes()
    assert json.loads(again.split(b"\n", 1)[0])["payload_sha256"] == header["payload_sha256"]
    assert again.split(b"\n", 1)[1] == first.split(b"\n", 1)[1]


def test_a_fresh_checkout_uses_the_index_through_the_hash(tmp_path: Path) -> None:
    _, payload = _write(tmp_path)
    st = payload.stat()
    os.utime(payload, ns=(st.st_atime_ns, st.st_mtime_ns + 5_000_000_000))
    assert _indexed(payload) == _scanned(payload)


def test_an_edited_payload_is_read_itself(tmp_path: Path) -> None:
    _, payload = _write(tmp_path)
    text = payload.read_text(encoding="utf-8")
    payload.write_text(text.replace('"A-1"', '"B-1"'), encoding="utf-8")  # same size, new mtime
    assert payload.stat().st_size == len(text.encode())
    assert _indexed(payload) is None


def test_an_edited_payload_with_the_old_mtime_is_still_caught_by_its_size(tmp_path: Path) -> None:
    _, payload = _write(tmp_path)
    st = payload.stat()
    payload.write_text(payload.read_text(encoding="utf-8").replace('"A-1"', '"B-10"'), encoding="utf-8")
    os.utime(payload, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert _indexed(payload) is None


@pytest.mark.parametrize(
    "damage",
    [
        lambda b: b[: len(b) // 2],  # torn
        lambda b: b.replace(b"A-2", b"A-9"),  # edited body
        lambda b: b.replace(b'"count":4', b'"count":3'),  # edited header
        lambda b: b.split(b"\n", 1)[1],  # no header
        lambda b: b"",
        lambda b: b"\xff\xfe" + b,
        lambda b: b'{"format":1}\n',
        lambda b: b"[]\n" + b.split(b"\n", 1)[1],
    ],
)
def test_a_damaged_index_is_never_used(tmp_path: Path, damage: Any) -> None:
    _, payload = _write(tmp_path)
    index = meta_index_path(payload)
    index.write_bytes(damage(index.read_bytes()))
    assert _indexed(payload) is None


def test_the_index_of_another_payload_is_not_used(tmp_path: Path) -> None:
    layout, payload = _write(tmp_path)
    other = layout.payloads_dir / "job-2.jsonl"
    write_payload(other, [(c, p, {**m, "n": 1}) for c, p, m in RECORDS])
    meta_index_path(payload).write_bytes(meta_index_path(other).read_bytes())
    assert _indexed(payload) is None


def test_no_index_for_what_cannot_be_one(tmp_path: Path) -> None:
    path = tmp_path / "p.jsonl"
    path.write_text('{"custom_id":"a\\tb","params":{},"meta":{}}\n', encoding="utf-8")
    assert not write_meta_index(path)
    assert not meta_index_path(path).exists()
    path.write_text("not json\n", encoding="utf-8")
    assert not write_meta_index(path)


def _engine(layout: Layout) -> Engine:
    return Engine(layout, parse_config({}), {})


def test_the_join_is_the_same_with_and_without_the_index(tmp_path: Path) -> None:
    layout, payload = _write(tmp_path)
    job = _job(layout)
    ids = [c for c, _, _ in RECORDS]
    engine = _engine(layout)
    assert engine._indexed_metas(job) is not None
    with_index = engine._metas_for(job, ids)
    meta_index_path(payload).unlink()
    assert engine._indexed_metas(job) is None
    without = engine._metas_for(job, ids)
    assert with_index == without
    assert [with_index.ticket_id(c) for c in ids] == ["A-1", "A-2", None, 'q"\\\t']


def test_an_index_that_a_symlink_leads_out_of_backlog_ops_is_not_followed(tmp_path: Path) -> None:
    layout, payload = _write(tmp_path / "repo")
    outside = tmp_path / "outside.meta"
    outside.write_bytes(meta_index_path(payload).read_bytes())
    meta_index_path(payload).unlink()
    os.symlink(outside, meta_index_path(payload))
    assert _engine(layout)._indexed_metas(_job(layout)) is None


CANONICAL_RECORDS: list[tuple[str, dict[str, Any], dict[str, Any]]] = [
    (f"btv-C-{i}", {"i": i}, {"ticket_id": f"C-{i}", "ticket_path": f"p/C-{i}.md", "content_hash": "ab"})
    for i in range(3)
] + [("btv-C-3", {}, {"ticket_id": None, "ticket_path": None, "content_hash": None})]


def _header(payload: Path) -> dict[str, Any]:
    header: dict[str, Any] = json.loads(meta_index_path(payload).read_bytes().split(b"\n", 1)[0])
    return header


def test_the_index_says_whether_every_meta_is_canonical(tmp_path: Path) -> None:
    _, payload = _write(tmp_path)
    assert _header(payload)["canonical"] is False  # RECORDS hold metas in other shapes
    indexed = read_meta_index(payload, meta_index_path(payload))
    assert indexed is not None and not indexed.canonical
    write_payload(payload, CANONICAL_RECORDS)
    assert _header(payload)["canonical"] is True
    indexed = read_meta_index(payload, meta_index_path(payload))
    assert indexed is not None and indexed.canonical


def test_the_join_trusts_a_canonical_index_and_checks_the_others(tmp_path: Path) -> None:
    """The same join through a canonical index, an index from before the flag, and the payload itself."""
    layout, payload = _write(tmp_path)
    write_payload(payload, CANONICAL_RECORDS)
    job = _job(layout)
    ids = [c for c, _, _ in CANONICAL_RECORDS] + ["btv-none"]  # one id the payload does not hold
    engine = _engine(layout)
    trusted = engine._metas_for(job, ids)
    index = meta_index_path(payload)
    head, body = index.read_bytes().split(b"\n", 1)
    old = json.loads(head)
    del old["canonical"]  # an index written before the flag (its body hashed alone): every meta is tested again
    old["body_sha256"] = hashlib.sha256(body).hexdigest()
    index.write_bytes(json.dumps(old, separators=(",", ":")).encode() + b"\n" + body)
    indexed = engine._indexed_metas(job)
    assert indexed is not None and not indexed.canonical
    checked = engine._metas_for(job, ids)
    index.unlink()
    scanned = engine._metas_for(job, ids)
    assert trusted == checked == scanned
    assert trusted.json["btv-none"] == '{"ticket_id":null,"ticket_path":null,"content_hash":null}'
    assert [trusted.ticket_id(c) for c in ids] == ["C-0", "C-1", "C-2", None, None]


@pytest.mark.parametrize("records", [RECORDS, CANONICAL_RECORDS])
def test_an_index_whose_flag_was_edited_is_not_used(tmp_path: Path, records: Any) -> None:
    """The flag is hashed with the body: metas called canonical by hand are never used unread."""
    _, payload = _write(tmp_path)
    write_payload(payload, records)
    index = meta_index_path(payload)
    head, body = index.read_bytes().split(b"\n", 1)
    header = json.loads(head)
    header["canonical"] = not header["canonical"]
    index.write_bytes(json.dumps(header, separators=(",", ":")).encode() + b"\n" + body)
    assert _indexed(payload) is None
