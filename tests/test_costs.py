"""``batch-ops report`` from the ledger's summary gives what a full pass over the ledger gives.

The reference below is the report's former implementation, kept verbatim: it priced and grouped
every ledger line in memory (113 s and 3.3 GB for a million lines). The report now reads the
summary's cells. Its sums are exact (the float nearest the true sum of the lines' floats), where
the old ones rounded at every line in ledger order; so the numbers agree to within the old
rounding error, the rendered report is the same text but where a figure sits exactly on a
rounding boundary of its printed form (costs in whole micro-dollars often do: $1.27945), and a
summary kept current append by append gives exactly, bit for bit, what one rebuilt from the
ledger gives (the fallback when the summary is missing or stale).
"""

from __future__ import annotations

import json
import math
import random
import re
from collections.abc import Callable, Iterable
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from batch_ops.caching import CacheDecision
from batch_ops.config import Config, ModelPrice
from batch_ops.costs import CostSummary, Totals, summarize, uncached_cost
from batch_ops.errors import ConfigError
from batch_ops.ledger import (
    LedgerAppend,
    LedgerLine,
    LedgerProblem,
    LedgerSummary,
    Usage,
    append_lines,
    iter_ledger,
    price_usage,
    read_summary,
    summary_path,
)
from batch_ops.markdown import cell
from batch_ops.paths import Layout
from batch_ops.phases.cost_report import _key_cell, json_indented, plain_summary, render
from batch_ops.queue import JobRecord

# -- the former implementation, the reference -------------------------------------------------


def _grouped(
    lines: Iterable[tuple[LedgerLine, float]], key: Callable[[LedgerLine], tuple[str, ...]], names: tuple[str, ...]
) -> list[dict[str, Any]]:
    groups: dict[tuple[str, ...], Totals] = {}
    for line, uncached in lines:
        groups.setdefault(key(line), Totals()).add(line, uncached)
    return [{**dict(zip(names, k, strict=True)), **t.row()} for k, t in sorted(groups.items())]


def full_scan_summarize(
    layout: Layout, config: Config, *, jobs: list[JobRecord], exclude_phases: frozenset[str] = frozenset()
) -> CostSummary:
    problems: list[LedgerProblem] = []
    priced = [
        (line, uncached_cost(line, config))
        for line in iter_ledger(layout.ledger_file, problems)
        if line.phase not in exclude_phases
    ]
    total = Totals()
    for line, uncached in priced:
        total.add(line, uncached)
    by_job = _grouped(
        priced, lambda x: (x.job_id, x.phase, x.model_alias, x.mode), ("job_id", "phase", "model_alias", "mode")
    )
    known = {j.id: j for j in jobs}
    for row in by_job:
        job = known.get(row["job_id"])
        row["caching"] = job.cache.model_dump() if job is not None and job.cache is not None else None
    return CostSummary(
        totals=total.row(),
        by_day=_grouped(priced, lambda x: (x.timestamp[:10],), ("day",)),
        by_phase=_grouped(priced, lambda x: (x.phase,), ("phase",)),
        by_model=_grouped(priced, lambda x: (x.model_alias, x.model), ("model_alias", "model")),
        by_mode=_grouped(priced, lambda x: (x.mode,), ("mode",)),
        by_job=by_job,
        ledger_problems=problems,
    )


# -- a generated ledger -----------------------------------------------------------------------

# "legacy" is in no config: its uncached cost falls back to the ledger's own interactive figure.
MODELS = {"cheap": "claude-haiku-4-5", "frontier": "claude-opus-4-6", "legacy": "claude-2"}
PHASES = ("bulk-ticket-validation", "refinement", "duplicate-detection", "cost-report")


def _config() -> Config:
    # A price the defaults do not have, with a cache-write multiplier of its own.
    custom = {
        "model": "claude-haiku-4-5", "inputUsdPerMTok": 0.8, "outputUsdPerMTok": 4.0, "minCacheableTokens": 4096,
        "cacheWrite5mMultiplier": 1.3,
    }  # fmt: skip
    return Config.model_validate({"llmOps": {"models": {"cheap": custom}}})


