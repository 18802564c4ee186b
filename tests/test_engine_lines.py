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


def _compact(value: object) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


def test_request_lines_are_parsed_whole_or_left_to_the_full_parse() -> None:
    from batch_ops.payload import parse_request_line

    params = {"model": "m", "t": 'é ✓ ,"meta":{}} \\" \u2028', "meta": {"x": [1, 2.5, None, True]}}
    canonical = _compact({"custom_id": "c-1", "params": params, "meta": {"ticket_id": "T-1"}})
    for raw in (canonical, canonical + b"\n", canonical + b"\r\n"):
        got = parse_request_line(raw)
        assert got is not None and got.custom_id == "c-1" and got.params == params
        # The request is the line's own bytes, and they are what the compact serialiser gives.
        assert raw[: got.request_bytes] + b"}" == _compact({"custom_id": "c-1", "params": params})
    no_meta = _compact({"custom_id": "c-2", "params": params})
    got = parse_request_line(no_meta)
    assert got is not None and no_meta[: got.request_bytes] + b"}" == no_meta
    others = [
        json.dumps({"custom_id": "c-3", "params": params, "meta": {}}).encode(),  # spaces
        _compact({"params": params, "custom_id": "c-4", "meta": {}}),  # another order
        _compact({"custom_id": "c-5", "params": params, "meta": {}, "extra": 1}),  # a member more
        b'{"custom_id":"c-6","params":{"a":1},"meta":{},"params":{}}',  # duplicate member
        _compact({"custom_id": "c-7", "params": params, "meta": [1]}),  # meta not an object
        _compact({"custom_id": "c-8", "params": params, "meta": {}}) + b" ",  # trailing text
        _compact({"custom_id": "c-9", "params": params, "meta": {}})[:-1],  # cut short
        _compact({"custom_id": "a" * 65, "params": params}),  # custom_id too long for the API
        _compact({"custom_id": "has space", "params": params}),
        b'{"custom_id":"c-10","params":{"t":"\xff"},"meta":{}}',  # not UTF-8
        b'{"custom_id":"c-11","params":{"t":"x"}, "meta":{}}',
        b'{"custom_id":"c-12","params":' + b"[" * 100_000 + b"]" * 100_000 + b"}",  # nested too deep
    ]
    for raw in others:
        assert parse_request_line(raw) is None, raw[:80]


def test_a_batch_body_is_the_payload_s_requests_byte_for_byte(tmp_path: Path) -> None:
    """Lines in the engine's layout go out as their own bytes; any other shape as the full parse gives it."""
    from anthropic._utils._json import openapi_dumps

    from batch_ops.config import parse_config
    from batch_ops.engine import Engine
    from batch_ops.paths import Layout
    from batch_ops.providers.anthropic import AnthropicProvider, _body
    from batch_ops.queue import JobRecord
    from tests.conftest import TEST_KEY

    params = [{"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": f"é “{i}” \u2028 \\"}]}
              for i in range(5)]  # fmt: skip
    lines = [
        _compact({"custom_id": "r-0", "params": params[0], "meta": {"ticket_id": "T-0"}}),
        json.dumps({"custom_id": "r-1", "params": params[1], "meta": {}}).encode(),  # spaces, \u escapes
        b"",
        _compact({"custom_id": "r-2", "params": params[2]}),
        _compact({"meta": {}, "params": params[3], "custom_id": "r-3"}),
        _compact({"custom_id": "r-4", "params": params[4], "meta": {"ticket_id": "T-4"}}),
    ]
    layout = Layout(tmp_path)
    layout.payloads_dir.mkdir(parents=True)
    (layout.payloads_dir / "job-1.jsonl").write_bytes(b"\n".join(lines) + b"\n")
    job = JobRecord(id="job-1", workflow="w", phase="p", payload_path=".backlog-ops/payloads/job-1.jsonl",
                    model_alias="cheap", created_at="2026-01-01T00:00:00Z", updated_at="2026-01-01T00:00:00Z",
                    request_count=5)  # fmt: skip
    provider = AnthropicProvider(api_key=TEST_KEY, base_url="http://127.0.0.1:9")
    engine = Engine(layout, parse_config({}), {}, lambda: provider)
    index = engine._scan_payload(job, 1)
    ids = [f"r-{i}" for i in (4, 0, 2, 1, 3)]  # a batch need not be in payload order
    assert sorted(i.custom_id for i in index.todo) == sorted(ids)
    from batch_ops.engine import _BatchRequests

    requests = _BatchRequests(index.path, index.stamp, [(c, *index.spans[c]) for c in ids])
    body = b"".join(_body(requests))
    expected = openapi_dumps({"requests": [{"custom_id": c, "params": params[int(c[2:])]} for c in ids]})
    assert body == expected  # what the SDK itself would have sent
    assert b"".join(_body(requests)) == body  # iterated again for a retried create
    # The sizes planned are the bytes sent (each request counts the comma after it).
    assert provider.envelope_bytes() + sum(i.size for i in index.todo) - 1 == len(body)
    # A payload changed after it was checked is never sent as it now is.
    from batch_ops.errors import StateError

    path = layout.payloads_dir / "job-1.jsonl"
    path.write_bytes(path.read_bytes().replace(b'"r-4"', b'"r-5"'))
    with pytest.raises(StateError, match="changed while its batch was being sent"):
        b"".join(_body(requests))


def test_a_line_that_cannot_be_sent_as_utf8_is_a_payload_problem(tmp_path: Path) -> None:
    from batch_ops.config import parse_config
    from batch_ops.engine import Engine, _PayloadProblem
    from batch_ops.paths import Layout
    from batch_ops.providers.anthropic import AnthropicProvider
    from batch_ops.queue import JobRecord
    from tests.conftest import TEST_KEY

    layout = Layout(tmp_path)
    layout.payloads_dir.mkdir(parents=True)
    (layout.payloads_dir / "job-1.jsonl").write_text('{"params": {"t": "\\ud800"}, "custom_id": "r-0"}\n')
    job = JobRecord(id="job-1", workflow="w", phase="p", payload_path=".backlog-ops/payloads/job-1.jsonl",
                    model_alias="cheap", created_at="2026-01-01T00:00:00Z", updated_at="2026-01-01T00:00:00Z",
                    request_count=1)  # fmt: skip
    engine = Engine(layout, parse_config({}), {}, lambda: AnthropicProvider(api_key=TEST_KEY, base_url="http://127.0.0.1:9"))
    with pytest.raises(_PayloadProblem, match="line 1: params hold a lone surrogate"):
        engine._scan_payload(job, 1)
