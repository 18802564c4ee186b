"""Tickets: Markdown files with YAML front matter, read defensively.

Real tickets are messy. A file that cannot be used (empty, no front matter, broken YAML) raises
``TicketError`` naming the file and the reason; the scan reports it and goes on with the rest.
Quirks that do not stop reading (CRLF, a BOM, bytes that are not UTF-8, unknown keys, a missing
``id``) are tolerated and remembered, so nothing later rewrites such a file blindly.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import math
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict

from batch_ops.errors import TicketError

_ID_IN_NAME = re.compile(r"^([A-Z][A-Z0-9]*-\d+[a-z]?)")
_AC_LINE = re.compile(r"^\s*[-*]\s*\[[ xX]\]\s*\S")
_FENCE = re.compile(r"^\s*(```|~~~)")
MAX_TICKET_BYTES = 2_000_000
# libyaml's safe loader when PyYAML was built with it: the pure-Python one was ~90% of a scan.
_YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class Section(BaseModel):
    """A ``## Heading`` and its body (subsections included), with offsets into the normalised text."""

    model_config = ConfigDict(frozen=True)

    heading: str
    body: str
    start: int  # offset of the heading line
    end: int  # offset just past the section's last line


class Ticket(BaseModel):
    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

    path: str  # repository-relative, POSIX
    state_dir: str  # "pending" or "completed"
    id: str
    id_from_file_name: bool
    front: dict[str, Any]
    text: str  # the whole file, decoded, with LF line endings
    front_end: int  # offset where the Markdown body starts
    sections: tuple[Section, ...]
    content_hash: str  # sha256 of the raw bytes: changed-since checks compare this
    crlf: bool
    bom: bool
    utf8: bool

    @property
    def title(self) -> str:
        return str(self.front.get("title") or "")

    @property
    def status(self) -> str:
        return str(self.front.get("status") or "pending")

    @property
    def priority(self) -> str:
        return str(self.front.get("priority") or "").lower()

    def section(self, name: str) -> str | None:
        """Body of the first section whose heading matches ``name`` (case-insensitive), or None."""
        wanted = name.strip().lower()
        for sec in self.sections:
            if sec.heading.strip().lower() == wanted:
                return sec.body
        return None

    def list_field(self, key: str) -> list[str]:
        value = self.front.get(key)
        if value is None or value == "":
            return []
        if isinstance(value, list):
            return [str(v) for v in value if v is not None and str(v).strip()]
        return [str(value)]

    def number_field(self, key: str) -> float | None:
        """A finite number, or None: ``.inf``, ``.nan`` and ints too big for a float are not numbers here."""
        value = self.front.get(key)
        if isinstance(value, bool):
            return None
        number: float | None = None
        try:
            if isinstance(value, int | float):
                number = float(value)
            elif isinstance(value, str):
                number = float(value.replace(",", "").replace("_", ""))
        except (ValueError, OverflowError):
            return None
        return number if number is not None and math.isfinite(number) else None

    def acceptance_criteria(self) -> list[str]:
        body = self.section("Acceptance Criteria") or ""
        return [line.strip() for line in body.splitlines() if _AC_LINE.match(line)]

    def affected_files(self) -> list[str]:
        """Rows of the Affected Files table (header and separator excluded), first cell only."""
        body = self.section("Affected Files") or ""
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
        # The first table row is the header.
        if rows and body.lstrip().startswith("|"):
            rows = rows[1:]
        return [r for r in rows if r]

    def verification_commands(self) -> list[str]:
        body = self.section("Test Strategy") or ""
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


# YAML aliases can make a small file expand into a huge (or endless) structure: bound the walk.
MAX_FRONT_NODES = 20_000
MAX_FRONT_DEPTH = 50


class _FrontTooBig(Exception):
    pass


def _json_safe(value: Any, budget: list[int] | None = None, depth: int = 0, stack: tuple[int, ...] = ()) -> Any:
    """YAML gives dates and other types JSON lacks; keep front matter JSON-serialisable.

    Raises ``_FrontTooBig`` for a recursive alias, more than ``MAX_FRONT_NODES`` values (an alias
    "billion laughs") or nesting deeper than ``MAX_FRONT_DEPTH``.
    """
    budget = budget if budget is not None else [MAX_FRONT_NODES]
    budget[0] -= 1
    if budget[0] < 0:
        raise _FrontTooBig(f"more than {MAX_FRONT_NODES} values (aliases expand too far)")
    if depth > MAX_FRONT_DEPTH:
        raise _FrontTooBig(f"nested deeper than {MAX_FRONT_DEPTH} levels")
    if isinstance(value, dt.date | dt.datetime):
        return value.isoformat()
    if isinstance(value, dict | list | tuple | set):
        if id(value) in stack:
            raise _FrontTooBig("a recursive alias")
        inner = (*stack, id(value))
        if isinstance(value, dict):
            return {str(k): _json_safe(v, budget, depth + 1, inner) for k, v in value.items()}
        return [_json_safe(v, budget, depth + 1, inner) for v in value]
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return str(value)


def _decode(raw: bytes) -> tuple[str, bool, bool]:
    bom = raw.startswith(b"\xef\xbb\xbf")
    if bom:
        raw = raw[3:]
    try:
        return raw.decode("utf-8"), bom, True
    except UnicodeDecodeError:
        # Latin-1 maps every byte, so the ticket stays readable; utf8=False marks it read-only.
        return raw.decode("latin-1"), bom, False


