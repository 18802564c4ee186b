"""The fast per-line readers (payload lines, result lines) agree with full parses and the SDK's types."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from batch_ops.ledger import TokenCounts
from batch_ops.payload import split_line
from batch_ops.providers.anthropic import parse_result_line

VERDICT = json.dumps({"valid": True, "summary": "ok ✓", "findings": []}, ensure_ascii=False)


def test_split_line_cuts_what_a_full_parse_gives() -> None:
    line = json.dumps(
        {"custom_id": "c-1", "params": {"meta": {"x": 1}, "t": ',"meta":{}} \\" é'}, "meta": {"ticket_id": "T-1"}},
        separators=(",", ":"),
        ensure_ascii=False,
    )
    item = split_line(line + "\n")
    assert item.custom_id == "c-1"
    assert json.loads(item.request) == {"custom_id": "c-1", "params": json.loads(line)["params"]}
    assert json.loads(item.meta) == {"ticket_id": "T-1"}
    # Other shapes go through a full parse and give the same parts.
    odd = json.dumps({"meta": {"ticket_id": "T-1"}, "params": {"a": [1]}, "custom_id": "c-2"})
    item = split_line(odd)
    assert (item.custom_id, json.loads(item.request), json.loads(item.meta)) == (
        "c-2", {"custom_id": "c-2", "params": {"a": [1]}}, {"ticket_id": "T-1"},
    )  # fmt: skip
    nested = '{"custom_id":"c-3","params":{},"meta":{"extra":{"a":1},"meta":{"b":2}}}'
    assert json.loads(split_line(nested).meta) == {"extra": {"a": 1}, "meta": {"b": 2}}


def test_raw_result_lines_read_like_the_sdk_types() -> None:
    ok = {
        "custom_id": "r1",
        "result": {"type": "succeeded", "message": {
            "id": "msg_1", "type": "message", "role": "assistant", "model": "claude-haiku-4-5",
            "content": [{"type": "text", "text": "he"}, {"type": "text", "text": "llo"}],
            "stop_reason": "end_turn", "stop_sequence": None,
            "usage": {"input_tokens": 5, "output_tokens": 2, "cache_creation_input_tokens": 4,
                      "cache_read_input_tokens": 1, "cache_creation": {"ephemeral_1h_input_tokens": 4}}}},
    }  # fmt: skip
    got = parse_result_line(json.dumps(ok).encode())
    assert (got.outcome, got.text, got.model, got.stop_reason) == ("succeeded", "hello", "claude-haiku-4-5", "end_turn")
    assert got.usage == TokenCounts(5, 2, 4, 1, 4)
    tool = {"custom_id": "r2", "result": {"type": "succeeded", "message": {
        "model": "m", "content": [{"type": "tool_use", "id": "t", "name": "f", "input": {"a": "é"}}]}}}  # fmt: skip
    assert json.loads(parse_result_line(json.dumps(tool)).text or "") == {"a": "é"}
    err = {"custom_id": "r3", "result": {"type": "errored", "error": {"type": "error", "error": {
        "type": "overloaded_error", "message": "Overloaded"}}}}  # fmt: skip
    got = parse_result_line(json.dumps(err))
    assert (got.outcome, got.error_type, got.error_message) == ("errored", "overloaded_error", "Overloaded")
    assert parse_result_line('{"custom_id":"r4","result":{"type":"expired"}}').outcome == "expired"
    for bad in ('{"custom_id": 1, "result": {"type": "expired"}}', '{"result": {}}', "[1]", "{"):
        with pytest.raises(ValueError):
            parse_result_line(bad)


def test_payload_meta_from_bytes_matches_the_full_split(tmp_path: Path) -> None:
    from batch_ops.payload import iter_payload, iter_payload_meta

    lines = [
        '{"custom_id":"a-1","params":{"t":"é ,\\"meta\\":{}}"},"meta":{"ticket_id":"A-1","ticket_path":"p é"}}',
        '{"custom_id":"a-2","params":{"meta":{"x":1}},"meta":{"x":{"meta":2}}}',
        '{"params":{},"custom_id":"a-3","meta":{"ticket_id":7}}',
        '{"custom_id":"a-4","params":{"x":1}}',
        '{"custom_id":"a\\u00e9","params":{},"meta":{}}',
    ]
    path = tmp_path / "payload.jsonl"
    path.write_text("\n".join(lines) + "\n\n", encoding="utf-8")
    full = [(i.custom_id, json.loads(i.meta), i.ticket_id) for i in iter_payload(path)]
    fast = [(m.custom_id, json.loads(m.meta), m.ticket_id) for m in iter_payload_meta(path)]
    assert fast == full
    assert full[0] == ("a-1", {"ticket_id": "A-1", "ticket_path": "p é"}, "A-1")
    assert full[2][2] is None and full[3][1] == {}
