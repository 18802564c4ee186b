from __future__ import annotations

from pathlib import Path

from batch_ops.config import DEFAULT_MODELS
from batch_ops.ledger import LedgerLine, LedgerProblem, Usage, append_lines, iter_ledger, keys_for_batch, price_usage


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