def _lines(rng: random.Random, config: Config, n: int) -> list[LedgerLine]:
    out = []
    for i in range(n):
        job = rng.randrange(40)
        day = f"2026-0{1 + job // 15}-{1 + job % 15:02d}"
        alias = rng.choice(list(MODELS))
        mode = "batch" if rng.random() < 0.8 else "interactive"
        usage = Usage(
            input_tokens=rng.randrange(50_000),
            output_tokens=rng.randrange(4_000),
            cache_creation_input_tokens=rng.choice([0, 0, rng.randrange(20_000)]),
            cache_read_input_tokens=rng.choice([0, rng.randrange(30_000)]),
        )
        try:
            price = config.price(alias)
        except ConfigError:
            price = ModelPrice.model_validate(
                {"model": MODELS[alias], "inputUsdPerMTok": 8.0, "outputUsdPerMTok": 24.0, "minCacheableTokens": 0}
            )
        cost = price_usage(usage, price, mode)  # type: ignore[arg-type]
        out.append(
            LedgerLine(
                timestamp=f"{day}T{rng.randrange(24):02d}:00:00Z", workflow="w", phase=PHASES[job % 4],
                job_id=f"job-{job:04d}", batch_id=f"b{job}", custom_id=f"c{i}", ticket_id=None, provider="anthropic",
                model_alias=alias, model=MODELS[alias], mode=mode, input_tokens=usage.input_tokens,
                output_tokens=usage.output_tokens, cache_creation_input_tokens=usage.cache_creation_input_tokens,
                cache_read_input_tokens=usage.cache_read_input_tokens,
                status="succeeded" if rng.random() < 0.9 else "failed", **cost.model_dump(),
            )
        )
    return out


def _jobs() -> list[JobRecord]:
    decision = CacheDecision(
        enabled=True, ttl="5m", prefix_tokens=4096, min_cacheable_tokens=1024, sharing_requests=40, hit_rate=0.9,
        prefix_cost_without_usd=0.2, prefix_cost_with_usd=0.05, reason="a long shared prefix",
    )  # fmt: skip
    return [
        JobRecord(
            id=f"job-{k:04d}", workflow="w", phase=PHASES[k % 4], payload_path=f".backlog-ops/payloads/{k}.jsonl",
            model_alias="cheap", created_at="2026-01-01T00:00:00Z", updated_at="2026-01-01T00:00:00Z",
            cache=decision if k % 3 == 0 else None,
        )
        for k in range(0, 40, 2)
    ]


def _write_ledger(layout: Layout, rng: random.Random, config: Config, n: int) -> None:
    """The lines appended in batches of every size, through each of the append APIs."""
    lines = _lines(rng, config, n)
    at = 0
    while at < len(lines):
        size = rng.choice([1, 2, 7, 50, 300])
        batch, at = lines[at : at + size], at + size
        way = rng.randrange(4)
        if way == 0:
            append_lines(layout.ledger_file, batch)
            continue
        staged = LedgerAppend(layout.ledger_file, layout.ops_dir / "stage.part")
        for line in batch:
            if way == 1:
                staged.add(line)
            elif way == 2:
                staged.add_fields(dict(line.__dict__))
            else:
                # As the engine stages a batch: serialised lines, their sums by (model, status).
                f = line.__dict__
                sums = staged.lines_of(
                    line.timestamp[:10], line.workflow, line.phase, line.model_alias, line.mode, line.job_id
                )
                sums.add(line.model, line.status, *(f[k] for k in ("input_tokens", "output_tokens",
                         "cache_creation_input_tokens", "cache_read_input_tokens", "cost_usd",
                         "interactive_cost_usd", "savings_usd")))  # fmt: skip
                staged.add_bytes(line.model_dump_json().encode() + b"\n")
        staged.commit()
        if rng.random() < 0.05:  # a hand-edited line in the middle: reported, not counted
            with open(layout.ledger_file, "a", encoding="utf-8") as fh:
                fh.write('{"timestamp": "2026-01-01T00:00:00Z", "cost_usd": "lots"}\n')


