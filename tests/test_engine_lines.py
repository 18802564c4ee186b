"""The fast per-line readers (payload lines, result lines) agree with full parses and the SDK's types."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import msgspec
import pydantic_core
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from batch_ops.cli import main
from batch_ops.config import DEFAULT_MODELS
from batch_ops.engine import _encode_lines, _ledger_line, _LineParts, _Metas
from batch_ops.ledger import (
    LedgerAppend,
    LedgerLine,
    LedgerRow,
    TokenCounts,
    Usage,
    _Totals,
    cost_values,
    iter_ledger,
    price_usage,
)
from batch_ops.payload import CANONICAL_META, split_line
from batch_ops.phases.base import ItemMeta, OutputError, SettledResult
from batch_ops.phases.io import iter_failed, iter_settled
from batch_ops.phases.validation import _AS_DUMPED, ValidationPhase, Verdict
from batch_ops.providers.anthropic import read_result_line, result_from_line
from batch_ops.providers.base import MALFORMED, ResultLine
from batch_ops.queue import BatchRef, JobRecord, read_queue
from tests.hostile.strategies import ODD_NUMBERS, _get, _paths, _set, json_values, short_text
from tests.hostile.test_readers_fuzz import _settle_repo

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


def _message(**changes: Any) -> dict[str, Any]:
    message = {
        "id": "msg_1", "type": "message", "role": "assistant", "model": "claude-haiku-4-5",
        "content": [{"type": "text", "text": "he"}, {"type": "text", "text": "llo"}],
        "stop_reason": "end_turn", "stop_sequence": None,
        "usage": {"input_tokens": 5, "output_tokens": 2, "cache_creation_input_tokens": 4,
                  "cache_read_input_tokens": 1,
                  "cache_creation": {"ephemeral_1h_input_tokens": 4, "ephemeral_5m_input_tokens": 0},
                  "service_tier": "batch"},
    }  # fmt: skip
    message.update(changes)
    return message


REAL_LINES: list[dict[str, Any]] = [
    {"custom_id": "r1", "result": {"type": "succeeded", "message": _message()}},
    {"custom_id": "r2", "result": {"type": "succeeded", "message": _message(
        content=[{"type": "tool_use", "id": "t", "name": "f", "input": {"a": "é"}}], stop_reason="tool_use")}},
    {"custom_id": "r3", "result": {"type": "succeeded", "message": _message(
        content=[{"type": "thinking", "thinking": "hm", "signature": "s"}, {"type": "text", "text": VERDICT}],
        stop_reason="refusal")}},
    {"custom_id": "r4", "result": {"type": "succeeded", "message": _message(
        usage={"input_tokens": 1, "output_tokens": 1}, stop_sequence="END", container=None)}},
    {"custom_id": "r5", "result": {"type": "errored", "error": {"type": "error", "error": {
        "type": "overloaded_error", "message": "Overloaded"}, "request_id": "req_1"}}},
    {"custom_id": "r6", "result": {"type": "errored", "error": {"type": "error", "error": {
        "type": "invalid_request_error", "message": "x" * 900}}}},
    {"custom_id": "r7", "result": {"type": "expired"}},
    {"custom_id": "r8", "result": {"type": "canceled"}},
]  # fmt: skip


def _sdk_reading(raw: bytes, number: int) -> ResultLine:
    """What the SDK's own type makes of the line (the check the fast reader must equal)."""
    return ResultLine.of(result_from_line(raw.rstrip(b"\r\n").decode("utf-8", errors="replace"), number))


def test_result_lines_read_like_the_sdk_types() -> None:
    for i, line in enumerate(REAL_LINES, start=1):
        raw = json.dumps(line, ensure_ascii=False).encode() + b"\n"
        got = read_result_line(raw, i)
        assert got == _sdk_reading(raw, i), line
        assert got.error_type != MALFORMED, line
    got = read_result_line(json.dumps(REAL_LINES[0]).encode(), 1)
    assert (got.outcome, got.text, got.model, got.stop_reason) == ("succeeded", "hello", "claude-haiku-4-5", "end_turn")
    assert got.usage == TokenCounts(5, 2, 4, 1, 4)
    assert json.loads(read_result_line(json.dumps(REAL_LINES[1]).encode(), 2).text or "") == {"a": "é"}
    for bad in (b'{"custom_id": 1, "result": {"type": "expired"}}', b'{"result": {}}', b"[1]", b"{", b"\xff\xfe",
                b"[" * 20000 + b"]" * 20000, b'{"custom_id":"x","result":{"type":"mystery"}}'):  # fmt: skip
        got = read_result_line(bad, 3)
        assert got.error_type == MALFORMED and got == _sdk_reading(bad, 3)


