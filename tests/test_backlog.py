from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from batch_ops.backlog import Ticket, parse_ticket, scan_backlog
from batch_ops.checks import validate_ticket
from batch_ops.config import TicketValidation
from batch_ops.errors import TicketError
from tests.conftest import SAMPLE

GOOD = """---
id: FEAT-100
title: Add a thing
status: pending
priority: low
---

## Context

Users asked.

## Description

Add the thing.

## Affected Files

| File | Change |
| --- | --- |
| `src/thing.ts` | new |

## Acceptance Criteria

- [ ] AC-1: the thing exists
- [ ] AC-2: the thing works

## Test Strategy

Unit tests.

### Verification Commands

```bash
npx vitest run thing
```

## Dependencies

None.

## History

| Date | Author | Change |
| --- | --- | --- |
| 2026-01-01 | ana | created |
"""


def test_well_formed_ticket_parses_into_sections() -> None:
    t = parse_ticket(GOOD.encode(), "backlog/data/pending/FEAT-100.md")
    assert t.id == "FEAT-100" and not t.id_from_file_name
    assert [s.heading for s in t.sections][:3] == ["Context", "Description", "Affected Files"]
    assert t.acceptance_criteria() == ["- [ ] AC-1: the thing exists", "- [ ] AC-2: the thing works"]
    assert t.affected_files() == ["src/thing.ts"]
    assert t.verification_commands() == ["npx vitest run thing"]
    assert validate_ticket(t, TicketValidation(requireDependencyCheck=True)) == []


def test_a_built_ticket_is_what_model_construct_makes(tmp_path: Path) -> None:
    """``Ticket.built`` stands in for ``model_construct``: the same state, the same behaviour."""
    assert not any(f.alias or f.validation_alias or not f.is_required() for f in Ticket.model_fields.values())
    assert not Ticket.__private_attributes__ and Ticket.model_config.get("extra") in (None, "ignore")
    t = parse_ticket(GOOD.encode(), "backlog/data/pending/FEAT-100.md")
    values = {name: getattr(t, name) for name in Ticket.model_fields}
    made = Ticket.model_construct(**values)
    assert "_section_map" in t.__dict__  # parse_ticket's split fills the cache in...
    assert made._section_map  # ...with what the cached property builds from the sections
    assert t.__dict__ == made.__dict__ and t == made
    assert t.__pydantic_fields_set__ == made.__pydantic_fields_set__ == set(Ticket.model_fields)
    assert (t.__pydantic_extra__, t.__pydantic_private__) == (made.__pydantic_extra__, made.__pydantic_private__)
    assert t.model_dump() == made.model_dump() and t.model_copy(update={"id": "X"}).id == "X"
    assert Ticket.model_validate(t.model_dump()) == t
    with pytest.raises(ValueError):
        t.id = "other"  # type: ignore[misc]  # frozen, as the model says


def test_crlf_and_bom_parse_the_same_but_are_remembered() -> None:
    lf = parse_ticket(GOOD.encode(), "a.md")
    crlf = parse_ticket(b"\xef\xbb\xbf" + GOOD.replace("\n", "\r\n").encode(), "a.md")
    assert crlf.crlf and crlf.bom
    assert crlf.sections == lf.sections
    assert crlf.content_hash != lf.content_hash


def test_a_ticket_read_without_its_hash_differs_only_there() -> None:
    raw = b"\xef\xbb\xbf" + GOOD.replace("\n", "\r\n").encode()
    hashed = parse_ticket(raw, "a.md")
    unhashed = parse_ticket(raw, "a.md", hashed=False)
    assert hashed.content_hash == hashlib.sha256(raw).hexdigest() and unhashed.content_hash == ""
    assert unhashed.model_dump() == {**hashed.model_dump(), "content_hash": ""}
    assert unhashed._section_map == hashed._section_map