def _same_numbers(new: Any, old: Any, where: str = "") -> None:
    """Equal, floats to within their last bits (the old sums rounded at every line)."""
    if isinstance(old, float) and isinstance(new, float):
        assert math.isclose(new, old, rel_tol=1e-12, abs_tol=1e-15), where
    elif isinstance(old, dict):
        assert isinstance(new, dict) and list(new) == list(old), where
        for key in old:
            _same_numbers(new[key], old[key], f"{where}.{key}")
    elif isinstance(old, list):
        assert isinstance(new, list) and len(new) == len(old), where
        for i, (a, b) in enumerate(zip(new, old, strict=True)):
            _same_numbers(a, b, f"{where}[{i}]")
    else:
        assert new == old and type(new) is type(old), where


JOB_KEY = ("job_id", "phase", "model_alias", "mode")
_FIGURE = re.compile(r"\$?-?\d+(?:\.\d+)?%?")


def _same_text(new: str, old: str) -> None:
    """The same report, but for a printed figure one unit apart in its last digit (a boundary case)."""
    new_lines, old_lines = new.split("\n"), old.split("\n")
    assert len(new_lines) == len(old_lines)
    differ = 0
    for a, b in zip(new_lines, old_lines, strict=True):
        if a == b:
            continue
        differ += 1
        assert _FIGURE.sub("#", a) == _FIGURE.sub("#", b), (a, b)
        for x, y in zip(_FIGURE.findall(a), _FIGURE.findall(b), strict=True):
            if x != y:
                step = 0.01 if x.endswith("%") else 10.0 ** -len(x.rpartition(".")[2].rstrip("%"))
                value = float(x.strip("$%")), float(y.strip("$%"))
                assert abs(value[0] - value[1]) <= step * 1.0001, (a, b)
    assert differ <= max(3, len(old_lines) // 20)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_report_from_the_summary_is_the_full_scan_report(tmp_path: Path, seed: int) -> None:
    layout = Layout(tmp_path)
    layout.ops_dir.mkdir()
    config = _config()
    _write_ledger(layout, random.Random(seed), config, 3000)
    jobs = _jobs()
    for exclude in (frozenset(), frozenset({"cost-report"})):
        old = full_scan_summarize(layout, config, jobs=jobs, exclude_phases=exclude)
        new = summarize(layout, config, jobs=jobs, exclude_phases=exclude)
        assert old.totals["requests"] > 1000
        _same_numbers(plain_summary(new), old.model_dump(mode="json"))
        _same_text(render(new, None, None), render(old, None, None))
        assert new.ledger_problem_count == len(old.ledger_problems)
        # Exact: the float nearest the true sum of the lines' own floats.
        kept = [x for x in iter_ledger(layout.ledger_file) if x.phase not in exclude]
        for name in ("cost_usd", "interactive_cost_usd", "savings_usd"):
            assert new.totals[name] == float(sum(Fraction(getattr(x, name)) for x in kept))
        first = new.by_job[0]
        rows = [x for x in kept if (x.job_id, x.phase, x.model_alias, x.mode) == tuple(first[k] for k in JOB_KEY)]
        assert first["cost_usd"] == float(sum(Fraction(x.cost_usd) for x in rows))
    # The summary, kept current by every append, against one rebuilt from the ledger: the same bits.
    kept = summarize(layout, config, jobs=jobs)
    summary_path(layout.ledger_file).unlink()
    rebuilt = summarize(layout, config, jobs=jobs)
    assert summary_path(layout.ledger_file).exists()  # the report saved the rebuild for next time
    assert json_indented(plain_summary(kept)) == json_indented(plain_summary(rebuilt))
    assert kept.model_dump() == rebuilt.model_dump()


def test_the_summary_stays_small_as_the_ledger_grows(tmp_path: Path) -> None:
    """Its size follows jobs and days: ten times the lines of the same jobs, about the same size."""
    layout = Layout(tmp_path)
    layout.ops_dir.mkdir()
    config = _config()
    rng = random.Random(7)
    _write_ledger(layout, rng, config, 2000)
    small = summary_path(layout.ledger_file).stat().st_size
    _write_ledger(layout, rng, config, 18000)
    assert summary_path(layout.ledger_file).stat().st_size < 2.5 * small
    cells = read_summary(layout.ledger_file).cells
    distinct = {cell[:6] for cell in cells}
    assert len(distinct) <= 40 * len(MODELS) * 2  # jobs x models x modes (a job lives on one day)
    assert len(cells) <= 2 * len(distinct) + 64  # appends add cells at the end until a compaction


def test_a_damaged_summary_is_rebuilt_not_trusted(tmp_path: Path) -> None:
    layout = Layout(tmp_path)
    layout.ops_dir.mkdir()
    config = _config()
    _write_ledger(layout, random.Random(3), config, 500)
    good = summarize(layout, config, jobs=[])
    path = summary_path(layout.ledger_file)
    data = json.loads(path.read_text())
    data["cells"][0][13] = [1, 10**9]  # an exponent that would make a billion-bit number
    path.write_text(json.dumps(data))
    assert summarize(layout, config, jobs=[]).model_dump() == good.model_dump()


plain_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner, max_size=4),
    max_leaves=30,
)