@st.composite
def _mutated_line(draw: st.DrawFn) -> bytes:
    doc = json.loads(json.dumps(draw(st.sampled_from(REAL_LINES))))
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from(_paths(doc)))
        action = draw(st.integers(0, 3))
        if action == 0 and path:
            parent = _get(doc, path[:-1])
            del parent[path[-1]]
        elif action == 1:
            doc = _set(doc, path, draw(st.sampled_from(ODD_NUMBERS)))
        elif action == 2 and isinstance(_get(doc, path), dict):
            _get(doc, path)[draw(short_text)] = draw(json_values)
        else:
            doc = _set(doc, path, draw(json_values))
    try:
        return json.dumps(doc, ensure_ascii=draw(st.booleans()), allow_nan=True).encode("utf-8", "surrogatepass")
    except ValueError:
        return b"{}"


@settings(max_examples=400, deadline=None)
@given(_mutated_line())
def test_the_fast_reader_never_accepts_what_the_sdk_type_refuses(raw: bytes) -> None:
    """Any change to a real line (a key gone, a wrong type, an extra key): the same reading as the SDK's."""
    assert read_result_line(raw, 7) == _sdk_reading(raw, 7)


@pytest.mark.parametrize("mode", ["batch", "interactive"])
def test_settled_and_ledger_lines_are_the_models_own_text(tmp_path: Path, mode: str) -> None:
    job = JobRecord(
        id="job-20260101-0001", workflow="bulk-ticket-validation", phase="bulk-ticket-validation",
        payload_path=".backlog-ops/payloads/x.jsonl", model_alias="cheap", created_at="2026-01-01T00:00:00Z",
        updated_at="2026-01-01T00:00:00Z", request_count=3, mode=mode,
    )  # fmt: skip
    ref = BatchRef(id="msgbatch_é", round=2, chunk=0, request_count=3, intent_at="2026-01-01T00:00:00Z")
    price = DEFAULT_MODELS["cheap"]
    staged = LedgerAppend(tmp_path / "usage-ledger.jsonl", tmp_path / "stage.part")
    parts = _LineParts(job, ref, price, staged)
    expected = _Totals()
    phase = ValidationPhase()
    metas = [
        ItemMeta(ticket_id="T-1", ticket_path="backlog/data/pending/T-1.md", content_hash="ab"),
        ItemMeta(ticket_id="T-é\u2028\x7f", ticket_path=None, content_hash="x\\y\"z\n"),
        ItemMeta.model_validate({"ticket_id": "T-3", "extra": {"a": [1.5, None]}}),
    ]
    results = [
        ResultLine("btv-T-1", "succeeded", VERDICT, "claude-haiku-4-5", "end_turn", TokenCounts(10, 5, 3, 2, 1)),
        ResultLine("btv-T-2", "errored", error_type="invalid_request_error", error_message="bad \"x\" é\u2028\x01"),
        ResultLine("btv-T-3", "succeeded", VERDICT, None, "end_turn", TokenCounts(7, 1_000_001, 0, 0, 0)),
    ]
    for meta, result in zip(metas, results, strict=True):
        status = "succeeded" if result.outcome == "succeeded" else "failed"
        output = phase.output_json(result.text or "") if status == "succeeded" else None
        error = None if output else f"invalid request: {result.error_message}"
        fast = _encode_lines([parts.settled(result, meta.model_dump_json(), status, output, error)])
        usage = Usage(**msgspec.structs.asdict(result.usage))
        model = SettledResult(
            custom_id=result.custom_id, status=status, meta=meta,
            output=phase.parse_output(result.text or "") if output else None, error=error, batch_id=ref.id,
            attempts=ref.round, usage=usage, model=result.model,
        )  # fmt: skip
        assert fast == (model.model_dump_json() + "\n").encode()
        text = _encode_lines([parts.ledger(result, meta.ticket_id, status, error)]).decode()
        cost = price_usage(usage, price, job.mode)
        line = LedgerLine(
            timestamp=parts.stamp, workflow=job.workflow, phase=job.phase, job_id=job.id, batch_id=ref.id,
            custom_id=result.custom_id, ticket_id=meta.ticket_id, provider=job.provider, model_alias=job.model_alias,
            model=result.model or price.model, mode=job.mode, input_tokens=usage.input_tokens,
            output_tokens=usage.output_tokens, cache_creation_input_tokens=usage.cache_creation_input_tokens,
            cache_read_input_tokens=usage.cache_read_input_tokens, status=status, attempts=ref.round, error=error,
            **cost.model_dump(),
        )  # fmt: skip
        assert text == line.model_dump_json() + "\n"
        assert LedgerLine.model_validate_json(text) == line
        expected.add(line)
    # The sums the staged lines were given are the ones a line-by-line reading of them gives.
    got = _Totals()
    assert got.add_line_sums(parts.sums) == 3
    assert got.groups == expected.groups and got.cells == expected.cells
    staged.discard()


