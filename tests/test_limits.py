"""Limits (issue #3 §3): batch size and request count, cache-prefix grouping, concurrency, custom_ids,
and the policy's ``enabled`` / ``eligiblePhases``. Real CLI or real Engine, real SDK, real sandbox.
"""

from __future__ import annotations

import json
import re
import shutil
import time
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from anthropic._utils._json import openapi_dumps

from batch_ops.cli import main
from batch_ops.config import parse_config
from batch_ops.engine import Engine, PlanItem, RunSummary, cache_prefix_key, plan_chunks
from batch_ops.paths import Layout
from batch_ops.phases import all_phases
from batch_ops.phases.base import ApplySummary, ItemMeta, Phase, PhaseContext, PlannedItem, PlannedJob, SettledResult
from batch_ops.providers.anthropic import AnthropicProvider
from batch_ops.providers.base import ProviderRequest
from batch_ops.sandbox import SandboxServer
from tests.conftest import TEST_KEY
from tests.policy_support import (  # validation_only_in_batch: autouse, active where imported
    CHEAP,
    FRONTIER,
    assert_ledger_once,
    assert_no_duplicate_batches,
    batch_sizes,
    configure,
    job_by_alias,
    jobs,
    ledger,
    reconcile_until_done,
    validation_only_in_batch,  # noqa: F401
)


def _payload(repo: Path, alias: str) -> list[dict[str, Any]]:
    job = job_by_alias(repo, alias)
    text = Layout(repo).resolve_ops_path(job.payload_path).read_text(encoding="utf-8")
    return [json.loads(line) for line in text.splitlines() if line.strip()]


# -- size and count -----------------------------------------------------------------------------


def test_request_bytes_are_the_bytes_the_sdk_sends() -> None:
    provider = AnthropicProvider(api_key=TEST_KEY, base_url="http://127.0.0.1:9")
    requests = [
        ProviderRequest(
            custom_id=f"r-{i}",
            params={"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": f"é ✓ “{i}” \u2028 \\"}]},
        )
        for i in range(3)
    ]
    body = openapi_dumps({"requests": [{"custom_id": r.custom_id, "params": r.params} for r in requests]})
    # Each request counts its separator; the last one has none.
    assert provider.envelope_bytes() + sum(provider.request_bytes(r) for r in requests) - 1 == len(body)


def test_chunks_respect_the_request_count(
    cli: Any, sample_repo: Path, sandbox: SandboxServer, monkeypatch: Any
) -> None:
    configure(sample_repo)
    monkeypatch.setenv("BATCH_OPS_MAX_BATCH_REQUESTS", "3")
    assert cli(sample_repo, "enqueue").code == 0
    assert cli(sample_repo, "submit").code == 0
    assert batch_sizes(sandbox) == [3, 3, 1, 3, 1]
    reconcile_until_done(cli, sample_repo)
    for job in jobs(sample_repo):
        assert job.status == "completed" and len(job.batches) == (3 if job.model_alias == "cheap" else 2)
    assert_no_duplicate_batches(sample_repo, sandbox)
    assert len(assert_ledger_once(sample_repo)) == CHEAP + FRONTIER