def test_non_utf8_bytes_are_read_and_flagged() -> None:
    raw = GOOD.replace("Add the thing.", "Soci\u00e9t\u00e9").encode("latin-1")
    t = parse_ticket(raw, "a.md")
    assert not t.utf8
    assert "Soci\u00e9t\u00e9" in (t.section("Description") or "")
    codes = [f.code for f in validate_ticket(t, TicketValidation())]
    assert "encoding" in codes


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"", "empty file"),
        (b"   \n\n", "empty file"),
        (b"# just markdown\n", "no YAML front matter"),
        (b"---\nid: X-1\n", "not closed"),
        (b'---\ntitle: "unclosed\nid: [\n---\nbody\n', "broken YAML front matter at line"),
        (b"---\n- a\n- b\n---\n", "must be a mapping"),
        (b"---\nid: X\x00\n---\n", "NUL"),
    ],
)
def test_unusable_files_raise_ticket_error_with_reason(raw: bytes, reason: str) -> None:
    with pytest.raises(TicketError) as info:
        parse_ticket(raw, "backlog/data/pending/BAD-1.md")
    assert info.value.path == "backlog/data/pending/BAD-1.md"
    assert reason in info.value.reason


def test_missing_id_falls_back_to_file_name() -> None:
    t = parse_ticket(GOOD.replace("id: FEAT-100\n", "").encode(), "backlog/data/pending/BUG-077-crash.md")
    assert t.id == "BUG-077" and t.id_from_file_name


def test_scan_reports_bad_files_and_duplicate_ids_and_goes_on(tmp_path: Path) -> None:
    pending = tmp_path / "backlog/data/pending"
    pending.mkdir(parents=True)
    (pending / "FEAT-100-a.md").write_text(GOOD)
    (pending / "FEAT-100-b.md").write_text(GOOD.replace("Add a thing", "Another"))
    (pending / "EMPTY-1.md").write_bytes(b"")
    (pending / "BROKEN-1.md").write_bytes(b"---\ntitle: 'x\n---\n")
    (pending / "FEAT-101.md").write_text(GOOD.replace("FEAT-100", "FEAT-101"))
    scan = scan_backlog(tmp_path)
    assert sorted(t.id for t in scan.tickets) == ["FEAT-100", "FEAT-101"]
    reasons = {p.path.rsplit("/", 1)[-1]: p.reason for p in scan.problems}
    assert "duplicate id FEAT-100" in reasons["FEAT-100-b.md"]
    assert reasons["EMPTY-1.md"] == "empty file"
    assert "broken YAML" in reasons["BROKEN-1.md"]


def test_sample_backlog_scans_without_crashing() -> None:
    scan = scan_backlog(SAMPLE)
    bad = {p.path.rsplit("/", 1)[-1] for p in scan.problems}
    assert bad == {"FEAT-033-bulk-archive-paid.md", "TASK-019-placeholder.md"}
    by_id = scan.by_id()
    assert by_id["TASK-008"].crlf
    assert by_id["FEAT-021"].bom
    assert not by_id["FEAT-018"].utf8
    assert by_id["IDEA-004"].id_from_file_name


def test_incomplete_tickets_get_a_finding_with_a_reason() -> None:
    scan = scan_backlog(SAMPLE)
    rules = TicketValidation()
    codes = {t.id: {f.code for f in validate_ticket(t, rules)} for t in scan.tickets}
    assert "section.test_strategy" in codes["FEAT-026"]
    assert "section.acceptance_criteria" in codes["BUG-040"]
    assert "section.affected_files" in codes["TASK-014"]
    assert "section.verification_commands" in codes["FEAT-028"]
    assert "section.description" in codes["IDEA-007"]


def test_headings_inside_fences_are_not_sections() -> None:
    text = "---\nid: A-1\n---\n## A\n```\n## not\n```\n  ~~~x\n## B\n x ```\n## C\n\u00a0```\n## D\n```\n## E"
    ticket = parse_ticket(text.encode(), "backlog/data/pending/A-1.md")
    assert [s.heading for s in ticket.sections] == ["A", "D"]
    assert ticket.section("d") == "```\n## E"


def test_the_collector_is_paused_then_what_was_built_is_frozen() -> None:
    import gc

    from batch_ops.backlog import gc_paused

    gc.unfreeze()
    with gc_paused():
        assert not gc.isenabled()
        built = [{"n": i} for i in range(1000)]
    assert gc.isenabled() and gc.get_freeze_count() >= len(built)
    gc.unfreeze()
    with pytest.raises(KeyError), gc_paused():
        raise KeyError("x")
    assert gc.isenabled() and gc.get_freeze_count() == 0  # not on the way out of an error
    gc.disable()
    try:
        with gc_paused():
            pass
        assert not gc.isenabled() and gc.get_freeze_count() == 0  # it was off: left as it was
    finally:
        gc.enable()
