"""Tickets: Markdown files with YAML front matter, read defensively.

Real tickets are messy. A file that cannot be used (empty, no front matter, broken YAML) raises
``TicketError`` naming the file and the reason; the scan reports it and goes on with the rest.
Quirks that do not stop reading (CRLF, a BOM, bytes that are not UTF-8, unknown keys, a missing
``id``) are tolerated and remembered, so nothing later rewrites such a file blindly.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import gc
import hashlib
import itertools
import math
import os
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple, TypeVar, overload

import yaml
from pydantic import BaseModel, ConfigDict

from batch_ops.errors import TicketError
from batch_ops.frontmatter import parse_simple

_ID_IN_NAME = re.compile(r"^([A-Z][A-Z0-9]*-\d+[a-z]?)")
_AC_LINE = re.compile(r"^\s*[-*]\s*\[[ xX]\]\s*\S")
_VERIFY_HEADING = re.compile(r"^###\s+Verification Commands\s*$", re.MULTILINE | re.IGNORECASE)
_SUBHEADING_AFTER_BREAK = re.compile(r"\n###\s")
MAX_TICKET_BYTES = 2_000_000
# libyaml's parser when PyYAML was built with it: the same safe constructor and resolver as
# yaml.safe_load (so the same values), about ten times faster on front matter.
_YAML_LOADER: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_T = TypeVar("_T")


class Section(NamedTuple):
    """A ``## Heading`` and its body (subsections included), with offsets into the normalised text.

    A named tuple: a backlog of 100,000 tickets makes about a million of them, and a tuple is the
    cheapest immutable record to build (a frozen dataclass sets each field through
    ``object.__setattr__``, about twice the time).
    """

    heading: str
    body: str
    start: int  # offset of the heading line
    end: int  # offset just past the section's last line



class _cached(functools.cached_property[_T]):
    """``functools.cached_property`` without its lock (Python 3.11 takes an ``RLock`` on every
    first access, a good part of the cost of the small accessors triage calls per ticket). A ticket
    is read by one thread; a race would only compute the same value twice."""

    @overload
    def __get__(self, instance: None, owner: type[Any] | None = None) -> _cached[_T]: ...
    @overload
    def __get__(self, instance: object, owner: type[Any] | None = None) -> _T: ...
    def __get__(self, instance: object | None, owner: type[Any] | None = None) -> _T | _cached[_T]:
        if instance is None:
            return self
        value = self.func(instance)
        # Straight into the instance dict, as the parent does: the next read finds it there.
        instance.__dict__[self.attrname or self.func.__name__] = value
        return value


_M = TypeVar("_M", bound=BaseModel)

# The setters of the four slots every pydantic model has (``BaseModel.__slots__``), taken once:
# ``object.__setattr__(model, name, value)`` looks ``__setattr__`` up on ``object`` and the name up
# on the model's type at every call, about half the cost of building a finding or a triage result.
_new_object = object.__new__
_set_dict: Callable[[BaseModel, dict[str, Any]], None] = BaseModel.__dict__["__dict__"].__set__
_set_fields_set: Callable[[BaseModel, set[str]], None] = BaseModel.__dict__["__pydantic_fields_set__"].__set__
_set_extra: Callable[[BaseModel, None], None] = BaseModel.__dict__["__pydantic_extra__"].__set__
_set_private: Callable[[BaseModel, None], None] = BaseModel.__dict__["__pydantic_private__"].__set__


def built_model(cls: type[_M], values: dict[str, Any]) -> _M:
    """``cls.model_construct(**values)`` where ``values`` holds every field of ``cls``, each already
    of its declared type, and ``cls`` has no alias, default, extra or private attribute to handle:
    the state validation would give, without validating values the code has just built (a
    tenth of a scan for tickets; most of the cost of a triage result or a finding). Callers keep
    a test holding what they build to the validated model."""
    model: _M = _new_object(cls)
    _set_dict(model, values)
    _set_fields_set(model, set(values))
    _set_extra(model, None)
    _set_private(model, None)
    return model


_SECTION_KEYS: dict[str, str] = {}  # a section name as asked for -> its lookup key


class Ticket(BaseModel):
    # ignored_types: pydantic knows ``functools.cached_property`` itself, not a subclass of it.
    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True, ignored_types=(_cached,))

    path: str  # repository-relative, POSIX
    state_dir: str  # "pending" or "completed"
    id: str
    id_from_file_name: bool
    front: dict[str, Any]
    text: str  # the whole file, decoded, with LF line endings
    front_end: int  # offset where the Markdown body starts
    sections: tuple[Section, ...]
    # sha256 of the raw bytes: changed-since checks compare this. Empty when the reader asked for
    # none (``parse_ticket(..., hashed=False)``): it then equals no file's hash, so such a ticket
    # can only look changed, never unchanged.
    content_hash: str
    crlf: bool
    bom: bool
    utf8: bool

    @classmethod
    def built(cls, values: dict[str, Any]) -> Ticket:
        """``model_construct(**values)`` for what ``parse_ticket`` gives: every field, each already of
        its type, and no alias, default, extra or private attribute to handle. Without
        ``model_construct``'s loop over the fields, which was a tenth of a scan's time;
        ``test_backlog`` holds the two to each other."""
        return built_model(cls, values)

    @property
    def title(self) -> str:
        return str(self.front.get("title") or "")

    @property
    def status(self) -> str:
        return str(self.front.get("status") or "pending")

    @property
    def is_pending(self) -> bool:
        """In pending/ and not marked done: what triage and the phases work on."""
        return self.state_dir == "pending" and self.status not in ("completed", "split")

    @property
    def priority(self) -> str:
        return str(self.front.get("priority") or "").lower()

    def section(self, name: str) -> str | None:
        """Body of the first section whose heading matches ``name`` (case-insensitive), or None."""
        key = _SECTION_KEYS.get(name)
        if key is None:  # callers name a handful of sections, nine times a ticket in triage
            key = name.strip().lower()
            if len(_SECTION_KEYS) < 1000:
                _SECTION_KEYS[name] = key
        return self._section_map.get(key)

    @_cached
    def _section_map(self) -> dict[str, str]:
        found: dict[str, str] = {}
        _fill_section_names(found, self.sections)
        return found

    def list_field(self, key: str) -> list[str]:
        value = self.front.get(key)
        if value is None or value == "":
            return []
        if isinstance(value, list):
            # Most lists are empty ("blockers: []"): no comprehension to run for them.
            return [str(v) for v in value if v is not None and str(v).strip()] if value else []
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
        return list(self._affected_files)

    @_cached
    def _affected_files(self) -> tuple[str, ...]:
        body = self.section("Affected Files") or ""
        rows: list[str] = []
        for line in body.splitlines():
            stripped = line.strip()
            if not stripped.startswith("|"):
                if stripped.startswith(("- ", "* ")) and len(stripped) > 2:
                    rows.append(stripped[2:].strip("` "))
                continue
            # Only the first cell counts: partition, not a split of the whole row.
            first = stripped.strip("|").partition("|")[0].strip()
            if not first.strip("-: "):  # only '-', ':' and spaces: the separator row
                continue
            rows.append(first.strip("` "))
        # The first table row is the header.
        if rows and body.lstrip().startswith("|"):
            rows = rows[1:]
        return tuple(filter(None, rows))  # the non-empty ones

    def verification_commands(self) -> list[str]:
        return list(self._verification_commands())

    def has_verification_commands(self) -> bool:
        """``bool(self.verification_commands())``, known at the first command (what validation asks)."""
        return next(self._verification_commands(), None) is not None

    def _verification_commands(self) -> Iterator[str]:
        body = self.section("Test Strategy") or ""
        # The heading starts with "###": the case-insensitive search (no literal prefix for the
        # regex engine to jump by) starts at the first one, not at the top of the section.
        first = body.find("###")
        match = _VERIFY_HEADING.search(body, first) if first != -1 else None
        if not match:
            return
        # The match ends at a line break (or the end), so the next line starting "###" and a space
        # has a line break before it at or after that offset: a search for "\n###" (a literal the
        # regex engine jumps by, where "^###" is tried at every offset) finds it.
        nxt = _SUBHEADING_AFTER_BREAK.search(body, match.end())
        block = body[match.end() : nxt.start() + 1 if nxt else len(body)]
        for line in block.splitlines():
            s = line.strip()
            # Stripped, a line is a fence exactly when it starts with ``` or ~~~.
            if s and not s.startswith(("#", "```", "~~~")):
                command = s.lstrip("-*$ ").strip("`")
                if command:
                    yield command


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


# One pass in C finds the lines that matter to sections, by the line break before each (a literal
# first character lets the regex engine jump from one line break to the next): a heading line
# starts with "## " (group 1 is the rest of it); a fence line is optional whitespace (no line
# break) then ``` or ~~~. ``\s`` accepts exactly what ``str.isspace`` does.
_MARKS = re.compile(r"\n(?:## ([^\n]*)|[^\S\n]*(?:```|~~~))")
_FIRST_MARK = re.compile(r"## ([^\n]*)|[^\S\n]*(?:```|~~~)")
_FIRST_HEADING = re.compile(r"## ([^\n]*)")


# A named tuple's own ``__new__`` is a Python function around this call: a fifth of the split.
_new_tuple = tuple.__new__


def _split_sections(text: str, body_start: int, names: dict[str, str] | None = None) -> tuple[Section, ...]:
    """The body's sections; given ``names`` (empty), it is filled in as ``Ticket._section_map``
    (in the split's own pass when the split is the fast one)."""
    if body_start > 0 and text[body_start - 1 : body_start] == "\n":  # parse_ticket's case: a line start
        fast = _split_at_headings(text, body_start, names)
        if fast is not None:
            return fast
    sections = _split_by_marks(text, body_start)
    if names is not None:
        _fill_section_names(names, sections)
    return sections


def _fill_section_names(names: dict[str, str], sections: Iterable[Section]) -> None:
    # The first section of a name wins, as ``Ticket.section`` promises.
    for sec in sections:
        names.setdefault(sec.heading.strip().lower(), sec.body)


def _fence_lines(text: str, body_start: int) -> list[int]:
    """Offsets of the fence lines from ``body_start`` (a line start), in order: lines that are
    optional whitespace (no line break) then ``` or ~~~, as ``_MARKS`` finds them.

    A ticket has a few fence markers, or none: ``str.find`` goes from one to the next, where the
    regex looks at every line."""
    found: list[int] = []
    for marker in ("```", "~~~"):
        if marker[0] not in text:  # one character is a quick scan; most tickets have no "~" at all
            continue
        at = text.find(marker, body_start)
        while at != -1:
            # text[body_start - 1] is a line break: the search always finds one.
            line = text.rfind("\n", body_start - 1, at) + 1
            # Between the line start and the marker there is no line break: whitespace there is
            # what ``[^\S\n]*`` accepts. A second marker on a line has the first one before it.
            if line == at or text[line:at].isspace():
                found.append(line)
            at = text.find(marker, at + 3)
    found.sort()
    return found


def _split_at_headings(text: str, body_start: int, names: dict[str, str] | None = None) -> tuple[Section, ...] | None:
    """``_split_by_marks`` for a body starting at a line start, or None when a fence may hide a
    heading: the sections then need the line-by-line walk.

    Given ``names`` (empty), it also fills in what ``Ticket._section_map`` would build from the
    sections, in the same pass: a second loop over them cost about as much as this one's own work.

    With no "\n## " between an opening fence line and its closing one (nor after an unclosed one),
    every "\n## " starts a section: one ``str.split`` in C cuts the body into them, and the loop
    below does per section only what building it needs (a tenth of a scan went to the walk)."""
    fences = _fence_lines(text, body_start)
    for i in range(0, len(fences), 2):
        if text.find("\n## ", fences[i], fences[i + 1] if i + 1 < len(fences) else len(text)) != -1:
            return None
    parts = text[body_start - 1 :].split("\n## ")
    sections: list[Section] = []
    # ``at``: offset of the line break before each heading ("\n## " is 4 characters; the heading
    # line starts one after it).
    at = body_start - 1 + len(parts[0])
    last = len(parts) - 1
    for i in range(1, len(parts)):
        part = parts[i]
        start = at + 1
        at = start + 3 + len(part)
        heading, _, body = part.partition("\n")
        # The body ends at the next heading's line start (the line break before it is stripped
        # with the others) or at the end of the text.
        end = at + 1 if i < last else at
        heading = heading.strip()
        body = body.strip("\n")
        if names is not None:
            names.setdefault(heading.lower(), body)  # the heading is stripped already
        sections.append(_new_tuple(Section, (heading, body, start, end)))
    return tuple(sections)


def _split_by_marks(text: str, body_start: int) -> tuple[Section, ...]:
    sections: list[Section] = []
    in_fence = False
    size = len(text)
    first: re.Match[str] | None = None
    if body_start > 0 and text[body_start - 1 : body_start] == "\n":  # parse_ticket's case: a line start
        marks = _MARKS.finditer(text, body_start - 1)
    else:
        # The first line has no line break before it inside the search. At the very start it
        # may be a heading or a fence; in mid-line (no caller does that) only a heading counts.
        marks = _MARKS.finditer(text, body_start)
        first = (_FIRST_MARK if body_start == 0 else _FIRST_HEADING).match(text, body_start)
    # One pass: a section ends where the next heading starts, so each is built when the next one
    # is found (and the last at the end).
    heading: str | None = None
    start = body_from = 0
    for match in itertools.chain((first,) if first is not None else (), marks):
        found = match.group(1)
        if found is None:
            in_fence = not in_fence
        elif not in_fence:
            line_start = match.start() if match is first else match.start() + 1
            if heading is not None:
                # Built here from offsets into the text: nothing for validation to check.
                body = text[body_from:line_start].strip("\n")
                sections.append(_new_tuple(Section, (heading, body, start, line_start)))
            heading, start, body_from = found.strip(), line_start, match.end() + 1
    if heading is not None:
        sections.append(_new_tuple(Section, (heading, text[body_from:size].strip("\n"), start, size)))
    return tuple(sections)


def _front_close(text: str) -> tuple[int, int] | None:
    """The first line after the opening one that is "---" and spaces or tabs, in ``text`` (which
    starts with "---\n" and has LF line ends only): (line start, line end), or None.

    ``str.find`` goes from one "\n---" to the next; the regex this replaced (``^---[ \t]*$``,
    kept in tests/test_scan_equivalence.py as the oracle) tried every offset, a tenth of a parse."""
    at = 3  # text[3] is the line break before offset 4
    while (at := text.find("\n---", at)) != -1:
        start = at + 1
        end = text.find("\n", start + 3)
        if end == -1:
            end = len(text)
        if not text[start + 3 : end].strip(" \t"):
            return start, end
        at = start
    return None


def parse_ticket(raw: bytes, rel_path: str, state_dir: str = "pending", *, hashed: bool = True) -> Ticket:
    """Parse one ticket's bytes; raise TicketError(path, reason) if it cannot be used.

    ``hashed=False`` leaves ``content_hash`` empty, for a caller that lets the ticket go without
    comparing it (``triage.triage_backlog``): hashing every byte of the file is work it would
    throw away (2 us of a 2 KB ticket's 80 us parse and triage here, with the CPU's SHA
    instructions; without them, as under valgrind, an eighth of all the instructions).
    """
    if not raw or raw.isspace():  # what ``not raw.strip()`` says, without copying the file
        raise TicketError(rel_path, "empty file")
    if len(raw) > MAX_TICKET_BYTES:
        raise TicketError(rel_path, f"file too large ({len(raw)} bytes, limit {MAX_TICKET_BYTES})")
    # The bytes are looked for by value (``0 in raw``): ``bytes.__contains__`` tries its operand as
    # an int first, and a one-byte ``bytes`` operand fails that by raising and clearing a TypeError
    # inside, five times the cost of the search itself.
    if 0x00 in raw:
        raise TicketError(rel_path, "binary file (contains NUL bytes)")
    decoded, bom, utf8 = _decode(raw)
    if 0x0D in raw:  # "\r"
        crlf = "\r\n" in decoded
        text = decoded.replace("\r\n", "\n").replace("\r", "\n")
    else:
        # Only the byte 0x0D decodes to "\r" (in UTF-8 and in Latin-1): a file without one, nearly
        # every ticket, needs neither the search for "\r\n" nor the two passes that replace nothing.
        crlf, text = False, decoded
    if not text.startswith("---\n"):
        raise TicketError(rel_path, "no YAML front matter (the file must start with a '---' line)")
    close = _front_close(text)
    if close is None:
        raise TicketError(rel_path, "front matter is not closed by a '---' line")
    yaml_text = text[4 : close[0]]
    front_end = close[1]
    if front_end < len(text) and text[front_end] == "\n":
        front_end += 1
    try:
        simple = parse_simple(yaml_text, json_safe=True)  # the common flat case, without a YAML parser
        front = simple if simple is not None else yaml.load(yaml_text, Loader=_YAML_LOADER) if yaml_text.strip() else {}
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
    if simple is None:  # the fast path's values are flat and already JSON-safe
        try:
            front = _json_safe(front)
        except _FrontTooBig as exc:
            raise TicketError(rel_path, f"front matter refused: {exc}") from None
    raw_id = front.get("id")
    ticket_id = str(raw_id).strip() if isinstance(raw_id, str | int) else ""
    if ticket_id:
        from_name = False
    else:
        file_name = rel_path.rsplit("/", 1)[-1]
        m = _ID_IN_NAME.match(file_name)
        ticket_id, from_name = (m.group(1) if m else file_name.removesuffix(".md")), True
    names: dict[str, str] = {}
    sections = _split_sections(text, front_end, names)
    # Every field is built above with its declared type; validating would copy the text again.
    ticket = Ticket.built(
        {
            "path": rel_path,
            "state_dir": state_dir,
            "id": ticket_id,
            "id_from_file_name": from_name,
            "front": front,
            "text": text,
            "front_end": front_end,
            "sections": sections,
            "content_hash": hashlib.sha256(raw).hexdigest() if hashed else "",
            "crlf": crlf,
            "bom": bom,
            "utf8": utf8,
        }
    )
    ticket.__dict__["_section_map"] = names  # built by the split: the cached property's slot
    return ticket


@dataclass
class BacklogScan:
    tickets: list[Ticket] = field(default_factory=list)
    problems: list[TicketError] = field(default_factory=list)

    @property
    def pending(self) -> list[Ticket]:
        return [t for t in self.tickets if t.is_pending]

    def by_id(self) -> dict[str, Ticket]:
        return {t.id: t for t in self.tickets}


def iter_ticket_files(backlog_dir: Path) -> Iterable[tuple[str, Path]]:
    for state_dir, entry in _ticket_entries(backlog_dir):
        yield state_dir, Path(entry.path)


def _ticket_entries(backlog_dir: Path) -> Iterable[tuple[str, os.DirEntry[str]]]:
    """(state dir, entry) of every ``*.md`` in pending/ then completed/, by name.

    ``os.scandir`` gives the names and whether each is a symlink in one directory read, where
    a ``Path`` per file costs a stat and string work per ticket.
    """
    for state_dir in ("pending", "completed"):
        try:
            with os.scandir(backlog_dir / state_dir) as it:
                entries = sorted((e for e in it if e.name.endswith(".md")), key=lambda e: e.name)
        except (FileNotFoundError, NotADirectoryError):
            continue
        for entry in entries:
            yield state_dir, entry


def _read_bytes(path: str) -> bytes:
    """A file's bytes, read with the os calls alone: ``open()`` builds a file object and a buffer
    around the descriptor, a third of the time of reading a 3 KB ticket."""
    fd = os.open(path, os.O_RDONLY)
    try:
        want = os.fstat(fd).st_size + 1  # one byte more than its size: a read that fills it was not the end
        data = os.read(fd, want)
        if len(data) < want:
            return data
        parts = [data]
        while more := os.read(fd, 1 << 16):  # the file grew while it was read
            parts.append(more)
        return b"".join(parts)
    finally:
        os.close(fd)


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """The cyclic garbage collector off for a loop that builds many long-lived, acyclic objects.

    A scan keeps every ticket (a model, its dicts, strings and sections): each collection the
    allocations trigger walks all of those again, and the older generations' passes grow with the
    backlog, about a third of a 10,000-ticket scan's CPU and more at 100,000. Nothing the scan
    builds needs the collector (no reference cycles; reference counting frees the rest), and the
    previous state comes back on the way out, exceptions included.

    On a normal exit what is alive is also frozen (``gc.freeze``): otherwise the first collection
    after the pause walks everything it built at once (measured: 0.07 s after a 10,000-ticket scan,
    as much again after its triage) and moves it up a generation to be walked again later. Frozen
    objects are still freed by reference counting when the caller drops them; ``gc.unfreeze``
    (the end of a reconcile does it) gives them back to the collector.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()
    if was_enabled:
        gc.freeze()


def scan_backlog(root: Path, data_dir: str = "backlog/data") -> BacklogScan:
    """Read every ticket; bad files and duplicate ids become problems, the rest tickets."""
    with gc_paused():
        return _scan(root, data_dir)


def _scan(root: Path, data_dir: str) -> BacklogScan:
    scan = BacklogScan()
    for item in iter_scan(root, data_dir):
        if isinstance(item, TicketError):
            scan.problems.append(item)
        else:
            scan.tickets.append(item)
    return scan


def iter_scan(root: Path, data_dir: str = "backlog/data", *, hashed: bool = True) -> Iterator[Ticket | TicketError]:
    """Every ticket file in ``scan_backlog``'s order, as its ticket or as the problem that skips it.

    Nothing is kept but the ids seen (a later ticket with an id already seen is a problem). A
    caller that needs each ticket once (``triage.triage_backlog``) lets it go: memory stays flat,
    and each ticket is read while it is still in the CPU's cache, which at 10,000 tickets made
    triage a fifth faster than walking a kept list of them afterwards. ``hashed`` is passed on to
    ``parse_ticket``.
    """
    seen: dict[str, str] = {}
    root_real = root.resolve()
    prefixes: dict[str, str] = {}
    inside: dict[str, bool] = {}
    for state_dir, entry in _ticket_entries(root / data_dir):
        prefix = prefixes.get(state_dir)
        if prefix is None:
            prefix = prefixes[state_dir] = (root / data_dir / state_dir).relative_to(root).as_posix()
        rel = f"{prefix}/{entry.name}"
        folder_inside = inside.get(state_dir)
        if folder_inside is None:
            folder_inside = inside[state_dir] = root_real in (root / data_dir / state_dir).resolve().parents
        try:
            # Every file is checked, not only symlinks: the folder itself (or one above it) may be a
            # link out; it is resolved once per folder, and a file resolved on its own only if it is a link.
            if not folder_inside or (entry.is_symlink() and root_real not in Path(entry.path).resolve().parents):
                raise TicketError(rel, "symlink pointing outside the repository refused")
            raw = _read_bytes(entry.path)
        except OSError as exc:
            yield TicketError(rel, f"cannot read: {exc.strerror or exc}")
            continue
        except TicketError as exc:
            yield exc
            continue
        try:
            ticket = parse_ticket(raw, rel, state_dir, hashed=hashed)
        except TicketError as exc:
            yield exc
            continue
        if ticket.id in seen:
            yield TicketError(rel, f"duplicate id {ticket.id} (first seen in {seen[ticket.id]}); skipped")
            continue
        seen[ticket.id] = rel
        yield ticket
