"""``cost-report``: the ledger's numbers (zero tokens) and a short written analysis by the model.

The numbers come from ``costs.summarize``; ``batch-ops report`` writes the same report without a
model. The phase sends one request with the numbers and asks for a headline, observations and
recommendations; the answer lands, escaped, in ``reports/cost.md`` under the numbers it was
written from. A new request is planned only when work other than cost reports has added to the
ledger since the last one (its own lines would otherwise make every run look new).

The chart is a Mermaid ``xychart-beta`` (GitHub renders it): bars are the cost per day, the line
is the saving per day against the same tokens run interactively without a cache.

The Markdown's per-job table lists the ``costs.JOBS_SHOWN`` most recent jobs; a first row sums the
older ones (exact sums, from the ledger summary's cells) and says how many it stands for. The
JSON twin, ``reports/cost.json``, and ``batch-ops report --json`` list every job.
"""

from __future__ import annotations

import functools
import hashlib
import itertools
import json
import math
import re
from collections.abc import Callable, Iterator
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError

from batch_ops import budget
from batch_ops.config import Config
from batch_ops.costs import JOBS_SHOWN, CostSummary, summarize
from batch_ops.ledger import read_summary
from batch_ops.markdown import cell, inline
from batch_ops.paths import Layout
from batch_ops.phases.base import (
    ApplySummary,
    ItemMeta,
    Phase,
    PhaseContext,
    PlannedItem,
    PlannedJob,
    SettledResult,
    make_custom_id,
    parse_answer,
)
from batch_ops.phases.io import iter_settled, write_report
from batch_ops.phases.prompts import routed_alias, structured_params, system_blocks
from batch_ops.queue import TERMINAL, JobGlance, JobRecord, iso, read_jobs_where, read_queue, utcnow

PHASE = "cost-report"
MAX_DAYS_SENT = 31
MAX_JOBS_SENT = 20

INSTRUCTIONS = """You write a short analysis of the LLM spending of a repository's backlog automation.

The numbers come from its usage ledger: one line per request, with tokens, the cost actually
paid, what the same request would have cost interactively, and the saving. "batch" requests ran
through the Message Batches API at half price; "interactive" ones ran at once at full price.
"uncached_interactive_cost_usd" is the same tokens at the standard rate with no prompt cache, the
baseline for the total saving of batching and caching together. "cache_hit_rate" is the share of
prompt tokens read from the cache. "caching" on a job is the decision taken before it ran.

Answer only with the JSON object the schema asks for:
- "headline": one sentence with the most important figure.
- "observations": up to five short facts from the numbers, each with its figure (trends by day,
  the most expensive phase or model, jobs whose caching did or did not pay, interactive runs that
  could have been batched, the budget state when one is set).
- "recommendations": up to four concrete changes to the configuration or the way jobs are run
  that the numbers support; none when nothing stands out.
Use only the numbers given; do not invent prices, dates or totals."""

Line = Annotated[str, StringConstraints(min_length=1, max_length=300)]


class Analysis(BaseModel):
    model_config = ConfigDict(extra="forbid")

    headline: str = Field(min_length=1, max_length=300)
    observations: list[Line] = Field(min_length=1, max_length=5)
    recommendations: list[Line] = Field(default_factory=list, max_length=4)


def _schema() -> dict[str, Any]:
    line = {"type": "string", "minLength": 1, "maxLength": 300}
    return {
        "type": "object",
        "properties": {
            "headline": line,
            "observations": {"type": "array", "items": line, "minItems": 1, "maxItems": 5},
            "recommendations": {"type": "array", "items": line, "maxItems": 4},
        },
        "required": ["headline", "observations", "recommendations"],
        "additionalProperties": False,
    }


def _fingerprint(summary: CostSummary) -> str:
    t = summary.totals
    key = json.dumps([t["requests"], round(t["cost_usd"], 9), summary.by_job and summary.by_job[-1]["job_id"]])
    return hashlib.sha256(key.encode()).hexdigest()