def _split_sections(text: str, body_start: int) -> tuple[Section, ...]:
    sections: list[Section] = []
    heads: list[tuple[str, int]] = []
    offset = 0
    in_fence = False
    for line in text.splitlines(keepends=True):
        if offset >= body_start:
            if _FENCE.match(line):
                in_fence = not in_fence
            elif not in_fence and line.startswith("## "):
                heads.append((line[3:].strip(), offset))
        offset += len(line)
    for i, (heading, start) in enumerate(heads):
        end = heads[i + 1][1] if i + 1 < len(heads) else len(text)
        line_end = text.find("\n", start)
        body_from = len(text) if line_end == -1 else line_end + 1
        sections.append(Section(heading=heading, body=text[body_from:end].strip("\n"), start=start, end=end))
    return tuple(sections)


def parse_ticket(raw: bytes, rel_path: str, state_dir: str = "pending") -> Ticket:
    """Parse one ticket's bytes; raise TicketError(path, reason) if it cannot be used."""
    if not raw.strip():
        raise TicketError(rel_path, "empty file")
    if len(raw) > MAX_TICKET_BYTES:
        raise TicketError(rel_path, f"file too large ({len(raw)} bytes, limit {MAX_TICKET_BYTES})")
    if b"\x00" in raw:
        raise TicketError(rel_path, "binary file (contains NUL bytes)")
    decoded, bom, utf8 = _decode(raw)
    crlf = "\r\n" in decoded
    text = decoded.replace("\r\n", "\n").replace("\r", "\n")
    if not text.startswith("---\n"):
        raise TicketError(rel_path, "no YAML front matter (the file must start with a '---' line)")
    close = re.search(r"^---[ \t]*$", text[4:], flags=re.MULTILINE)
    if close is None:
        raise TicketError(rel_path, "front matter is not closed by a '---' line")
    yaml_text = text[4 : 4 + close.start()]
    front_end = 4 + close.end()
    if front_end < len(text) and text[front_end] == "\n":
        front_end += 1
    try:
        front = yaml.load(yaml_text, Loader=_YAML_LOADER) if yaml_text.strip() else {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 2}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise TicketError(rel_path, f"broken YAML front matter{where}: {problem}") from None
    except RecursionError:
        raise TicketError(rel_path, "broken YAML front matter: nested too deeply") from None
    except Exception as exc:  # safe_load's constructors raise ValueError, TypeError, ...
        # e.g. "created: 2026-13-45" or "!!int many": the value cannot be built.
        detail = " ".join(str(exc).split())[:200]
        raise TicketError(rel_path, f"broken YAML front matter: bad value ({type(exc).__name__}: {detail})") from None
    if front is None:
        front = {}
    if not isinstance(front, dict):
        raise TicketError(rel_path, f"front matter must be a mapping of keys, got {type(front).__name__}")
    try:
        front = _json_safe(front)
    except _FrontTooBig as exc:
        raise TicketError(rel_path, f"front matter refused: {exc}") from None
    raw_id = front.get("id")
    file_name = rel_path.rsplit("/", 1)[-1]
    if isinstance(raw_id, str | int) and str(raw_id).strip():
        ticket_id, from_name = str(raw_id).strip(), False
    else:
        m = _ID_IN_NAME.match(file_name)
        ticket_id, from_name = (m.group(1) if m else file_name.removesuffix(".md")), True
    return Ticket(
        path=rel_path,
        state_dir=state_dir,
        id=ticket_id,
        id_from_file_name=from_name,
        front=front,
        text=text,
        front_end=front_end,
        sections=_split_sections(text, front_end),
        content_hash=hashlib.sha256(raw).hexdigest(),
        crlf=crlf,
        bom=bom,
        utf8=utf8,
    )


@dataclass
class BacklogScan:
    tickets: list[Ticket] = field(default_factory=list)
    problems: list[TicketError] = field(default_factory=list)

    @property
    def pending(self) -> list[Ticket]:
        return [
            t for t in self.tickets if t.state_dir == "pending" and t.status not in ("completed", "split")
        ]

    def by_id(self) -> dict[str, Ticket]:
        return {t.id: t for t in self.tickets}


def iter_ticket_files(backlog_dir: Path) -> Iterable[tuple[str, Path]]:
    for state_dir in ("pending", "completed"):
        folder = backlog_dir / state_dir
        if folder.is_dir():
            for path in sorted(folder.glob("*.md")):
                yield state_dir, path


def scan_backlog(root: Path, data_dir: str = "backlog/data") -> BacklogScan:
    """Read every ticket; bad files and duplicate ids become problems, the rest tickets."""
    scan = BacklogScan()
    seen: dict[str, str] = {}
    root_real = root.resolve()
    for state_dir, path in iter_ticket_files(root / data_dir):
        rel = path.relative_to(root).as_posix()
        try:
            # Checked for every file, not only symlinks: the pending/ folder itself may be a link out.
            if root_real not in path.resolve().parents:
                raise TicketError(rel, "symlink pointing outside the repository refused")
            raw = path.read_bytes()
        except OSError as exc:
            scan.problems.append(TicketError(rel, f"cannot read: {exc.strerror or exc}"))
            continue
        except TicketError as exc:
            scan.problems.append(exc)
            continue
        try:
            ticket = parse_ticket(raw, rel, state_dir)
        except TicketError as exc:
            scan.problems.append(exc)
            continue
        if ticket.id in seen:
            scan.problems.append(
                TicketError(rel, f"duplicate id {ticket.id} (first seen in {seen[ticket.id]}); skipped")
            )
            continue
        seen[ticket.id] = rel
        scan.tickets.append(ticket)
    return scan
