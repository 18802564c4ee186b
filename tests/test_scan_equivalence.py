"""The scan's fast paths give what the straightforward code they replaced gave.

The reference functions below are the earlier implementations (kept here only as the oracle):
section splitting by ``str.find`` on markers, the Affected Files table read cell by cell, the
Verification Commands search over the whole section. They are compared with the scanner's on a
generated messy backlog and on random texts built from the characters that matter.
"""

from __future__ import annotations

import re
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from batch_ops.backlog import (
    Ticket,
    _front_close,
    _split_at_headings,
    _split_by_marks,
    _split_sections,
    parse_ticket,
    scan_backlog,
)
from batch_ops.frontmatter import parse_simple
from batch_ops.testing.ticketgen import generate_backlog

_FENCE = re.compile(r"^\s*(```|~~~)")
_FRONT_CLOSE = re.compile(r"^---[ \t]*$", re.MULTILINE)


def _old_mark_lines(text: str, body_start: int) -> list[tuple[int, bool]]:
    marks: dict[int, bool] = {}
    if text.startswith("## ", body_start):
        marks[body_start] = False
    pos = text.find("\n## ", body_start)
    while pos != -1:
        marks[pos + 1] = False
        pos = text.find("\n## ", pos + 1)
    for fence in ("```", "~~~"):
        pos = text.find(fence, body_start)
        while pos != -1:
            line_start = text.rfind("\n", 0, pos) + 1
            if line_start >= body_start and (line_start == pos or text[line_start:pos].isspace()):
                marks[line_start] = True
            pos = text.find(fence, pos + 3)
    return sorted(marks.items())


def _old_split_sections(text: str, body_start: int) -> list[tuple[str, str, int, int]]:
    out: list[tuple[str, str, int, int]] = []
    heads: list[tuple[str, int]] = []
    in_fence = False
    for start, is_fence in _old_mark_lines(text, body_start):
        if is_fence:
            in_fence = not in_fence
        elif not in_fence:
            line_end = text.find("\n", start)
            heads.append((text[start + 3 : len(text) if line_end == -1 else line_end].strip(), start))
    for i, (heading, start) in enumerate(heads):
        end = heads[i + 1][1] if i + 1 < len(heads) else len(text)
        line_end = text.find("\n", start)
        body_from = len(text) if line_end == -1 else line_end + 1
        out.append((heading, text[body_from:end].strip("\n"), start, end))
    return out


def _old_affected_files(body: str) -> list[str]:
    rows: list[str] = []
    for line in body.splitlines():
        stripped = line.strip()
        if not stripped.startswith("|"):
            if stripped.startswith(("- ", "* ")) and len(stripped) > 2:
                rows.append(stripped[2:].strip("` "))
            continue
        cells = [c.strip() for c in stripped.strip("|").split("|")]
        if not cells or set(cells[0]) <= set("-: "):
            continue
        rows.append(cells[0].strip("` "))
    if rows and body.lstrip().startswith("|"):
        rows = rows[1:]
    return [r for r in rows if r]


def _old_verification_commands(body: str) -> list[str]:
    match = re.search(r"^###\s+Verification Commands\s*$", body, flags=re.MULTILINE | re.IGNORECASE)
    if not match:
        return []
    rest = body[match.end() :]
    nxt = re.search(r"^###\s", rest, flags=re.MULTILINE)
    block = rest[: nxt.start()] if nxt else rest
    commands = []
    for line in block.splitlines():
        s = line.strip()
        if not s or _FENCE.match(s) or s.startswith("#"):
            continue
        commands.append(s.lstrip("-*$ ").strip("`"))
    return [c for c in commands if c]


def _as_tuples(ticket: Ticket) -> list[tuple[str, str, int, int]]:
    return [(s.heading, s.body, s.start, s.end) for s in ticket.sections]


def test_generated_messy_backlog_reads_as_before(tmp_path: Path) -> None:
    generate_backlog(tmp_path, 600, duplicates=20, seed=13, messy=True, messy_ratio=0.2)
    scan = scan_backlog(tmp_path)
    assert scan.tickets and scan.problems  # both paths taken
    for ticket in scan.tickets:
        assert _as_tuples(ticket) == _old_split_sections(ticket.text, ticket.front_end)
        assert ticket.affected_files() == _old_affected_files(ticket.section("Affected Files") or "")
        assert ticket.verification_commands() == _old_verification_commands(ticket.section("Test Strategy") or "")
        assert ticket.has_verification_commands() == bool(ticket.verification_commands())


_PIECES = ["## ", "#", "###", "\n", " ", "\t", "```", "~~~", "x", "\u00a0", "\u2028", "`", "~", "##", "\x0b", "|",
           "- ", "* ", ":", "-", "Verification Commands", "verification commands", "$ ", "\x85", "é"]  # fmt: skip


@settings(max_examples=400, deadline=None)
@given(st.lists(st.sampled_from(_PIECES), max_size=30), st.integers(min_value=0, max_value=40))
def test_sections_split_as_before(parts: list[str], start: int) -> None:
    text = "".join(parts)
    start = min(start, len(text) + 1)
    assert [(s.heading, s.body, s.start, s.end) for s in _split_sections(text, start)] == _old_split_sections(
        text, start
    )


@settings(max_examples=400, deadline=None)
@given(st.lists(st.sampled_from(_PIECES), max_size=30))
def test_affected_files_and_verification_commands_as_before(parts: list[str]) -> None:
    body = "".join(parts)
    text = f"---\nid: X-1\n---\n## Affected Files\n{body}\n## Test Strategy\n{body}\n"
    ticket = parse_ticket(text.encode(), "backlog/data/pending/X-1.md")
    assert ticket.affected_files() == _old_affected_files(ticket.section("Affected Files") or "")
    assert ticket.verification_commands() == _old_verification_commands(ticket.section("Test Strategy") or "")
    assert ticket.has_verification_commands() == bool(ticket.verification_commands())