_tokens = st.integers(min_value=0, max_value=10**9)


@settings(max_examples=300, deadline=None)
@given(
    st.sampled_from(sorted(DEFAULT_MODELS)), st.sampled_from(["batch", "interactive"]),
    st.tuples(_tokens, _tokens, _tokens, _tokens, _tokens),
)  # fmt: skip
def test_the_ledger_lines_costs_are_cost_values_own_floats(alias: str, mode: str, counts: tuple[int, ...]) -> None:
    """The settle computes the costs inline: bit for bit what ``cost_values`` gives."""
    job = JobRecord(
        id="job-20260101-0001", workflow="w", phase="p", payload_path=".backlog-ops/payloads/x.jsonl",
        model_alias=alias, created_at="2026-01-01T00:00:00Z", updated_at="2026-01-01T00:00:00Z",
        request_count=1, mode=mode,
    )  # fmt: skip
    ref = BatchRef(id="msgbatch_1", round=1, chunk=0, request_count=1, intent_at="2026-01-01T00:00:00Z")
    price = DEFAULT_MODELS[alias]
    usage = TokenCounts(*counts)
    with tempfile.TemporaryDirectory() as tmp:
        staged = LedgerAppend(Path(tmp) / "l.jsonl", Path(tmp) / "l.part")
        parts = _LineParts(job, ref, price, staged)
        row = parts.ledger(ResultLine("c-1", "succeeded", "{}", None, "end_turn", usage), None, "succeeded", None)
        text = _encode_lines([row]).decode()
        staged.discard()
    line = json.loads(text)
    assert (line["cost_usd"], line["interactive_cost_usd"], line["savings_usd"]) == cost_values(usage, price, mode)
    (acc,) = parts.sums.by.values()
    assert tuple(acc[5:8]) == cost_values(usage, price, mode)


@given(st.one_of(st.none(), short_text), st.one_of(st.none(), short_text), st.one_of(st.none(), short_text))
def test_a_payload_meta_is_used_as_written_only_when_it_is_the_models_text(
    ticket_id: str | None, path: str | None, digest: str | None
) -> None:
    meta = {"ticket_id": ticket_id, "ticket_path": path, "content_hash": digest}
    try:
        text = json.dumps(meta, separators=(",", ":"), ensure_ascii=False)
        text.encode("utf-8")
    except UnicodeEncodeError:
        return
    if CANONICAL_META.fullmatch(text):
        model = ItemMeta.model_validate_json(text)
        assert model.model_dump_json() == text
        assert _Metas({"c": text}, {}).ticket_id("c") == model.ticket_id


def test_output_json_is_what_the_settled_model_writes() -> None:
    phase = ValidationPhase()
    for text in (VERDICT, json.dumps({"findings": [], "summary": "a\u2028\"b", "valid": False})):
        assert phase.output_json(text) == pydantic_core.to_json(phase.parse_output(text)).decode()
        settled = SettledResult(custom_id="c", status="succeeded", output=phase.parse_output(text))
        assert f'"output":{phase.output_json(text)},' in settled.model_dump_json()
    with pytest.raises(OutputError):
        phase.output_json('{"valid": "yes", "summary": "", "findings": []}')


