"""The refinement applier: only the sections it owns change, every other byte stays, CRLF and BOM too."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from batch_ops.backlog import parse_ticket
from batch_ops.ticket_edit import EditRefused, SectionEdit, block, one_line, rewrite, table_cell

TODAY = "2026-03-01"
ROW = (TODAY, "batch-ops", "Refined description (job-20260301-0001)")

TICKET = """---
id: FEAT-100
title: "Export: invoices"
status: pending
priority: low
created: 2026-01-01
updated: 2026-01-02
story_points: 3
---

# FEAT-100: Export: invoices

## Context
Bookkeepers asked.

## Description
Old description.
Second line.

## Affected Files
| File | Change |
| --- | --- |
| src/a.ts | modify |

## Acceptance Criteria
- [ ] AC-1: one

## Test Strategy
- Unit.

### Manual QA
Click around; keep this.

### Verification Commands
```bash
npx vitest run
```

## Customer Quotes
"We need this" — unknown section, kept as is.

## History
| Date | Author | Change |
| --- | --- | --- |
| 2026-01-01 | ana | Created |
"""


def _edit(raw: bytes, edits: list[SectionEdit]) -> bytes:
    ticket = parse_ticket(raw, "backlog/data/pending/FEAT-100.md")
    return rewrite(raw, ticket, edits, today=TODAY, history_row=ROW)


def _expected_lf(description: str) -> str:
    return (
        TICKET.replace("updated: 2026-01-02", f"updated: {TODAY}")
        .replace("Old description.\nSecond line.", description)
        .replace("| 2026-01-01 | ana | Created |\n", f"| 2026-01-01 | ana | Created |\n| {' | '.join(ROW)} |\n")
    )


def test_only_the_owned_section_updated_and_history_change() -> None:
    new = _edit(TICKET.encode(), [SectionEdit("Description", "New text.")])
    assert new.decode() == _expected_lf("New text.")


def test_crlf_file_stays_crlf_byte_for_byte() -> None:
    raw = TICKET.replace("\n", "\r\n").encode()
    new = _edit(raw, [SectionEdit("Description", "New text.\n\nSecond paragraph.")])
    assert new == _expected_lf("New text.\n\nSecond paragraph.").replace("\n", "\r\n").encode()
    assert b"\n" not in new.replace(b"\r\n", b"")


def test_bom_and_mixed_line_endings_outside_the_edit_are_kept() -> None:
    # A CRLF file with one stray LF line and no final newline: those bytes must survive untouched.
    text = TICKET.replace("\n", "\r\n").replace("Bookkeepers asked.\r\n", "Bookkeepers asked.\n").rstrip("\r\n")
    raw = b"\xef\xbb\xbf" + text.encode()
    new = _edit(raw, [SectionEdit("Description", "New text.")])
    assert new.startswith(b"\xef\xbb\xbf---\r\n")
    assert b"Bookkeepers asked.\n\r\n## Description" in new
    assert new.endswith(f"| {' | '.join(ROW)} |".encode())
    head, _, _ = raw.partition(b"Old description.")
    assert new.startswith(head.replace(b"updated: 2026-01-02", f"updated: {TODAY}".encode()))


def test_unknown_subsections_and_sections_survive_a_test_strategy_rewrite() -> None:
    body = "- Unit: the serialiser.\n\n### Verification Commands\n```bash\nnpx vitest run tests/a\n```"
    new = _edit(TICKET.encode(), [SectionEdit("Test Strategy", body, owned_subsections=("Verification Commands",))])
    after = parse_ticket(new, "x.md")
    strategy = after.section("Test Strategy") or ""
    assert "### Manual QA\nClick around; keep this." in strategy
    assert "npx vitest run tests/a" in strategy and "npx vitest run\n" not in strategy
    assert after.section("Customer Quotes") == '"We need this" — unknown section, kept as is.'
    assert after.front == {**parse_ticket(TICKET.encode(), "x.md").front, "updated": TODAY}


def test_missing_sections_are_inserted_in_canonical_order() -> None:
    text = TICKET.replace("## Test Strategy\n- Unit.\n\n### Manual QA\nClick around; keep this.\n\n", "")
    text = text.replace("### Verification Commands\n```bash\nnpx vitest run\n```\n\n", "")
    edits = [SectionEdit("Open Questions", "- Which columns?"), SectionEdit("Test Strategy", "- Unit: x.")]
    new = _edit(text.encode(), edits).decode()
    order = [line for line in new.splitlines() if line.startswith("## ")]
    # Right after the last known section that precedes them; the unknown section keeps its place.
    assert order == [
        "## Context", "## Description", "## Affected Files", "## Acceptance Criteria", "## Test Strategy",
        "## Open Questions", "## Customer Quotes", "## History",
    ]  # fmt: skip
    assert "- [ ] AC-1: one\n\n## Test Strategy\n- Unit: x.\n\n## Open Questions\n- Which columns?\n\n## Cust" in new


def test_an_empty_section_body_gets_filled_with_a_blank_line_before_the_next_heading() -> None:
    text = TICKET.replace("## Description\nOld description.\nSecond line.\n", "## Description\n")
    new = _edit(text.encode(), [SectionEdit("Description", "Filled.")]).decode()
    assert "## Description\nFilled.\n\n## Affected Files" in new


def test_missing_updated_key_is_added_after_created_and_no_history_gets_a_table() -> None:
    text = TICKET.replace("updated: 2026-01-02\n", "").split("## History")[0].rstrip("\n") + "\n"
    new = _edit(text.encode(), [SectionEdit("Description", "New.")]).decode()
    assert f"created: 2026-01-01\nupdated: {TODAY}\nstory_points: 3" in new
    assert new.endswith(f"## History\n| Date | Author | Change |\n| --- | --- | --- |\n| {' | '.join(ROW)} |\n")


def test_quoted_updated_value_keeps_its_quotes() -> None:
    text = TICKET.replace("updated: 2026-01-02", 'updated: "2026-01-02"')
    new = _edit(text.encode(), [SectionEdit("Description", "New.")]).decode()
    assert f'updated: "{TODAY}"' in new


def test_non_utf8_ticket_is_never_rewritten() -> None:
    raw = TICKET.encode().replace(b"Bookkeepers asked.", b"Soci\xe9t\xe9 asked.")  # a Latin-1 line
    with pytest.raises(EditRefused, match="not valid UTF-8"):
        _edit(raw, [SectionEdit("Description", "New.")])


def test_model_text_cannot_inject_headings_front_matter_fences_or_html() -> None:
    hostile = (
        "Fine text.\n## History\n---\npriority: critical\n---\n# Title\n```\nunclosed fence\n"
        "Setext\n===\n<!-- hide the rest -->\n<script>x</script>"
    )
    body = block(hostile)
    new = _edit(TICKET.encode(), [SectionEdit("Description", body)])
    after = parse_ticket(new, "x.md")
    before = parse_ticket(TICKET.encode(), "x.md")
    assert after.front == {**before.front, "updated": TODAY}
    assert [s.heading for s in after.sections] == [s.heading for s in before.sections]
    description = after.section("Description") or ""
    assert "\\## History" in description and "\\---" in description and "\\```" in description
    assert "\\<!--" in description and "\\<script>" in description and "\\===" in description
    for line in description.splitlines():
        assert not line.startswith(("#", "---", "```", "<", "==="))


def test_inline_helpers_flatten_and_escape() -> None:
    assert one_line("a\n## b\r\n<b>c</b>") == "a ## b \\<b>c\\</b>"
    assert [one_line(x) for x in ("# h", "> q", "- l", "1. n", "-1 ok")] == [
        "\\# h",
        "\\> q",
        "\\- l",
        "\\1. n",
        "-1 ok",
    ]
    assert table_cell("src/a.ts | x") == "src/a.ts \\| x"
    assert len(one_line("x" * 1000, limit=50)) == 50


_LINE = st.text(st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), max_size=30).map(
    lambda s: s.replace("#", "").replace("`", "").replace("-", "").replace("~", "").strip()
)


@settings(max_examples=60, deadline=None)
@given(
    bodies=st.lists(st.lists(_LINE, min_size=0, max_size=4), min_size=4, max_size=4),
    crlf=st.booleans(),
    bom=st.booleans(),
    chosen=st.sets(st.sampled_from(["Context", "Description", "Implementation Notes", "Open Questions"])),
    new_text=_LINE.filter(bool),
)
def test_property_untouched_sections_and_front_matter_survive(
    bodies: list[list[str]], crlf: bool, bom: bool, chosen: set[str], new_text: str
) -> None:
    names = ["Context", "Description", "Notes From Sales", "Implementation Notes"]
    text = "---\nid: X-1\ntitle: t\nupdated: 2026-01-01\nodd_key: [1, 2]\n---\n\n# X-1: t\n\n"
    for name, lines in zip(names, bodies, strict=True):
        text += f"## {name}\n" + "".join(f"{line}\n" for line in lines) + "\n"
    raw = (b"\xef\xbb\xbf" if bom else b"") + (text.replace("\n", "\r\n") if crlf else text).encode()
    before = parse_ticket(raw, "x.md")
    new = rewrite(raw, before, [SectionEdit(h, new_text) for h in sorted(chosen)], today=TODAY, history_row=ROW)
    after = parse_ticket(new, "x.md")
    assert after.front == {**before.front, "updated": TODAY}
    assert after.bom == bom
    assert (b"\n" not in new.replace(b"\r\n", b"")) if crlf else (b"\r" not in new)
    for sec in before.sections:
        if sec.heading not in chosen:
            assert after.section(sec.heading) == sec.body
        else:
            assert after.section(sec.heading) == new_text
    untouched = min((s.start for s in before.sections if s.heading in chosen), default=len(before.text))
    eol = "\r\n" if crlf else "\n"
    prefix = before.text[:untouched].replace("updated: 2026-01-01", f"updated: {TODAY}").replace("\n", eol)
    assert new.removeprefix(b"\xef\xbb\xbf").startswith(prefix.encode())