_VERIFY_PIECES = ["### Verification Commands", "### verification commands  ", "### Other", "###", "\n", " ", "\t",
                  "```", "~~~", "npm test", "# note", "- ", "$ ", "`", "\x0b", "\u2028", "\x85", "\nnpm test",
                  "\n### Other", "\n###", "\n```", "\n- $ `make`"]  # fmt: skip


@settings(max_examples=400, deadline=None)
@given(
    st.lists(st.sampled_from(_VERIFY_PIECES), max_size=10),
    st.sampled_from(["\n", " \n", "\t", "", "\n\n"]),
    st.lists(st.sampled_from(_VERIFY_PIECES), max_size=25),
)
def test_verification_commands_found_as_before(before: list[str], end: str, after: list[str]) -> None:
    # The heading is on a line of its own in most bodies, as in tickets, so the commands under it are read.
    body = "".join(before) + "\n### Verification Commands" + end + "".join(after)
    ticket = parse_ticket(f"---\nid: X-1\n---\n## Test Strategy\n{body}\n".encode(), "backlog/data/pending/X-1.md")
    assert ticket.verification_commands() == _old_verification_commands(ticket.section("Test Strategy") or "")
    assert ticket.has_verification_commands() == bool(ticket.verification_commands())


def test_cached_front_matter_lines_are_fresh_lists() -> None:
    text = "id: A-1\ntags: [a, b]\nblockers: []\nstatus: pending"
    first = parse_simple(text)
    assert first is not None
    first["tags"].append("mutated")
    first["blockers"].append("x")
    again = parse_simple(text)
    assert again == {"id": "A-1", "tags": ["a", "b"], "blockers": [], "status": "pending"}
    assert parse_simple("a: [x, [y]]") is None and parse_simple("a: [x, [y]]") is None  # declines stay declined


@settings(max_examples=400, deadline=None)
@given(st.lists(st.sampled_from(["---", "\n", " ", "\t", "-", "x", "\u00a0", "--", ":", "\x0b"]), max_size=30))
def test_front_matter_closes_where_the_regex_said(parts: list[str]) -> None:
    text = "---\n" + "".join(parts)
    old = _FRONT_CLOSE.search(text, 4)
    assert _front_close(text) == (None if old is None else (old.start(), old.end()))


@settings(max_examples=400, deadline=None)
@given(st.lists(st.sampled_from(["\r", "\n", "\r\n", "x", "é", "\u2028", "## A", "\xff", "\x85"]), max_size=30))
def test_line_ends_normalised_as_before(parts: list[str]) -> None:
    # Encoded as UTF-8 or, for a "\xff" piece, as bytes that are not UTF-8 (read as Latin-1).
    body = "".join(parts)
    raw = ("---\nid: X-1\n---\n" + body).encode("utf-8").replace("\xff".encode(), b"\xff")
    ticket = parse_ticket(raw, "backlog/data/pending/X-1.md")
    decoded = raw.decode("utf-8") if ticket.utf8 else raw.decode("latin-1")
    assert ticket.crlf == ("\r\n" in decoded)
    assert ticket.text == decoded.replace("\r\n", "\n").replace("\r", "\n")


@settings(max_examples=600, deadline=None)
@given(st.lists(st.sampled_from([*_PIECES, "\n## ", "\n```", "\n~~~", "\n  ```"]), max_size=40))
def test_sections_split_at_headings_as_by_marks(parts: list[str]) -> None:
    # parse_ticket's case: the body starts at a line start (after the front matter's closing line).
    text = "---\nid: X-1\n---\n" + "".join(parts)
    start = len("---\nid: X-1\n---\n")
    fast = _split_at_headings(text, start)
    general = _split_by_marks(text, start)
    assert fast is None or fast == general
    assert _split_sections(text, start) == general
    assert [(s.heading, s.body, s.start, s.end) for s in general] == _old_split_sections(text, start)


def _section_map_from_sections(ticket: Ticket) -> dict[str, str]:
    # What ``Ticket._section_map`` builds from the sections when the split has not filled it in.
    found: dict[str, str] = {}
    for sec in ticket.sections:
        found.setdefault(sec.heading.strip().lower(), sec.body)
    return found


@settings(max_examples=600, deadline=None)
@given(st.lists(st.sampled_from([*_PIECES, "\n## ", "\n```", "\n~~~", "\n  ```", "\n## A", "\n## a ", "\n##  A"]),
                max_size=40))
def test_section_map_built_by_the_split_as_from_the_sections(parts: list[str]) -> None:
    raw = ("---\nid: X-1\n---\n" + "".join(parts)).encode()
    ticket = parse_ticket(raw, "backlog/data/pending/X-1.md")
    assert ticket._section_map == _section_map_from_sections(ticket)
    # The map filled in by the split is not a field: the model's fields and dump are what they were.
    assert ticket.model_fields_set == set(Ticket.model_fields)
    assert ticket == Ticket.model_validate(ticket.model_dump())


def test_generated_backlog_section_maps_as_from_the_sections(tmp_path: Path) -> None:
    generate_backlog(tmp_path, 300, duplicates=5, seed=29, messy=True, messy_ratio=0.3)
    for ticket in scan_backlog(tmp_path).tickets:
        assert ticket._section_map == _section_map_from_sections(ticket)
        assert ticket.section("Description") == next(
            (s.body for s in ticket.sections if s.heading.strip().lower() == "description"), None
        )