def test_failed_results_are_found_without_reading_the_succeeded_ones(tmp_path: Path) -> None:
    ok = SettledResult(custom_id="a", status="succeeded", output={"status": "failed"}).model_dump_json()
    bad = SettledResult(custom_id="b", status="failed", error="x").model_dump_json()
    odd = json.dumps({"status": "failed", "custom_id": "c", "error": "spaced"}, separators=(", ", ": "))
    path = tmp_path / "results.jsonl"
    path.write_text("\n".join([ok, bad, "not json", odd, ""]) + "\n", encoding="utf-8")
    assert [r.custom_id for r in iter_failed(path)] == [r.custom_id for r in iter_settled(path) if r.status == "failed"]
    assert [r.custom_id for r in iter_failed(path)] == ["b", "c"]


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


def _verdict_line(cid: str) -> dict[str, Any]:
    line: dict[str, Any] = json.loads(json.dumps(REAL_LINES[0]))
    line["custom_id"] = cid
    line["result"]["message"]["content"] = [{"type": "text", "text": VERDICT}]
    return line


@st.composite
def _download(draw: st.DrawFn) -> bytes:
    """A batch's download as the provider might send it: real lines, some of them broken."""
    lines = []
    for _ in range(draw(st.integers(0, 5))):
        cid = draw(st.sampled_from(["btv-FEAT-1", "btv-FEAT-2", "btv-OTHER-9", ""]))
        raw = json.dumps(_verdict_line(cid)).encode()
        if draw(st.booleans()):
            raw = draw(_mutated_line()) if draw(st.booleans()) else raw[: draw(st.integers(0, len(raw)))]
        lines.append(raw)
    return b"\n".join(lines) + b"\n" + (b"\xff\xfe not utf-8\n" if draw(st.booleans()) else b"")


@settings(max_examples=40, deadline=None)
@given(_download())
def test_reconcile_settles_a_broken_download(raw: bytes) -> None:
    """Every request of the batch settles once, whatever the download holds; nothing else is applied."""
    with tempfile.TemporaryDirectory() as tmp, pytest.MonkeyPatch.context() as env:
        env.setenv("ANTHROPIC_API_KEY", "sk-ant-test")  # lines are only read: no call is made
        root = Path(tmp)
        layout = _settle_repo(root, raw, "download.jsonl")
        assert main(["reconcile", "--repo", str(root)]) == 0
        jobs, bad = read_queue(layout)
        assert not bad and jobs[0].terminal and jobs[0].result_path is not None
        settled = list(iter_settled(layout.resolve_ops_path(jobs[0].result_path)))
        assert sorted(r.custom_id for r in settled) == ["btv-FEAT-1", "btv-FEAT-2"]
        lines = list(iter_ledger(layout.ledger_file))
        assert sorted(x.custom_id for x in lines) == ["btv-FEAT-1", "btv-FEAT-2"]


_finding = st.fixed_dictionaries(
    {"severity": st.sampled_from(["error", "warning", "info", "fatal"]), "section": short_text,
     "message": short_text, "suggested_fix": short_text}
)  # fmt: skip
_verdict = st.fixed_dictionaries(
    {"valid": st.one_of(st.booleans(), st.just("yes")), "summary": short_text,
     "findings": st.lists(_finding, max_size=22)}
)  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(_verdict, st.booleans(), st.booleans())
def test_an_answer_kept_as_it_came_is_the_models_dump(verdict: dict[str, Any], ascii_only: bool, reorder: bool) -> None:
    if reorder:
        verdict = dict(reversed(list(verdict.items())))
    try:
        text = json.dumps(verdict, separators=(",", ":"), ensure_ascii=ascii_only)
        text.encode("utf-8")
    except UnicodeEncodeError:
        return
    phase = ValidationPhase()
    try:
        expected = Verdict.model_validate_json(text).model_dump_json()
    except ValueError:
        with pytest.raises(OutputError):
            phase.output_json(text)
        return
    assert phase.output_json(text) == expected


def test_the_usual_answer_is_kept_without_a_dump() -> None:
    text = Verdict.model_validate_json(VERDICT).model_dump_json()
    assert _AS_DUMPED.fullmatch(text) and ValidationPhase().output_json(text) is text


