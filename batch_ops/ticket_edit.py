"""Rewriting chosen sections of a ticket file and nothing else, byte for byte.

Offsets from ``backlog.parse_ticket`` point into the normalised text (LF, no BOM). Edits are made
there and mapped back onto the file's own bytes line by line, so the lines outside the edited spans
keep their exact endings (CRLF, LF, even a stray CR), the BOM stays, and the front matter changes
only in the value of ``updated``. New text takes the file's line ending.

Every rewrite is checked before it is written: the result must parse, its front matter must equal
the old one except ``updated``, and every section that was not edited must keep its body. A rewrite
that fails the check is refused, not written. The write itself is atomic (temp file, fsync,
rename), so a crash leaves the old file or the new one.

Model text is untrusted: ``block`` and ``one_line`` neutralise what would change the document's
structure (headings, setext underlines, rules, code fences, HTML) before it lands in a section.
"""

from __future__ import annotations

import bisect
import itertools
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

from batch_ops.backlog import Section, Ticket, parse_ticket
from batch_ops.errors import TicketError

# Canonical order of sections (DESIGN.md §2); a missing section is inserted at its place in it.
SECTION_ORDER: tuple[str, ...] = (
    "Context",
    "Description",
    "Affected Files",
    "Acceptance Criteria",
    "Test Strategy",
    "Dependencies",
    "Implementation Notes",
    "Open Questions",
    "History",
)

_LINE = re.compile(r"[^\r\n]*(?:\r\n|\r|\n|$)")
_HEADING = re.compile(r"^( {0,3})(#{1,6})(?=\s|$)")
_SETEXT_OR_RULE = re.compile(r"^ {0,3}(?:=+|-+|(?:[-*_][ \t]*){3,})[ \t]*$")
_FENCE = re.compile(r"^( {0,3})(`{3,}|~{3,})")
_HTML_START = re.compile(r"<(?=[A-Za-z/!?])")
_BLOCK_START = re.compile(r"[#>]|[-*+](?:\s|$)|\d{1,9}[.)](?:\s|$)")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
_UPDATED = re.compile(r"^updated:[ \t]*(?P<value>.*?)[ \t]*$", re.MULTILINE)
_CREATED = re.compile(r"^created:.*$", re.MULTILINE)
_SUBHEAD = re.compile(r"^###\s+(.+?)\s*$", re.MULTILINE)


class EditRefused(Exception):
    """The ticket cannot be rewritten safely; the message says why. The file is left alone."""


# -- sanitising model text -------------------------------------------------------------------------


def one_line(text: str, *, limit: int = 400) -> str:
    """A single line of inline text: whitespace collapsed, HTML tag starts escaped, cut to ``limit``.

    It usually lands right after a list marker, where a leading ``#``, ``>`` or list marker would still
    open a heading, a quote or a nested list, so that first character is escaped too.
    """
    flat = " ".join(_CONTROL.sub(" ", str(text)).split())
    if len(flat) > limit:
        flat = flat[: limit - 1].rstrip() + "…"
    flat = _HTML_START.sub(r"\\<", flat)
    return "\\" + flat if _BLOCK_START.match(flat) else flat


def table_cell(text: str, *, limit: int = 200) -> str:
    return one_line(text, limit=limit).replace("|", "\\|") or " "


def block(text: str, *, limit: int = 4000) -> str:
    """Paragraph text that cannot open a heading, a rule, a code fence or HTML, or close a section."""
    text = _CONTROL.sub("", str(text).replace("\r\n", "\n").replace("\r", "\n"))
    if len(text) > limit:
        text = text[: limit - 1].rstrip() + "…"
    out: list[str] = []
    for raw in text.split("\n"):
        line = raw.rstrip()
        if not line.strip():
            if out and out[-1] != "":
                out.append("")
            continue
        line = _HTML_START.sub(r"\\<", line)
        heading = _HEADING.match(line)
        fence = _FENCE.match(line)
        if heading:
            line = f"{heading.group(1)}\\{line[heading.end(1) :]}"
        elif fence:
            line = f"{fence.group(1)}\\{line[fence.end(1) :]}"
        elif _SETEXT_OR_RULE.match(line):
            stripped = line.lstrip()
            line = line[: len(line) - len(stripped)] + "\\" + stripped
        out.append(line)
    while out and out[-1] == "":
        out.pop()
    return "\n".join(out)


# -- the edit --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SectionEdit:
    """Replace (or add) the section ``heading`` with ``body`` (LF text, already sanitised)."""

    heading: str
    body: str
    # Level-three subsections of the old body with these headings are replaced by ``body``;
    # any other ``###`` subsection the author wrote is kept, verbatim, after the new text.
    owned_subsections: tuple[str, ...] = ()