@given(plain_json)
def test_json_indented_is_json_dumps_with_indent_2(data: Any) -> None:
    assert json_indented(data) == json.dumps(data, indent=2, ensure_ascii=False)


def test_json_indented_leaves_what_is_not_plain_to_json_dumps() -> None:
    odd = {"t": (1, 2), "k": {1: "a", None: [float("nan"), float("inf")]}, "e": {}, "l": [], "u": "é\u2028\n"}
    assert json_indented(odd) == json.dumps(odd, indent=2, ensure_ascii=False)


@given(st.from_regex(r"[A-Za-z][A-Za-z0-9_.-]{0,40}|[0-9][0-9-]{0,20}", fullmatch=True) | st.text(max_size=20))
def test_a_plain_table_key_is_what_cell_makes_of_it(text: str) -> None:
    assert _key_cell(text) == cell(text)


def test_the_summary_file_round_trips_whatever_the_ids_hold(tmp_path: Path) -> None:
    """It is cut into one line per entry at '},{"' and ']],["': ids holding those change nothing."""
    layout = Layout(tmp_path)
    layout.ops_dir.mkdir()
    odd = ['job-]],["x', 'job-},{"day', 'job-"\\\n\u2028', "job-plain"]
    lines = _lines(random.Random(5), _config(), 40)
    for i, line in enumerate(lines):
        line.job_id = odd[i % len(odd)]
        line.phase = odd[(i + 1) % len(odd)]
    append_lines(layout.ledger_file, lines)
    text = summary_path(layout.ledger_file).read_text()
    stored = LedgerSummary.model_validate_json(text)
    assert stored.model_dump() == read_summary(layout.ledger_file).model_dump()
    assert len(stored.cells) > 4
    assert not stored.problems  # braces, 7 header lines, "problems": [], each list's brackets, an entry a line
    assert text.count("\n") == 2 + 7 + 1 + (2 + len(stored.groups)) + (2 + len(stored.cells))


