from __future__ import annotations

import json
from pathlib import Path

import msgspec
from hypothesis import given, settings
from hypothesis import strategies as st

from batch_ops.config import DEFAULT_MODELS
from batch_ops.ledger import (
    LedgerAppend,
    LedgerLine,
    LedgerProblem,
    LedgerSummary,
    Usage,
    _read_row,
    append_lines,
    iter_ledger,
    keys_for_batch,
    price_usage,
    read_summary,
    refresh_summary,
    summary_path,
)
from tests.hostile.strategies import ODD_NUMBERS, json_values, short_text


def _line(cid: str, batch: str = "b1") -> LedgerLine:
    cost = price_usage(Usage(input_tokens=1000, output_tokens=200), DEFAULT_MODELS["cheap"], "batch")
    return LedgerLine(
        timestamp="2026-01-01T00:00:00Z", workflow="w", phase="p", job_id="job-1", batch_id=batch, custom_id=cid,
        ticket_id="T-1", provider="anthropic", model_alias="cheap", model="claude-haiku-4-5", mode="batch",
        input_tokens=1000, output_tokens=200, cache_creation_input_tokens=0, cache_read_input_tokens=0,
        status="succeeded", **cost.model_dump(),
    )  # fmt: skip


def test_batch_price_is_exactly_half_and_savings_add_up() -> None:
    price = DEFAULT_MODELS["frontier"]
    usage = Usage(input_tokens=12345, output_tokens=678, cache_creation_input_tokens=4096, cache_read_input_tokens=999)
    batch = price_usage(usage, price, "batch")
    inter = price_usage(usage, price, "interactive")
    assert batch.cost_usd * 2 == batch.interactive_cost_usd == inter.cost_usd
    assert inter.savings_usd == 0
    expected = (12345 * 5 + 4096 * 5 * 1.25 + 999 * 5 * 0.1 + 678 * 25) / 1e6
    assert abs(inter.cost_usd - expected) < 1e-12


def test_one_hour_cache_writes_cost_twice_base() -> None:
    price = DEFAULT_MODELS["cheap"]
    five = price_usage(Usage(cache_creation_input_tokens=1_000_000), price, "interactive")
    hour = price_usage(
        Usage(cache_creation_input_tokens=1_000_000, cache_creation_1h_input_tokens=1_000_000), price, "interactive"
    )
    assert five.cost_usd == 1.25 and hour.cost_usd == 2.0


def test_append_survives_a_torn_last_line(tmp_path: Path) -> None:
    path = tmp_path / "ledger.jsonl"
    append_lines(path, [_line("a")])
    with open(path, "a") as fh:
        fh.write('{"timestamp": "2026-01-01T00:0')  # a kill mid-write
    assert append_lines(path, [_line("b"), _line("c")]) == 2
    problems: list[LedgerProblem] = []
    got = [line.custom_id for line in iter_ledger(path, problems)]
    assert got == ["a", "b", "c"]
    assert [p.line_number for p in problems] == [2]


def test_keys_for_batch_finds_what_is_already_written(tmp_path: Path) -> None:
    path = tmp_path / "ledger.jsonl"
    append_lines(path, [_line("a"), _line("b", batch="b2"), _line("c")])
    assert keys_for_batch(path, "job-1", "b1") == {"a", "c"}
    assert keys_for_batch(path, "job-9", "b1") == set()


def _full_scan(path: Path) -> tuple[int, float, list[int]]:
    problems: list[LedgerProblem] = []
    lines = list(iter_ledger(path, problems))
    return len(lines), sum(x.cost_usd for x in lines), [p.line_number for p in problems]


def _from_summary(path: Path) -> tuple[int, float, list[int]]:
    summary = read_summary(path)
    totals = summary.totals()
    return totals["requests"], totals["cost_usd"], [p.line_number for p in summary.problems]


def _same(a: tuple[int, float, list[int]], b: tuple[int, float, list[int]]) -> bool:
    return a[0] == b[0] and abs(a[1] - b[1]) < 1e-9 and a[2] == b[2]


def test_summary_follows_appends_and_matches_a_full_scan(tmp_path: Path) -> None:
    path = tmp_path / "usage-ledger.jsonl"
    append_lines(path, [_line("a"), _line("b")])
    append_lines(path, [_line("c")])
    stored = LedgerSummary.model_validate_json(summary_path(path).read_text())
    assert stored.ledger_bytes == path.stat().st_size and stored.lines == 3
    assert _same(_from_summary(path), _full_scan(path))
    assert _from_summary(path)[0] == 3


def test_summary_reports_a_torn_line_like_the_reader(tmp_path: Path) -> None:
    path = tmp_path / "usage-ledger.jsonl"
    append_lines(path, [_line("a")])
    with open(path, "a") as fh:
        fh.write('{"timestamp": "2026-01-01T00:0')
    assert _same(_from_summary(path), _full_scan(path))  # the fragment, not yet covered
    append_lines(path, [_line("b"), _line("c")])
    assert _same(_from_summary(path), _full_scan(path))
    assert _from_summary(path)[2] == [2]