@dataclass(frozen=True)
class _Span:
    start: int
    end: int
    text: str


class _LineMap:
    """Maps offsets of the normalised text onto offsets of the decoded original."""

    def __init__(self, original: str) -> None:
        self.norm_starts: list[int] = []
        self.raw_starts: list[int] = []
        self.lengths: list[int] = []
        self.raw_eols: list[str] = []
        norm = raw = 0
        for match in _LINE.finditer(original):
            line = match.group(0)
            if not line:
                break
            content = line.rstrip("\r\n")
            eol = line[len(content) :]
            self.norm_starts.append(norm)
            self.raw_starts.append(raw)
            self.lengths.append(len(content))
            self.raw_eols.append(eol)
            norm += len(content) + (1 if eol else 0)
            raw += len(line)
        self.norm_len = norm
        self.raw_len = raw

    def raw_offset(self, offset: int) -> int:
        if offset >= self.norm_len:
            return self.raw_len
        i = bisect.bisect_right(self.norm_starts, offset) - 1
        delta = offset - self.norm_starts[i]
        if delta <= self.lengths[i]:
            return self.raw_starts[i] + delta
        return self.raw_starts[i] + self.lengths[i] + len(self.raw_eols[i])


def _find(ticket: Ticket, heading: str) -> Section | None:
    wanted = heading.strip().lower()
    return next((s for s in ticket.sections if s.heading.strip().lower() == wanted), None)


def _body_span(text: str, sec: Section) -> tuple[int, int]:
    """The section body without its leading and trailing blank lines; an empty body: all after the heading."""
    line_end = text.find("\n", sec.start)
    body_from = sec.end if line_end == -1 else min(line_end + 1, sec.end)
    region = text[body_from : sec.end]
    stripped = region.strip("\n")
    if not stripped:
        return body_from, sec.end
    lead = len(region) - len(region.lstrip("\n"))
    trail = len(region) - len(region.rstrip("\n"))
    return body_from + lead, sec.end - trail


def _kept_subsections(old_body: str, owned: tuple[str, ...]) -> str:
    """``###`` subsections of the old body that the edit does not own, verbatim."""
    heads = list(_SUBHEAD.finditer(old_body))
    owned_lower = {o.lower() for o in owned}
    kept: list[str] = []
    for i, head in enumerate(heads):
        end = heads[i + 1].start() if i + 1 < len(heads) else len(old_body)
        if head.group(1).strip().lower() not in owned_lower:
            kept.append(old_body[head.start() : end].strip("\n"))
    return "\n\n".join(kept)


def _insert_point(ticket: Ticket, heading: str) -> int:
    """Where a missing section goes: right after the last present section that precedes it in the order,
    else before the first one that follows it, else at the end."""
    order = [h.lower() for h in SECTION_ORDER]
    if heading.lower() == "history":
        return len(ticket.text)  # the append-only log closes the ticket, after unknown sections too
    rank = order.index(heading.lower()) if heading.lower() in order else len(order) - 1
    known = [(order.index(s.heading.strip().lower()), s) for s in ticket.sections if s.heading.strip().lower() in order]
    before = [s for r, s in known if r < rank]
    if before:
        return before[-1].end
    after = [s for r, s in known if r > rank]
    return after[0].start if after else len(ticket.text)


def _section_spans(ticket: Ticket, edit: SectionEdit) -> _Span:
    text = ticket.text
    sec = _find(ticket, edit.heading)
    if sec is not None:
        start, end = _body_span(text, sec)
        old_body = text[start:end]
        if not old_body.strip("\n"):  # empty body: the new one, then the blank line before the next heading
            return _Span(start, end, edit.body + ("\n\n" if end < len(text) else "\n"))
        kept = _kept_subsections(old_body, edit.owned_subsections)
        return _Span(start, end, edit.body + (f"\n\n{kept}" if kept else ""))
    at = _insert_point(ticket, edit.heading)
    new = f"## {edit.heading}\n{edit.body}\n"
    if at < len(text):
        return _Span(at, at, new + "\n")
    # At the end: always lead with the blank line, so two sections appended in a row stay apart.
    return _Span(at, at, ("\n" if text.endswith("\n") else "\n\n") + new)


def _updated_span(ticket: Ticket, today: str) -> _Span:
    front = ticket.text[: ticket.front_end]
    match = _UPDATED.search(front, 4)
    if match is not None:
        value = match.group("value")
        quote = value[:1] if value[:1] in ("'", '"') and value.endswith(value[:1]) and len(value) > 1 else ""
        return _Span(match.start("value"), match.end("value"), f"{quote}{today}{quote}")
    created = _CREATED.search(front, 4)
    # After `created:` when there is one, else just before the closing '---' line.
    at = created.end() + 1 if created is not None else front.rstrip("\n").rfind("\n") + 1
    return _Span(at, at, f"updated: {today}\n")


