"""Queue and ledger files are also edited by merges: the record-level merge drivers are readers too.

``merge_queue_texts`` / ``merge_ledger_texts`` (the git merge drivers behind ``batch-ops merge-state``
and the commit-state push retry) must never lose a line of the remote, never crash on a line they
cannot read, and never cut a record in two.
"""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from batch_ops.github.commit_state import Change, MergeConflict, commit_message, merge_ledger_texts, merge_queue_texts
from tests.hostile import strategies as s


def _lines(text: str) -> list[str]:
    return [line.removesuffix("\r") for line in text.split("\n") if line.strip()]


def _record_id(line: str) -> str | None:
    try:
        data: Any = json.loads(line)
    except (ValueError, RecursionError):
        return None
    return data.get("id") if isinstance(data, dict) and isinstance(data.get("id"), str) else None


U2028 = json.dumps({**s.job_record("job-20260218-0009"), "error": "one\u2028two\u0085three"}, ensure_ascii=False)
queue_texts = st.one_of(s.queue_text(), s.queue_text().map(lambda t: t + U2028 + "\n"))


@given(queue_texts, queue_texts, queue_texts)
def test_queue_merge_keeps_every_remote_line_or_record(base: str, current: str, other: str) -> None:
    try:
        merged = merge_queue_texts(base, current, other)
    except MergeConflict as exc:
        assert str(exc)
        return
    out_lines = _lines(merged)
    out_ids = {i for i in map(_record_id, out_lines) if i is not None}
    base_records: dict[str, Any] = {}
    for line in _lines(base):
        rid = _record_id(line)
        if rid is not None:
            base_records.setdefault(rid, json.loads(line))
    seen: set[str] = set()
    for line in _lines(current):
        rid = _record_id(line)
        if rid is None or rid in seen:
            assert line in out_lines, line  # not a record (or a second one for an id): kept as it is
        elif base_records.get(rid) != json.loads(line):
            assert rid in out_ids, (rid, merged)  # changed or new on the remote: never dropped
        # else: unchanged since the base, so the other side may have removed it
        if rid is not None:
            seen.add(rid)
    if U2028 in _lines(current) and U2028 not in _lines(base):
        assert "job-20260218-0009" in out_ids


@given(s.ledger_bytes(), s.ledger_bytes(), s.ledger_bytes())
def test_ledger_merge_keeps_every_remote_line_whole(base: bytes, current: bytes, other: bytes) -> None:
    b, c, o = (x.decode("utf-8", errors="replace") for x in (base, current, other))
    c += json.dumps({**s.ledger_record(), "error": "a\u2028b"}, ensure_ascii=False) + "\n"
    merged = merge_ledger_texts(b, c, o)
    out = _lines(merged)
    assert all(line in out for line in _lines(c))


@given(st.lists(s.short_text, max_size=4), st.lists(s.short_text, max_size=4))
def test_commit_message_lists_cannot_add_lines_or_trailers(names: list[str], ids: list[str]) -> None:
    message = commit_message(Change(tickets_refined=names, completed=ids, enqueued=["job\nCo-authored-by: x <x@y>"]))
    lines = message.split("\n")
    assert all(not line.lower().startswith(("co-authored-by", "signed-off-by")) for line in lines), message
    assert len(lines) <= 6, message