def _bounded_text(n: int) -> st.SearchStrategy[str]:
    # Lengths either side of a field's max_length, with characters pydantic escapes now and then.
    return st.builds(
        lambda base, k, odd: (base * (k // max(len(base), 1) + 1))[:k] + odd,
        st.sampled_from(["a", "é", "日本", "\U0001f600", "x y"]),
        st.integers(n - 2, n + 1),
        st.sampled_from(["", "", "", '"', "\\", "\n", "\x7f", "\u2028", "\ud800"]),
    )


_long_finding = st.fixed_dictionaries(
    {"severity": st.sampled_from(["error", "warning", "info"]), "section": _bounded_text(80),
     "message": _bounded_text(600), "suggested_fix": _bounded_text(600)}
)  # fmt: skip
_long_verdict = st.fixed_dictionaries(
    {"valid": st.booleans(), "summary": _bounded_text(600),
     "findings": st.lists(_long_finding, min_size=18, max_size=21)}
)  # fmt: skip


@settings(max_examples=200, deadline=None)
@given(_long_verdict)
def test_the_kept_pattern_holds_every_bound_of_the_schema(verdict: dict[str, Any]) -> None:
    """An answer the pattern keeps is one the model accepts and dumps to the same text; near every bound."""
    text = json.dumps(verdict, separators=(",", ":"), ensure_ascii=False)
    try:
        expected: str | None = Verdict.model_validate_json(text).model_dump_json()
    except ValueError:
        expected = None
    if _AS_DUMPED.fullmatch(text):
        assert expected == text
    phase = ValidationPhase()
    if expected is None:
        with pytest.raises(OutputError):
            phase.output_json(text)
    else:
        assert phase.output_json(text) == expected


@pytest.mark.parametrize(
    ("field", "limit"), [("summary", 600), ("section", 80), ("message", 600), ("suggested_fix", 600), ("findings", 20)]
)
def test_one_past_a_bound_is_refused_as_the_model_refuses_it(field: str, limit: int) -> None:
    finding = {"severity": "info", "section": "s", "message": "m", "suggested_fix": "f"}
    verdict: dict[str, Any] = {"valid": True, "summary": "ok", "findings": [finding]}
    for n, ok in ((limit, True), (limit + 1, False)):
        if field == "findings":
            verdict["findings"] = [finding] * n
        elif field == "summary":
            verdict["summary"] = "é" * n
        else:
            verdict["findings"] = [{**finding, field: "日" * n}]
        text = json.dumps(verdict, separators=(",", ":"), ensure_ascii=False)
        assert bool(_AS_DUMPED.fullmatch(text)) is ok
        if ok:
            assert ValidationPhase().output_json(text) is text
        else:
            with pytest.raises(OutputError):
                ValidationPhase().output_json(text)


def test_a_lone_surrogate_is_not_kept() -> None:
    text = '{"valid":true,"summary":"a\ud800","findings":[]}'
    assert not _AS_DUMPED.fullmatch(text)
    with pytest.raises(OutputError):
        ValidationPhase().output_json(text)


@settings(max_examples=2000, deadline=None)
@given(
    st.one_of(
        st.floats(allow_nan=False, allow_infinity=False),
        st.floats(min_value=1e-5, max_value=1e-3),
        st.floats(min_value=1e15, max_value=1e17),
        st.sampled_from([0.0, -0.0, 1e-4, -1e-4, 9.999999999999999e-05, 1e16, 9999999999999998.0, 5e-324, 0.1 + 0.2]),
    )
)
def test_a_float_in_a_ledger_line_is_pydantics_text(value: float) -> None:
    row = LedgerRow(
        "2026-01-01T00:00:00Z", "w", "p", "job-1", None, "c-1", None, "anthropic", "cheap", "m", "batch",
        1, 2, 3, 4, value, abs(value), 0.0,  "succeeded",
    )  # fmt: skip
    expected = LedgerLine.model_validate(msgspec.structs.asdict(row)).model_dump_json()
    assert _encode_lines([_ledger_line(row)]) == (expected + "\n").encode()
    assert f'"cost_usd":{pydantic_core.to_json(value).decode()},' in expected


def test_the_ascii_pattern_is_the_pattern_on_ascii_text() -> None:
    import re

    from batch_ops.phases.validation import _AS_DUMPED_ASCII

    assert _AS_DUMPED_ASCII.pattern.replace(r"[ !#-\[\]-\x7f]", "C") == _AS_DUMPED.pattern.replace(
        r'[^"\\\x00-\x1f\ud800-\udfff]', "C"
    )
    for c in map(chr, range(128)):
        assert bool(re.fullmatch(r"[ !#-\[\]-\x7f]", c)) == bool(re.fullmatch(r'[^"\\\x00-\x1f\ud800-\udfff]', c))