def test_json_indented_lays_out_runs_of_rows_as_json_dumps() -> None:
    tricky = ["a, ", '}, {"', "\x00", ",\x00", "\x01", "},\x00{", "é\u2028", "\\", '"']
    rows: list[Any] = [{t: t, "n": i, "f": i / 3, "b": i % 2 == 0, "z": None} for i, t in enumerate(tricky)]
    data = {
        "rows": rows,
        "mixed": [rows[0], {"nested": {"a": [1]}}, rows[1], {}, rows[2], [rows[3]], 5, rows[4], rows[5]],
        "keys": [{1: "a", None: 2, 2.5: True, False: "x"}, {"k": float("nan")}],
        "one": [rows[0]],
        "same": [{"k": t, "n": i, "f": i / 7, "z": None, "s": t * 2} for i, t in enumerate(tricky)],
        "same_one_key": [{"k": t} for t in tricky],
        "same_then_not": [{"k": 1, "j": 2}, {"k": 3, "j": 4}, {"j": 5, "k": 6}, {"k": 1, "j": 2}],
    }
    assert json_indented(data) == json.dumps(data, indent=2, ensure_ascii=False)


def test_the_markdown_lists_the_recent_jobs_and_sums_the_older_ones(tmp_path: Path) -> None:
    """Past JOBS_SHOWN jobs, one row stands for the older ones (exact sums); the JSON lists every job."""
    from batch_ops.costs import JOBS_SHOWN

    layout = Layout(tmp_path)
    layout.ops_dir.mkdir()
    config = _config()
    n_jobs = JOBS_SHOWN + 70
    lines = [
        x.model_copy(update={"job_id": f"job-{i % n_jobs:04d}"})
        for i, x in enumerate(_lines(random.Random(5), config, 4000))
    ]
    append_lines(layout.ledger_file, lines)
    new = summarize(layout, config, jobs=_jobs())
    old = full_scan_summarize(layout, config, jobs=_jobs())
    assert len({r["job_id"] for r in new.by_job}) == n_jobs
    _same_numbers(plain_summary(new), old.model_dump(mode="json"))
    text = render(new, None, None)
    _same_text(text, render(old, None, None))  # the old summary's older row: summed from its rows
    section = text.split("## By job")[1].split("\n## ")[0]
    recent = [f"job-{k:04d}" for k in range(n_jobs - JOBS_SHOWN, n_jobs)]
    assert f"The {JOBS_SHOWN} most recent of {n_jobs} jobs" in section and "`cost.json`" in section
    shown = {row.split(" | ")[0].removeprefix("| ") for row in section.split("\n") if row.startswith("| job-")}
    assert shown == set(recent)
    older_lines = [x for x in lines if x.job_id not in recent]
    older = new.older_jobs
    assert older is not None and older["jobs"] == n_jobs - JOBS_SHOWN and older["requests"] == len(older_lines)
    assert older["cost_usd"] == float(sum(Fraction(x.cost_usd) for x in older_lines))

    def uncached(x: LedgerLine) -> Fraction:
        try:
            price = config.price(x.model_alias)
        except ConfigError:
            return Fraction(x.interactive_cost_usd)
        prompt = x.input_tokens + x.cache_creation_input_tokens + x.cache_read_input_tokens
        tokens_out = x.output_tokens * Fraction(price.output_usd_per_mtok)
        return (prompt * Fraction(price.input_usd_per_mtok) + tokens_out) / 10**6

    assert older["uncached_interactive_cost_usd"] == float(sum(map(uncached, older_lines)))
    assert new.totals["uncached_interactive_cost_usd"] == float(sum(map(uncached, lines)))
    last = tuple(new.by_job[-1][k] for k in JOB_KEY)
    in_last = [x for x in lines if tuple(getattr(x, k) for k in JOB_KEY) == last]
    assert new.by_job[-1]["uncached_interactive_cost_usd"] == float(sum(map(uncached, in_last)))
    first_row = next(row for row in section.split("\n") if row.startswith("| older jobs"))
    assert first_row.startswith(f"| older jobs ({n_jobs - JOBS_SHOWN}) |") and f"| {len(older_lines)} |" in first_row
    assert "older_jobs" not in plain_summary(new) and "older_jobs" not in new.model_dump(mode="json")
    # _jobs() gives caching decisions to jobs 0, 6, 12, ..., 36: all older than the ones listed.
    assert "- and 7 older job(s) with a caching decision, listed in `cost.json`" in text
