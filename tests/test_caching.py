"""The per-job caching decision at its boundaries, the TTL choice, and where the breakpoint goes."""

from __future__ import annotations

from typing import Any

import pytest

from batch_ops import caching
from batch_ops.config import DEFAULT_MODELS, parse_config
from batch_ops.jobplan import caching_allowed, prepare
from batch_ops.phases.base import PlannedItem

CHEAP = DEFAULT_MODELS["cheap"]  # 4096-token minimum, writes 1.25x (5m) / 2x (1h), reads 0.1x
MIN = CHEAP.min_cacheable_tokens


def test_prefix_below_the_minimum_never_caches() -> None:
    assert not caching.decide(MIN - 1, 1000, CHEAP, "interactive").enabled
    assert "minimum" in caching.decide(MIN - 1, 1000, CHEAP, "interactive").reason
    assert caching.decide(MIN, 1000, CHEAP, "interactive").enabled


def test_one_request_never_repays_a_write() -> None:
    for mode in ("interactive", "batch"):
        decision = caching.decide(10 * MIN, 1, CHEAP, mode, expected_batch_seconds=10)
        assert not decision.enabled and decision.prefix_cost_with_usd > decision.prefix_cost_without_usd


@pytest.mark.parametrize(
    ("mode", "wait", "n", "expected"),
    [
        # Interactive, 5m, every later request reads: 1.25 + 0.1 (n-1) < n from n = 2.
        ("interactive", None, 2, True),
        # Batch that ended fast before, 5m, 70 % reads: 1.25 + 0.445 (n-1) < n from n = 2.
        ("batch", 60.0, 2, True),
        # Batch with no history (may outlive 5 minutes), 1h, 70 % reads: 2 + 0.67 (n-1) < n from n = 5.
        ("batch", None, 4, False),
        ("batch", None, 5, True),
        # A slow batch history also means the hour.
        ("batch", 900.0, 4, False),
        ("batch", 900.0, 5, True),
    ],
)
def test_break_even_request_counts(mode: str, wait: float | None, n: int, expected: bool) -> None:
    decision = caching.decide(MIN, n, CHEAP, mode, expected_batch_seconds=wait)
    assert decision.enabled is expected, decision.reason
    # The rule is exactly "expected cost with caching strictly below the cost without".
    assert (decision.prefix_cost_with_usd < decision.prefix_cost_without_usd) is expected


def test_break_even_is_strict_and_uses_the_configured_multipliers() -> None:
    # Reads as dear as writes and every request hitting: 1.25 + 1.25 (n-1) never beats n.
    price = CHEAP.model_copy(update={"cache_read_multiplier": 1.0, "cache_write_5m_multiplier": 1.0})
    decision = caching.decide(MIN, 50, price, "interactive")
    assert decision.prefix_cost_with_usd == decision.prefix_cost_without_usd and not decision.enabled


def test_ttl_follows_the_expected_wait() -> None:
    assert caching.choose_ttl("interactive", None)[0] == "5m"
    assert caching.choose_ttl("batch", None)[0] == "1h"
    assert caching.choose_ttl("batch", 300.0)[0] == "5m"
    assert caching.choose_ttl("batch", 301.0)[0] == "1h"
    spans = [(0.0, 10.0), (100.0, 2000.0), (5000.0, 5020.0)]
    assert caching.expected_batch_seconds(spans) == 20.0
    assert caching.expected_batch_seconds([]) is None


def _item(cid: str, system: list[dict[str, Any]]) -> PlannedItem:
    return PlannedItem(
        custom_id=cid,
        params={"model": "claude-haiku-4-5", "max_tokens": 100, "system": system,
                "messages": [{"role": "user", "content": cid}]},
    )  # fmt: skip


def test_prepare_marks_the_last_system_block_and_never_leaks_into_shared_lists() -> None:
    shared = [{"type": "text", "text": "x" * (4 * MIN)}, {"type": "text", "text": "conventions"}]
    items = [_item(f"r{i}", shared) for i in range(3)]
    other = _item("other", shared)
    plan = prepare(parse_config({}), [], "cheap", items, "interactive")
    assert plan.cache.enabled and plan.cache.ttl == "5m"
    for item in items:
        assert item.params["system"][-1]["cache_control"] == {"type": "ephemeral"}
        assert "cache_control" not in item.params["system"][0]
    assert all("cache_control" not in block for block in shared + other.params["system"])
    batch = [_item(f"b{i}", shared) for i in range(6)]
    assert prepare(parse_config({}), [], "cheap", batch, "batch").cache.ttl == "1h"
    assert batch[0].params["system"][-1]["cache_control"] == {"type": "ephemeral", "ttl": "1h"}


def test_the_toolkit_switch_turns_caching_off() -> None:
    off = parse_config({"llmOps": {"cachePolicy": {"providerPromptCaching": False}}})
    assert not caching_allowed(off) and caching_allowed(parse_config({}))
    items = [_item(f"r{i}", [{"type": "text", "text": "x" * (4 * MIN)}]) for i in range(10)]
    plan = prepare(off, [], "cheap", items, "interactive")
    assert not plan.cache.enabled and "switched off" in plan.cache.reason
    assert all("cache_control" not in it.params["system"][-1] for it in items)