def _history_span(ticket: Ticket, row: tuple[str, ...]) -> _Span:
    text = ticket.text
    sec = _find(ticket, "History")
    if sec is None:
        line = "| " + " | ".join(row) + " |"
        body = "| Date | Author | Change |\n| --- | --- | --- |\n" + line
        return _section_spans(ticket, SectionEdit("History", body))
    start, end = _body_span(text, sec)
    lines = text[start:end].split("\n")
    table_rows = [i for i, line in enumerate(lines) if line.lstrip().startswith("|")]
    width = 3
    if table_rows:
        header = lines[table_rows[0]].strip().strip("|")
        width = max(len(header.split("|")), 1)
    cells = list(row[:width]) + [" "] * max(0, width - len(row))
    line = "| " + " | ".join(cells) + " |"
    if not table_rows:
        if start == end:
            line = "| Date | Author | Change |\n| --- | --- | --- |\n" + line
            return _Span(start, end, line + ("\n\n" if end < len(text) else "\n"))
        return _Span(end, end, "\n\n| Date | Author | Change |\n| --- | --- | --- |\n" + line)
    last = table_rows[-1]
    at = start + sum(len(x) + 1 for x in lines[: last + 1]) - 1  # end of the last table row
    return _Span(at, at, "\n" + line)


def _apply(original: str, ticket: Ticket, spans: list[_Span], eol: str) -> str:
    spans = sorted(spans, key=lambda s: (s.start, s.end))
    for a, b in itertools.pairwise(spans):
        if b.start < a.end:
            raise EditRefused("overlapping edits (duplicate section headings?)")
    mapping = _LineMap(original)
    if mapping.norm_len != len(ticket.text):
        raise EditRefused("the file changed between reading and rewriting")
    out: list[str] = []
    cursor = 0
    for span in spans:
        raw_start, raw_end = mapping.raw_offset(span.start), mapping.raw_offset(span.end)
        out.append(original[cursor:raw_start])
        out.append(span.text.replace("\n", eol))
        cursor = raw_end
    out.append(original[cursor:])
    return "".join(out)


def _check(before: Ticket, after_raw: bytes, edited: set[str]) -> None:
    try:
        after = parse_ticket(after_raw, before.path, before.state_dir)
    except TicketError as exc:
        raise EditRefused(f"the rewritten ticket would not parse: {exc.reason}") from None
    old_front = {k: v for k, v in before.front.items() if k != "updated"}
    new_front = {k: v for k, v in after.front.items() if k != "updated"}
    if old_front != new_front or after.id != before.id:
        raise EditRefused("the rewrite would change the front matter")
    if (after.bom, after.utf8) != (before.bom, before.utf8):
        raise EditRefused("the rewrite would change the file's encoding")
    old_sections = [(s.heading, s.body) for s in before.sections if s.heading.strip().lower() not in edited]
    new_sections = [(s.heading, s.body) for s in after.sections if s.heading.strip().lower() not in edited]
    if old_sections != new_sections:
        raise EditRefused("the rewrite would change sections it does not own")


def rewrite(raw: bytes, ticket: Ticket, edits: list[SectionEdit], *, today: str, history_row: tuple[str, ...]) -> bytes:
    """The new bytes of the ticket with ``edits`` applied, ``updated`` set and a History row added."""
    if not ticket.utf8:
        raise EditRefused("the file is not valid UTF-8; it is never rewritten")
    body = raw[3:] if ticket.bom else raw
    original = body.decode("utf-8")
    eol = "\r\n" if ticket.crlf else "\n"
    order = [h.lower() for h in SECTION_ORDER]
    edits = sorted(edits, key=lambda e: order.index(e.heading.lower()) if e.heading.lower() in order else len(order))
    spans = [_section_spans(ticket, e) for e in edits]
    spans.append(_updated_span(ticket, today))
    spans.append(_history_span(ticket, history_row))
    # Two insertions at one point (say Test Strategy and Open Questions before History) keep edit order.
    ordered = sorted(enumerate(spans), key=lambda p: (p[1].start, p[1].end, p[0]))
    merged: list[_Span] = []
    for _, span in ordered:
        if merged and merged[-1].start == merged[-1].end == span.start == span.end:
            merged[-1] = _Span(span.start, span.end, merged[-1].text + span.text)
        else:
            merged.append(span)
    new_text = _apply(original, ticket, merged, eol)
    result = (b"\xef\xbb\xbf" if ticket.bom else b"") + new_text.encode("utf-8")
    _check(ticket, result, {e.heading.lower() for e in edits} | {"history"})
    return result


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data`` atomically, keeping its permission bits."""
    mode = path.stat().st_mode & 0o7777 if path.exists() else 0o644
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