def test_a_crash_between_append_and_summary_never_double_counts(tmp_path: Path) -> None:
    path = tmp_path / "usage-ledger.jsonl"
    append_lines(path, [_line("a")])
    old = summary_path(path).read_bytes()
    append_lines(path, [_line("b"), _line("c")])
    summary_path(path).write_bytes(old)  # as if killed after the ledger write, before the summary's
    assert _from_summary(path)[0] == 3
    append_lines(path, [_line("d")])  # the next append catches up from the file
    assert _same(_from_summary(path), _full_scan(path)) and _from_summary(path)[0] == 4
    assert LedgerSummary.model_validate_json(summary_path(path).read_text()).ledger_bytes == path.stat().st_size


def test_a_summary_of_another_ledger_is_not_trusted(tmp_path: Path) -> None:
    path = tmp_path / "usage-ledger.jsonl"
    append_lines(path, [_line("a"), _line("b")])
    text = path.read_text().replace('"custom_id":"a"', '"custom_id":"x"')  # same size, other history
    path.write_text(text)
    path.write_text(text.replace('"input_tokens":1000', '"input_tokens":9999', 1))
    assert read_summary(path).totals()["input_tokens"] == 9999 + 1000
    summary_path(path).write_text("not json")
    assert _same(_from_summary(path), _full_scan(path))
    refresh_summary(path)
    assert read_summary(path).totals()["requests"] == 2


def test_staged_append_writes_everything_once(tmp_path: Path) -> None:
    path = tmp_path / "usage-ledger.jsonl"
    append_lines(path, [_line("a")])
    staged = LedgerAppend(path, tmp_path / "stage" / "b1.ledger.part")
    for cid in ("b", "c", "d"):
        staged.add(_line(cid))
    assert [x.custom_id for x in iter_ledger(path)] == ["a"]
    assert staged.commit() == 3
    assert [x.custom_id for x in iter_ledger(path)] == ["a", "b", "c", "d"]
    assert not (tmp_path / "stage" / "b1.ledger.part").exists()
    assert _same(_from_summary(path), _full_scan(path))


@st.composite
def _odd_ledger_line(draw: st.DrawFn) -> bytes:
    """A real ledger line with up to three changes: a field gone, an odd number, a wrong type, an extra key."""
    doc = json.loads(_line("c-1").model_dump_json())
    for _ in range(draw(st.integers(0, 3))):
        key = draw(st.sampled_from(sorted(doc)))
        action = draw(st.integers(0, 3))
        if action == 0:
            del doc[key]
        elif action == 1:
            doc[key] = draw(st.sampled_from([*ODD_NUMBERS, 1e400, 5.0, "batch", "interactive", "x"]))
        elif action == 2:
            doc[draw(short_text)] = draw(json_values)
        else:
            doc[key] = draw(json_values)
        if not doc:
            break
    text = json.dumps(doc, ensure_ascii=draw(st.booleans()), allow_nan=True).replace("1e+400", "1e400")
    return text.encode("utf-8", "surrogatepass") + b"\n"


@settings(max_examples=500, deadline=None)
@given(_odd_ledger_line())
def test_a_line_the_fast_reader_takes_is_the_models_line(raw: bytes) -> None:
    """The summary's fast reader takes only lines the model takes, and reads the same values."""
    fields = _read_row(raw)
    if fields is None:
        return
    model = LedgerLine.model_validate_json(raw.decode("utf-8", errors="replace"))
    assert {k: getattr(model, k) for k in msgspec.structs.asdict(fields)} == msgspec.structs.asdict(fields)


def test_a_rebuilt_summary_reads_odd_lines_as_the_model_does(tmp_path: Path) -> None:
    """Fast and slow lines mixed: the same totals and problems as a line-by-line reading by the model."""
    good = [_line(f"c-{i}").model_dump_json() for i in range(4)]
    lines = [
        good[0],
        good[1].replace('"input_tokens":1000', '"input_tokens":"1000"'),  # the model's lax reading takes it
        good[2].replace('"cost_usd":', '"cost_usd":1e400,"was":'),  # too large: a problem for both
        good[3].replace('"mode":"batch"', '"mode":"other"'),
        '{"timestamp": "2026-01-01T00:00:00Z"}',
        good[0].replace('"c-0"', '"c-9"'),
    ]
    ledger = tmp_path / "usage-ledger.jsonl"
    ledger.write_text("\n".join(lines) + "\n", encoding="utf-8")
    summary = refresh_summary(ledger)
    problems: list[LedgerProblem] = []
    read = list(iter_ledger(ledger, problems))
    assert summary.lines == 6 and [p.line_number for p in summary.problems] == [p.line_number for p in problems]
    assert summary.problem_count == 3 and len(read) == 3
    assert summary.totals()["requests"] == 3
    assert summary.totals()["input_tokens"] == sum(line.input_tokens for line in read)


def test_the_msgspec_rows_have_the_models_fields_in_order() -> None:
    """The rows are written and read as the models' text: a field added to one is added to both."""
    from batch_ops.engine import _SettledRow
    from batch_ops.ledger import LedgerRow, TokenCounts
    from batch_ops.phases.base import SettledResult

    assert LedgerRow.__struct_fields__ == tuple(LedgerLine.model_fields)
    assert _SettledRow.__struct_fields__ == tuple(SettledResult.model_fields)
    assert TokenCounts.__struct_fields__ == tuple(Usage.model_fields)