def test_chunks_respect_the_body_size_to_the_byte(
    sample_repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The engine's limit lets the first two requests just fit; a sandbox one byte stricter refuses them."""
    configure(sample_repo)
    strict = tmp_path / "strict"
    shutil.copytree(sample_repo, strict)
    provider = AnthropicProvider(api_key=TEST_KEY, base_url="http://127.0.0.1:9")
    assert main(["enqueue", "--repo", str(sample_repo)]) == 0
    sizes = [
        provider.request_bytes(ProviderRequest(custom_id=r["custom_id"], params=r["params"]))
        for r in _payload(sample_repo, "cheap")
    ]
    limit = provider.envelope_bytes() + sizes[0] + sizes[1]
    items = [PlanItem(str(i), s, None) for i, s in enumerate(sizes)]
    expected = plan_chunks(items, 100, limit - provider.envelope_bytes())
    assert len(expected[0]) == 2 and len(expected) > 2
    first_body = limit - 1  # the last request of a body carries no separator
    monkeypatch.setenv("ANTHROPIC_API_KEY", TEST_KEY)
    monkeypatch.setenv("BATCH_OPS_MAX_BATCH_BYTES", str(limit))
    with SandboxServer(processing_seconds=0.2, max_body_bytes=first_body) as srv:
        monkeypatch.setenv("ANTHROPIC_BASE_URL", srv.url)
        assert main(["submit", "--repo", str(sample_repo)]) == 0
        assert not any(b.status == "rejected" for j in jobs(sample_repo) for b in j.batches)
        assert batch_sizes(srv)[: len(expected)] == [len(c) for c in expected]
    with SandboxServer(processing_seconds=0.2, max_body_bytes=first_body - 1) as srv:
        monkeypatch.setenv("ANTHROPIC_BASE_URL", srv.url)
        assert main(["enqueue", "--repo", str(strict)]) == 0
        assert main(["submit", "--repo", str(strict)]) == 0
        first = job_by_alias(strict, "cheap").batches[0]
        assert first.status == "rejected" and "413" in (first.error or "")


def test_a_request_bigger_than_a_batch_fails_its_job_locally(
    cli: Any, sample_repo: Path, sandbox: SandboxServer, monkeypatch: Any
) -> None:
    configure(sample_repo)
    monkeypatch.setenv("BATCH_OPS_MAX_BATCH_BYTES", "500")
    assert cli(sample_repo, "enqueue").code == 0
    assert cli(sample_repo, "submit").code == 0
    assert sandbox.calls["create"] == 0
    for job in jobs(sample_repo):
        assert job.status == "failed" and "more than a whole batch may hold" in (job.error or "")


def test_limits_are_never_above_the_api_s() -> None:
    layout = Layout(Path("/nonexistent"))
    engine = Engine(layout, parse_config({}), {}, max_batch_requests=10**9, max_batch_bytes=10**12)
    assert engine.max_batch_requests == 100_000 and engine.max_batch_bytes == 256 * 1000 * 1000


# -- cache-prefix grouping ----------------------------------------------------------------------


def _params(system: str, user: str, cached: bool = True) -> dict[str, Any]:
    block: dict[str, Any] = {"type": "text", "text": system}
    if cached:
        block["cache_control"] = {"type": "ephemeral"}
    message = {"role": "user", "content": user}
    return {"model": "claude-haiku-4-5", "max_tokens": 64, "system": [block], "messages": [message]}


def test_cache_prefix_key_follows_the_last_breakpoint() -> None:
    a1, a2 = _params("shared rubric A", "ticket 1"), _params("shared rubric A", "ticket 2")
    assert cache_prefix_key(a1) == cache_prefix_key(a2) is not None
    assert cache_prefix_key(_params("rubric B", "ticket 1")) != cache_prefix_key(a1)
    assert cache_prefix_key(_params("shared rubric A", "ticket 1", cached=False)) is None
    other_model = {**a1, "model": "claude-opus-4-6"}
    assert cache_prefix_key(other_model) != cache_prefix_key(a1)
    # A breakpoint in the messages moves the prefix: the user text is then part of it.
    marked = {"type": "text", "text": "t", "cache_control": {"type": "ephemeral"}}
    deep = {**a1, "messages": [{"role": "user", "content": [marked]}]}
    assert cache_prefix_key(deep) != cache_prefix_key(a1)
    assert cache_prefix_key({**a1, "system": "plain", "cache_control": {"type": "ephemeral"}}) is not None


def test_cache_prefix_key_is_the_same_with_the_memo() -> None:
    """The memo of a planning pass gives each prefix the key its canonical JSON gives."""
    a1 = _params("shared rubric A", "ticket 1")
    tool = {"name": "t", "input_schema": {"type": "object", "properties": {"n": {"type": "integer", "minimum": 1}}}}
    variants = [
        a1, _params("shared rubric A", "ticket 2"), _params("rubric B", "ticket 1"),
        {**a1, "model": "claude-opus-4-6"}, {**a1, "tools": [tool]},
        {**a1, "tools": [{**tool, "input_schema": {"minimum": True}}]},
        {**a1, "tools": [{**tool, "input_schema": {"minimum": 1.0}}]},
        {**a1, "system": [{"type": "text", "text": "x", "cache_control": {"type": "ephemeral", "ttl": "1h"}}]},
        {**a1, "system": [{"text": "x", "type": "text", "cache_control": {"ttl": "1h", "type": "ephemeral"}}]},
        {**a1, "system": [{"type": "text", "text": ["x"], "cache_control": {"type": "ephemeral"}}]},
        {**a1, "system": [{"type": "text", "text": {"x": None}, "cache_control": {"type": "ephemeral"}}]},
        {**a1, "system": "plain", "cache_control": {"type": "ephemeral"}},
        _params("shared rubric A", "ticket 1", cached=False),
    ]  # fmt: skip
    memo: dict[Any, str] = {}
    for _ in range(2):
        for params in variants:
            assert cache_prefix_key(params, memo) == cache_prefix_key(params)
    keys = [cache_prefix_key(p) for p in variants]
    assert keys[0] == keys[1] and keys[5] != keys[4] != keys[6] and keys[7] == keys[8] and keys[9] != keys[10]


def test_plan_keeps_a_shared_prefix_in_one_batch() -> None:
    items = [PlanItem(f"{p}{i}", 10, p) for i in range(3) for p in "AB"]  # A0 B0 A1 B1 A2 B2
    assert [[i.custom_id for i in c] for c in plan_chunks(items, 3, 10_000)] == [["A0", "A1", "A2"], ["B0", "B1", "B2"]]
    # Without a cached prefix, payload order is kept.
    plain = [PlanItem(f"x{i}", 10, None) for i in range(5)]
    assert [[i.custom_id for i in c] for c in plan_chunks(plain, 2, 10_000)] == [["x0", "x1"], ["x2", "x3"], ["x4"]]
    # A group that does not fit where it is starts a new batch rather than being split...
    mixed = [PlanItem("x", 10, None), PlanItem("A0", 10, "A"), PlanItem("A1", 10, "A"), PlanItem("A2", 10, "A")]
    assert [[i.custom_id for i in c] for c in plan_chunks(mixed, 3, 10_000)] == [["x"], ["A0", "A1", "A2"]]
    # ...and one bigger than a whole batch is split where it must be, by count and by bytes.
    big = [PlanItem(f"A{i}", 10, "A") for i in range(5)]
    assert [len(c) for c in plan_chunks(big, 2, 10_000)] == [2, 2, 1]
    assert [len(c) for c in plan_chunks(big, 100, 30)] == [3, 2]


class ScriptedPhase(Phase):
    """A phase whose requests are given by the test; answers are kept as they come."""

    name = "refinement"
    workflow = "refinement"
    code = "ref"

    def __init__(self, items: list[PlannedItem]) -> None:
        self.items = items

    def plan(self, ctx: PhaseContext) -> list[PlannedJob]:
        return [PlannedJob(model_alias="cheap", items=self.items)]

    def parse_output(self, text: str) -> dict[str, Any]:
        return {"text": text}

    def apply(self, ctx: PhaseContext, job_id: str, results: Iterator[SettledResult]) -> ApplySummary:
        return ApplySummary(applied=sum(1 for _ in results))


def test_requests_sharing_a_cached_prefix_go_out_together(tmp_path: Path) -> None:
    prefixes = ["Rubric A. " * 50, "Rubric B. " * 50]
    items = [
        PlannedItem(
            custom_id=f"ref-T-{i}", params=_params(prefixes[i % 2], f"ticket {i}"), meta=ItemMeta(ticket_id=f"T-{i}")
        )
        for i in range(6)
    ]
    config = parse_config(
        {"llmOps": {"batchPolicy": {"forceBatchWhenQueueOver": 0, "retryPolicy": {"initialDelaySeconds": 0.01}}}}
    )
    layout = Layout(tmp_path)
    with SandboxServer(processing_seconds=0.1, scenario={"min_cacheable": {"claude-haiku-4-5": 10}}) as srv:
        engine = Engine(
            layout,
            config,
            {"refinement": ScriptedPhase(items)},
            lambda: AnthropicProvider(api_key=TEST_KEY, base_url=srv.url),
            max_batch_requests=3,
        )
        summary = RunSummary()
        engine.enqueue(["refinement"], summary)
        engine.submit(summary)
        assert batch_sizes(srv) == [3, 3]
        deadline = time.monotonic() + 10
        while not all(j.terminal for j in jobs(tmp_path)):
            assert time.monotonic() < deadline
            time.sleep(0.1)
            engine.reconcile(summary)
    by_batch: dict[str | None, set[str]] = defaultdict(set)
    for line in ledger(tmp_path):
        by_batch[line.batch_id].add(prefixes[int(line.custom_id.rsplit("-", 1)[1]) % 2])
    assert len(by_batch) == 2 and all(len(p) == 1 for p in by_batch.values())
    # Grouped, each batch writes its prefix once and reads it for the other two requests.
    assert sum(1 for line in ledger(tmp_path) if line.cache_read_input_tokens > 0) == 4


# -- concurrency --------------------------------------------------------------------------------


@pytest.mark.parametrize("cap", [1, 2])
def test_never_more_batches_in_flight_than_the_cap(
    cli: Any, sample_repo: Path, sandbox: SandboxServer, monkeypatch: Any, cap: int
) -> None:
    configure(sample_repo, maxConcurrentBatchJobs=cap)
    monkeypatch.setenv("BATCH_OPS_MAX_BATCH_REQUESTS", "3")
    assert cli(sample_repo, "enqueue").code == 0
    res = cli(sample_repo, "submit")
    assert res.code == 0 and f"waiting for a slot (maxConcurrentBatchJobs={cap})" in res.out
    assert len(sandbox.batch_summaries()) == cap
    end = time.monotonic() + 30
    peak = 0
    while not all(j.terminal for j in jobs(sample_repo)):
        assert time.monotonic() < end
        assert cli(sample_repo, "reconcile").code == 0
        in_progress = sum(1 for b in sandbox.batch_summaries() if b["processing_status"] == "in_progress")
        in_flight = sum(len(j.in_flight()) for j in jobs(sample_repo))
        assert in_progress <= cap and in_flight <= cap
        peak = max(peak, in_progress)
        time.sleep(0.05)
    assert peak == cap
    assert batch_sizes(sandbox) == [3, 3, 1, 3, 1][: len(batch_sizes(sandbox))] and len(batch_sizes(sandbox)) == 5
    assert all(j.status == "completed" for j in jobs(sample_repo))
    assert_no_duplicate_batches(sample_repo, sandbox)
    assert len(assert_ledger_once(sample_repo)) == CHEAP + FRONTIER


# -- custom_ids ---------------------------------------------------------------------------------


def test_custom_ids_are_deterministic_valid_unique_and_map_back(cli: Any, sample_repo: Path, tmp_path: Path) -> None:
    configure(sample_repo)
    other = tmp_path / "second"
    shutil.copytree(sample_repo, other)
    assert cli(sample_repo, "enqueue").code == 0
    assert cli(other, "enqueue").code == 0
    codes = {p.code: p.name for p in all_phases().values()}
    for alias in ("cheap", "frontier"):
        first = [r["custom_id"] for r in _payload(sample_repo, alias)]
        assert first == [r["custom_id"] for r in _payload(other, alias)]  # same tickets, same ids
        assert len(first) == len(set(first))
        for record in _payload(sample_repo, alias):
            cid = record["custom_id"]
            assert re.fullmatch(r"[a-zA-Z0-9_-]{1,64}", cid)
            code, ticket = cid.split("-", 1)
            assert codes[code] == "bulk-ticket-validation" and ticket == record["meta"]["ticket_id"]


# -- enabled and eligiblePhases -----------------------------------------------------------------


def test_a_disabled_policy_is_refused(cli: Any, sample_repo: Path, sandbox: SandboxServer) -> None:
    configure(sample_repo)
    assert cli(sample_repo, "enqueue").code == 0
    configure(sample_repo, enabled=False)
    res = cli(sample_repo, "enqueue")
    assert res.code == 2 and "llmOps.batchPolicy.enabled is false" in res.err
    res = cli(sample_repo, "submit")
    assert res.code == 2 and "switched off" in res.err
    assert sandbox.calls["create"] == 0
    assert all(j.status == "queued" for j in jobs(sample_repo))


def test_an_ineligible_phase_is_refused(cli: Any, sample_repo: Path, sandbox: SandboxServer) -> None:
    configure(sample_repo)
    assert cli(sample_repo, "enqueue").code == 0
    configure(sample_repo, eligiblePhases=["refinement"])
    res = cli(sample_repo, "enqueue", "--phase", "bulk-ticket-validation")
    assert res.code == 2 and "not in llmOps.batchPolicy.eligiblePhases (refinement)" in res.err
    res = cli(sample_repo, "submit")
    assert res.code == 2
    assert "refused: phase 'bulk-ticket-validation' is not in llmOps.batchPolicy.eligiblePhases" in res.out
    assert sandbox.calls["create"] == 0
    assert all(j.status == "queued" for j in jobs(sample_repo))
    configure(sample_repo, eligiblePhases=["bulk-ticket-validation"])
    assert cli(sample_repo, "submit").code == 0
    assert sandbox.calls["create"] == 2


def test_a_disabled_policy_still_settles_batches_in_flight_but_sends_no_follow_up(
    cli: Any, sample_repo: Path, sandbox: SandboxServer
) -> None:
    configure(sample_repo)
    sandbox.set_scenario({"requests": {"errored_every": 3}})
    assert cli(sample_repo, "enqueue").code == 0
    assert cli(sample_repo, "submit").code == 0
    sandbox.set_scenario(None)
    configure(sample_repo, enabled=False)
    time.sleep(0.4)
    res = cli(sample_repo, "reconcile")
    assert res.code == 0 and "follow-up batches are not sent" in res.out
    assert len(ledger(sample_repo)) == CHEAP + FRONTIER - 3  # the settled ones are recorded
    assert batch_sizes(sandbox) == [CHEAP, FRONTIER]
    assert all(j.status == "queued" and j.round == 2 for j in jobs(sample_repo))
    configure(sample_repo, enabled=True)
    reconcile_until_done(cli, sample_repo)
    assert batch_sizes(sandbox) == [CHEAP, FRONTIER, 2, 1]
    assert len(assert_ledger_once(sample_repo)) == CHEAP + FRONTIER