def _numbers(summary: CostSummary, state: budget.BudgetState | None) -> dict[str, Any]:
    def slim(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        keep = (
            "requests", "input_tokens", "output_tokens", "cache_creation_input_tokens", "cache_read_input_tokens",
            "cache_hit_rate", "cost_usd", "interactive_cost_usd", "savings_usd", "uncached_interactive_cost_usd",
        )  # fmt: skip
        out = []
        for row in rows:
            slimmed = {k: v for k, v in row.items() if k in keep or not isinstance(v, int | float)}
            if isinstance(row.get("caching"), dict):
                c = row["caching"]
                slimmed["caching"] = {"enabled": c.get("enabled"), "ttl": c.get("ttl"), "reason": c.get("reason")}
            out.append(slimmed)
        return out

    return {
        "totals": summary.totals,
        "by_day": slim(summary.by_day[-MAX_DAYS_SENT:]),
        "by_phase": slim(summary.by_phase),
        "by_model": slim(summary.by_model),
        "by_mode": slim(summary.by_mode),
        "recent_jobs": slim(summary.by_job[-MAX_JOBS_SENT:]),
        "budget": state.model_dump() if state is not None else None,
    }


class CostReportPhase(Phase):
    name = PHASE
    workflow = PHASE
    code = "cst"
    max_output_tokens = 1024
    # Its input is the ledger the other phases write: `cycle --wait` runs it after they finish.
    runs_last = True

    def plan(self, ctx: PhaseContext) -> list[PlannedJob]:
        ledger = read_summary(ctx.layout.ledger_file, save=True)
        jobs, _ = read_queue(ctx.layout)
        others = summarize(ctx.layout, ctx.config, jobs=jobs, exclude_phases=frozenset({PHASE}), ledger=ledger)
        if not others.totals["requests"]:
            return []  # nothing to analyse yet
        numbers = _numbers(
            summarize(ctx.layout, ctx.config, jobs=jobs, ledger=ledger),
            budget.state(ctx.config, ctx.layout, jobs, ledger=ledger),
        )
        alias = routed_alias(ctx, self.name)
        user = "Numbers from the usage ledger (USD; tokens):\n\n" + json.dumps(numbers, indent=1, default=str)
        params = structured_params(
            ctx,
            alias,
            self.max_output_tokens,
            system_blocks(INSTRUCTIONS, ctx, with_conventions=False),
            user,
            _schema(),
        )
        meta = ItemMeta.model_validate({"content_hash": _fingerprint(others), "as_of": iso(utcnow())})
        item = PlannedItem(custom_id=make_custom_id(self.code, "ledger"), params=params, meta=meta)
        return [PlannedJob(model_alias=alias, items=[item])]

    def parse_output(self, text: str) -> dict[str, Any]:
        return parse_answer(Analysis, text, "analysis")

    def apply(self, ctx: PhaseContext, job_id: str, results: Iterator[SettledResult]) -> ApplySummary:
        summary = ApplySummary()
        analysis: tuple[str, str, Analysis] | None = None
        for res in results:
            if res.status == "succeeded" and res.output is not None:
                summary.applied += 1
                as_of = str((res.meta.model_extra or {}).get("as_of") or "")
                analysis = (job_id, as_of, Analysis.model_validate(res.output))
            else:
                summary.failed += 1
        summary.report_path = write_cost_report(ctx.layout, ctx.config, analysis or latest_analysis(ctx.layout))
        return summary


def latest_analysis(layout: Layout, jobs: list[JobRecord] | None = None) -> tuple[str, str, Analysis] | None:
    """(job id, numbers as of, analysis) from the newest completed cost-report job, if any."""
    if jobs is None:
        jobs, _ = read_queue(layout)
    done = sorted(
        (j for j in jobs if j.phase == PHASE and j.status == "completed" and j.result_path),
        key=lambda j: (j.updated_at, j.id),
    )
    for job in reversed(done):
        assert job.result_path is not None
        for res in iter_settled(layout.resolve_ops_path(job.result_path)):
            if res.status == "succeeded" and res.output is not None:
                try:
                    return (
                        job.id,
                        str((res.meta.model_extra or {}).get("as_of") or ""),
                        Analysis.model_validate(res.output),
                    )
                except ValidationError:
                    continue
    return None


def _usd(value: float | None) -> str:
    return "—" if value is None else f"${value:.4f}"


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{value:.0%}"


# Ids, days, phase and model names are nearly always made of these, and such text comes out of
# ``cell`` unchanged (no markup, no mention, no reference, no list or heading start): a report of
# 40,000 job rows need not run the escaping on each. Anything else goes through ``cell``.
_PLAIN = re.compile(r"[A-Za-z][A-Za-z0-9_.-]{0,199}|[0-9][0-9-]{0,199}")


def _key_cell(text: str) -> str:
    return text if _PLAIN.fullmatch(text) else cell(text)


def _table(rows: list[dict[str, Any]], keys: tuple[str, ...]) -> list[str]:
    head = [
        *keys,
        "requests",
        "prompt tokens",
        "output tokens",
        "cache hit rate",
        "cost",
        "interactive cost",
        "saved (batch)",
        "uncached interactive",
        "ratio",
    ]
    lines = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    made: dict[str, str] = {}  # phase, model and mode names repeat on every row
    for r in rows:
        prompt = r["input_tokens"] + r["cache_creation_input_tokens"] + r["cache_read_input_tokens"]
        keyed = []
        for k in keys:
            text = str(r[k])
            shown = made.get(text)
            if shown is None:
                shown = made[text] = _key_cell(text)
            keyed.append(shown)
        cells = [
            *keyed, str(r["requests"]), str(prompt), str(r["output_tokens"]), _pct(r["cache_hit_rate"]),
            _usd(r["cost_usd"]),
            _usd(r["interactive_cost_usd"]), _usd(r["savings_usd"]), _usd(r["uncached_interactive_cost_usd"]),
            _pct(r["cost_ratio_vs_uncached_interactive"]),
        ]  # fmt: skip
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def _chart(by_day: list[dict[str, Any]]) -> list[str]:
    days = by_day[-MAX_DAYS_SENT:]
    if not days:
        return []
    costs = [round(d["cost_usd"], 6) for d in days]
    saved = [round(d["total_savings_usd"], 6) for d in days]
    top = max([*costs, *saved, 0.000001]) * 1.15
    labels = ", ".join(f'"{d["day"]}"' for d in days)
    return [
        "```mermaid",
        "xychart-beta",
        '    title "Cost and saving per day (USD)"',
        f"    x-axis [{labels}]",
        f'    y-axis "USD" 0 --> {top:.6f}',
        f"    bar [{', '.join(f'{c:.6f}' for c in costs)}]",
        f"    line [{', '.join(f'{s:.6f}' for s in saved)}]",
        "```",
        "",
        "Bars: cost paid per day. Line: saving per day against the same tokens run interactively with no cache.",
        "",
    ]


def render(summary: CostSummary, state: budget.BudgetState | None, analysis: tuple[str, str, Analysis] | None) -> str:
    t = summary.totals
    lines = [
        "# Cost report",
        "",
        f"{t['requests']} request(s): {_usd(t['cost_usd'])} paid; {_usd(t['interactive_cost_usd'])} at interactive "
        f"prices with the same cache use (saved {_usd(t['savings_usd'])} by batching); "
        f"{_usd(t['uncached_interactive_cost_usd'])} interactive without a cache, so "
        f"{_pct(t['cost_ratio_vs_uncached_interactive'])} of that was paid. "
        f"Cache hit rate {_pct(t['cache_hit_rate'])}.",
        "",
    ]
    if state is not None:
        lines += [inline(state.line()), ""]
    lines += _chart(summary.by_day)
    for title, rows, keys in (
        ("By day", summary.by_day, ("day",)),
        ("By phase", summary.by_phase, ("phase",)),
        ("By model", summary.by_model, ("model_alias", "model")),
        ("By mode", summary.by_mode, ("mode",)),
    ):
        lines += [f"## {title}", "", *_table(rows, keys), ""]
    shown, older = _recent_jobs(summary)
    # Caching decisions of the jobs not listed: counted, not shown (cost.json has each).
    hidden = summary.by_job[: len(summary.by_job) - len(shown)]
    unlisted_decided = len({r["job_id"] for r in hidden if r.get("caching")})
    lines += ["## By job", ""]
    if older is not None:
        lines += [
            f"The {JOBS_SHOWN} most recent of {older['jobs'] + JOBS_SHOWN:,} jobs; the first row sums the "
            f"{older['jobs']:,} older ones ({older['rows']:,} rows), which `cost.json` next to this report "
            "lists one by one.",
            "",
        ]
        shown = [
            {**older, "job_id": f"older jobs ({older['jobs']:,})", "phase": "", "model_alias": "", "mode": ""},
            *shown,
        ]
    lines += [*_table(shown, ("job_id", "phase", "model_alias", "mode")), ""]
    decided = [r for r in shown if r.get("caching")]
    if decided or unlisted_decided:
        lines += ["### Caching decisions", ""]
        for r in decided:
            c = r["caching"]
            state_text = f"on ({c['ttl']})" if c["enabled"] else "off"
            lines.append(
                f"- {inline(r['job_id'])}: {state_text} — {inline(c['reason'])}; hit rate {_pct(r['cache_hit_rate'])}"
            )
        if unlisted_decided:
            lines.append(f"- and {unlisted_decided:,} older job(s) with a caching decision, listed in `cost.json`")
        lines.append("")
    if analysis is not None:
        job_id, as_of, a = analysis
        lines += [
            "## Analysis",
            "",
            f"Written by the model in job {inline(job_id)} from the numbers as of {inline(as_of) or 'its enqueue'}.",
            "",
            f"**{inline(a.headline)}**",
            "",
            *[f"- {inline(o)}" for o in a.observations],
        ]
        if a.recommendations:
            lines += ["", "Recommendations:", "", *[f"- {inline(r)}" for r in a.recommendations]]
        lines.append("")
    for prob in summary.ledger_problems:
        lines.append(f"- ledger line {prob.line_number} skipped: {inline(prob.reason)}")
    unlisted = summary.ledger_problem_count - len(summary.ledger_problems)
    if unlisted > 0:
        lines.append(f"- and {unlisted} more unparseable ledger line(s), not listed")
    return "\n".join(lines)


def _recent_jobs(summary: CostSummary) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
    """The rows of the JOBS_SHOWN most recent jobs, and the older jobs' sums (None: none older)."""
    rows = summary.by_job
    recent: set[str] = set()
    start = len(rows)
    while start > 0 and (rows[start - 1]["job_id"] in recent or len(recent) < JOBS_SHOWN):
        start -= 1
        recent.add(rows[start]["job_id"])
    if start == 0:
        return rows, None
    if summary.older_jobs is not None:
        return rows[start:], summary.older_jobs
    # A summary not made by ``costs.summarize``: the older rows' figures summed here, each
    # correctly rounded (fsum), not from the exact cells.
    older = rows[:start]
    sums = {k: math.fsum(r[k] for r in older) for k in _SUMMED}
    prompt = sums["input_tokens"] + sums["cache_creation_input_tokens"] + sums["cache_read_input_tokens"]
    uncached = sums["uncached_interactive_cost_usd"]
    return rows[start:], {
        "jobs": len({r["job_id"] for r in older}),
        "rows": len(older),
        **{k: int(v) if k in _COUNTED else v for k, v in sums.items()},
        "cache_hit_rate": sums["cache_read_input_tokens"] / prompt if prompt else None,
        "total_savings_usd": uncached - sums["cost_usd"],
        "cost_ratio_vs_uncached_interactive": sums["cost_usd"] / uncached if uncached else None,
    }


_COUNTED = (
    "requests", "succeeded", "input_tokens", "output_tokens", "cache_creation_input_tokens",
    "cache_read_input_tokens", "requests_with_cache_read",
)  # fmt: skip
_SUMMED = (*_COUNTED, "cost_usd", "interactive_cost_usd", "savings_usd", "uncached_interactive_cost_usd")


def _matters(job: JobGlance) -> bool:
    # What the report reads from a job: a cost report's analysis, a live job's reserve in the
    # budget, a caching decision. A finished job without one adds nothing to it.
    return job.phase == PHASE or job.status not in TERMINAL or job.cache is not None


def report_jobs(layout: Layout) -> list[JobRecord]:
    """The queue's jobs the report uses (``_matters``): the others are only glanced at, not built."""
    return read_jobs_where(layout, _matters)


def report_data(
    layout: Layout, config: Config, jobs: list[JobRecord] | None = None
) -> tuple[CostSummary, budget.BudgetState | None]:
    """The numbers and the budget state, from one read of the queue and of the ledger's summary."""
    if jobs is None:
        jobs, _ = read_queue(layout)
    ledger = read_summary(layout.ledger_file, save=True)
    return summarize(layout, config, jobs=jobs, ledger=ledger), budget.state(config, layout, jobs, ledger=ledger)


def plain_summary(summary: CostSummary) -> dict[str, Any]:
    """``summary.model_dump(mode="json")`` without copying 40,000 rows that are plain JSON already."""
    return {
        "totals": summary.totals,
        "by_day": summary.by_day,
        "by_phase": summary.by_phase,
        "by_model": summary.by_model,
        "by_mode": summary.by_mode,
        "by_job": summary.by_job,
        "ledger_problems": [p.model_dump(mode="json") for p in summary.ledger_problems],
    }


def write_cost_report(
    layout: Layout,
    config: Config,
    analysis: tuple[str, str, Analysis] | None,
    data: tuple[CostSummary, budget.BudgetState | None] | None = None,
) -> str:
    """Write reports/cost.md and cost.json; ``data`` is ``report_data``'s answer when the caller has it."""
    summary, state = data if data is not None else report_data(layout, config)
    numbers = {
        **plain_summary(summary),
        "budget": state.model_dump() if state is not None else None,
        "analysis": {"job_id": analysis[0], "as_of": analysis[1], **analysis[2].model_dump()} if analysis else None,
    }
    return write_report(layout, "cost", render(summary, state, analysis), numbers, json_text=json_indented(numbers))


_SCALARS = frozenset({str, int, float, bool, type(None)})
_encode_scalar = json.JSONEncoder(ensure_ascii=False).encode


def _refuse(value: Any) -> Any:
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


@functools.cache
def _flat_encoder(indent: str) -> Callable[[Any], str]:
    # A dict of scalars at this depth, laid out by json's C encoder: only the item separator
    # carries the newline and indent; the first item's and the closing brace's are added. The C
    # encoder is made once per depth (JSONEncoder.encode makes one per call), with json.dumps's
    # settings: no circular check needed for scalars, NaN allowed, keys unsorted.
    make = getattr(json.encoder, "c_make_encoder", None)  # the C accelerator (absent: the Python one)
    if make is None:
        return json.JSONEncoder(ensure_ascii=False, separators=("," + indent, ": ")).encode
    encode = make(None, _refuse, json.encoder.encode_basestring, None, ": ", "," + indent, False, False, True)
    return lambda value: "".join(encode(value, 0))


def json_indented(data: Any) -> str:
    """``json.dumps(data, indent=2, ensure_ascii=False)``, the same text, several times faster.

    With an indent, json.dumps leaves its C encoder for a Python generator per value; a report of
    40,000 job rows spent seconds there. Here each dict whose values are all scalars (a row) is
    encoded by the C encoder in one call, its separators set to the row's indent, and only the
    structure around the rows is written in Python, the way json.dumps lays it out.
    """
    parts: list[str] = []
    _layout(data, parts, "\n")
    return "".join(parts)


# Raw control characters never occur in json's output (it escapes them inside strings), so these
# separators mark the structure only, and are replaced by the layout's newlines afterwards.
_encode_marked = json.JSONEncoder(ensure_ascii=False, separators=(",\x00", ": ")).encode


def _same_key_rows(rows: list[Any] | tuple[Any, ...], out: list[str], newline: str) -> bool:
    """Lay out ``rows`` if they are all flat dicts with the same str keys in the same order (a report's).

    Then only their values are encoded, as one flat list with a comma and a NUL between items
    (raw control characters never occur in json's output), so splitting there gives each value's
    text; the keys, encoded once, go back in between. False, with nothing written, otherwise.
    """
    first = rows[0]
    if type(first) is not dict or not first:
        return False
    keys = tuple(first)
    if not all(type(k) is str for k in keys) or not all(type(r) is dict and tuple(r) == keys for r in rows):
        return False
    values = [v for r in rows for v in r.values()]
    if not _SCALARS.issuperset(map(type, values)):
        return False
    inner = newline + "  "
    tokens = _encode_marked(values)[1:-1].split(",\x00")
    names = [_encode_scalar(k) + ": " for k in keys]
    prefixes = [newline + "}," + newline + "{" + inner + names[0], *("," + inner + name for name in names[1:])]
    out.append("{" + inner + names[0] + tokens[0])
    keyed = itertools.islice(itertools.cycle(prefixes), 1, None)  # endless: the values end the zip
    out.append("".join(itertools.chain.from_iterable(zip(keyed, itertools.islice(tokens, 1, None), strict=False))))
    out.append(newline + "}")
    return True


def _rows(rows: list[dict[str, Any]], out: list[str], newline: str) -> None:
    """Flat dicts, consecutive items of a list, laid out as json.dumps(indent=2) does, in one C call.

    The rows are encoded compactly with a comma and a NUL between items; they hold no
    containers, so "}", comma, NUL, "{" falls only between rows and every other comma and NUL
    between a row's items; each becomes the newline and indent it stands for.
    """
    if _same_key_rows(rows, out, newline):
        return
    inner = newline + "  "
    text = _encode_marked(rows)[2:-2]
    text = (
        text.replace("},\x00{", "\x01")
        .replace(",\x00", "," + inner)
        .replace("\x01", newline + "}," + newline + "{" + inner)
    )
    out.append("{" + inner + text + newline + "}")


def _layout(value: Any, out: list[str], newline: str) -> None:
    kind = type(value)
    if kind is dict:
        if not value:
            out.append("{}")
            return
        inner = newline + "  "
        if _SCALARS.issuperset(map(type, value.values())):
            text = _flat_encoder(inner)(value)
            out.append("{" + inner + text[1:-1] + newline + "}")
            return
        sep = "{" + inner
        for key, item in value.items():
            if type(key) is not str:
                out.append(sep)  # json.dumps's key rules for anything but a str: let it say
                out.append(json.dumps({key: None}, ensure_ascii=False)[1:-7] + ": ")
            else:
                out.append(sep + _encode_scalar(key) + ": ")
            sep = "," + inner
            _layout(item, out, inner)
        out.append(newline + "}")
    elif kind is list or kind is tuple:
        if not value:
            out.append("[]")
            return
        inner = newline + "  "
        sep = "[" + inner
        if len(value) > 1:
            out.append(sep)
            if _same_key_rows(value, out, inner):  # the whole list in one go: no check per item
                out.append(newline + "]")
                return
            out.pop()
        run: list[Any] = []  # consecutive rows (flat dicts), laid out together
        for item in value:
            if type(item) is dict and item and _SCALARS.issuperset(map(type, item.values())):
                run.append(item)
                continue
            if run:
                out.append(sep)
                sep = "," + inner
                _rows(run, out, inner)
                run = []
            out.append(sep)
            sep = "," + inner
            _layout(item, out, inner)
        if run:
            out.append(sep)
            _rows(run, out, inner)
        out.append(newline + "]")
    elif kind in _SCALARS:
        out.append(_encode_scalar(value))
    else:
        # Not plain JSON (a subclass, a set...): json.dumps's own answer, indented here.
        text = json.dumps(value, indent=2, ensure_ascii=False)
        out.append(text.replace("\n", newline))
