"""The engine's fast per-line paths agree with the models they stand in for."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from batch_ops.engine import Engine
from batch_ops.ledger import TokenCounts, Usage
from batch_ops.payload import split_line
from batch_ops.phases.base import ItemMeta, SettledResult
from batch_ops.phases.validation import ValidationPhase
from batch_ops.providers.anthropic import parse_result_line
from batch_ops.providers.base import ProviderResult, ResultLine
from batch_ops.queue import BatchRef

VERDICT = json.dumps({"valid": True, "summary": "ok ✓", "findings": []}, ensure_ascii=False)


@pytest.mark.parametrize(
    ("result", "verdict"),
    [
        (ProviderResult(custom_id="btv-A-1", outcome="succeeded", text=VERDICT, model="m",
                        usage=Usage(input_tokens=10, output_tokens=3, cache_creation_input_tokens=2,
                                    cache_read_input_tokens=1, cache_creation_1h_input_tokens=1)), "succeeded"),
        (ProviderResult(custom_id="btv-A-2", outcome="succeeded", text="not json"), "succeeded"),
        (ProviderResult(custom_id="btv-A-3", outcome="errored", error_type="invalid_request_error",
                        error_message='bad "quote"'), "failed"),
        (ProviderResult(custom_id="btv-A-4", outcome="expired"), "failed"),
    ],
)  # fmt: skip
def test_settled_line_is_a_settled_result(result: ProviderResult, verdict: str) -> None:
    meta = ItemMeta(ticket_id="A-1", ticket_path="backlog/data/pending/A-1 é.md", content_hash="ab")
    ref = BatchRef(id="msgbatch_1", round=2, request_count=1, intent_at="2026-01-01T00:00:00Z")
    line_result = ResultLine.of(result)
    status, error, line = Engine._settled_line(ValidationPhase(), ref, meta.model_dump_json(), line_result, verdict)
    parsed = SettledResult.model_validate_json(line)
    assert line.endswith("\n") and "\n" not in line[:-1]
    assert parsed.status == status and parsed.error == error
    assert parsed.meta == meta and parsed.usage == result.usage and parsed.batch_id == "msgbatch_1"
    assert parsed.attempts == 2 and parsed.model == result.model
    if status == "succeeded":
        assert parsed.output == {"valid": True, "summary": "ok ✓", "findings": []}
    else:
        assert parsed.output is None and error


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
