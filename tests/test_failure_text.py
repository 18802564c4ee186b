"""A job's failure paragraph: gathered while settling, part by part, it says what reading every
failed line back in file order said."""

from __future__ import annotations

import itertools

from hypothesis import given
from hypothesis import strategies as st

from batch_ops.engine import _FAILURE_KINDS, Engine, _Failures
from batch_ops.queue import JobRecord

_errors = st.one_of(
    st.none(),
    st.sampled_from([*_FAILURE_KINDS, "something else", ""]).flatmap(
        lambda head: st.text(max_size=12).map(lambda tail: head + tail)
    ),
)
_failed = st.lists(
    st.tuples(
        st.from_regex(r"btv-[A-Z]{1,3}-[0-9]{1,3}", fullmatch=True), st.one_of(st.none(), st.text(max_size=6)), _errors
    ),
    max_size=40,
)


def _read_back_text(failed: list[tuple[str, str | None, str | None]]) -> str:
    """The paragraph's kinds as the engine wrote them from every failed line read back (the old way)."""
    groups: dict[str, list[tuple[str, str | None, str | None]]] = {}
    for item in failed:
        kind = next((k for k in _FAILURE_KINDS if (item[2] or "").startswith(k)), "other")
        groups.setdefault(kind, []).append(item)
    parts = []
    for kind, items in groups.items():
        shown = "; ".join(f"{c}" + (f" [{t}]" if t else "") + f": {e}" for c, t, e in items[:5])
        more = f"; and {len(items) - 5} more" if len(items) > 5 else ""
        parts.append(f"{len(items)} {kind} ({_FAILURE_KINDS.get(kind, 'see the error')}): {shown}{more}")
    return " | ".join(parts)


def _job(n: int) -> JobRecord:
    return JobRecord(id="job-1", workflow="w", phase="p", payload_path=".backlog-ops/payloads/job-1.jsonl",
                     model_alias="cheap", created_at="2026-01-01T00:00:00Z", updated_at="2026-01-01T00:00:00Z",
                     request_count=max(n, 1))  # fmt: skip


@given(_failed, st.lists(st.integers(0, 40), max_size=4))
def test_failures_gathered_in_parts_say_what_the_lines_read_back_say(
    failed: list[tuple[str, str | None, str | None]], cuts: list[int]
) -> None:
    bounds = sorted({0, len(failed), *(min(c, len(failed)) for c in cuts)})
    whole = _Failures()
    for part_start, part_end in itertools.pairwise(bounds):
        part = _Failures()
        for item in failed[part_start:part_end]:
            part.add(*item)
        whole.extend(part)
    assert whole.count == len(failed)
    if failed:
        text = Engine._failure_text(_job(len(failed)), whole, job_failed=False)
        assert text.startswith(f"{len(failed)} of {len(failed)} request(s) failed. {_read_back_text(failed)}. ")
