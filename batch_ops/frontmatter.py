"""A fast path for the front matter most tickets have, giving exactly what ``yaml.safe_load`` gives.

Ticket front matter is nearly always flat: ``key: value`` lines whose values are plain words,
simple quoted strings, integers, dates or flow lists of those. ``parse_simple`` reads that subset
directly and returns None for anything else (nested blocks, comments after values, anchors,
escapes, odd numbers, YAML's yes/no/on/off words...), and the caller then uses the YAML parser
itself. Each accepted form resolves to the same value YAML 1.1 gives it: tests/test_frontmatter.py
checks that on the sample backlog, on generated ones and on a list of awkward cases.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")
# Plain scalars that resolve to a string: start with a letter, no YAML indicator characters.
_WORD = re.compile(r"[A-Za-z][A-Za-z0-9_./()@+-]*(?: [A-Za-z0-9_./()@+-]+)*")
_ITEM = re.compile(r"[A-Za-z][A-Za-z0-9_./()@+-]*")
# Bounded, so a huge number goes to the YAML path and its checks (backlog rejects non-finite ones).
_INT = re.compile(r"-?[1-9][0-9]{0,17}|0")
_FLOAT = re.compile(r"-?[0-9]{1,15}\.[0-9]{1,15}")
_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
# Words YAML 1.1 resolves to booleans or null, in the spellings its resolver knows.
_SPECIAL = frozenset(
    w for base in ("yes", "no", "true", "false", "on", "off", "null") for w in (base, base.title(), base.upper())
)


def _scalar(text: str, item: bool = False, json_safe: bool = False) -> tuple[bool, Any]:
    """(accepted, value) for one plain or quoted scalar."""
    first = text[:1]
    if first == '"' or first == "'":
        # No other form starts with a quote: a quoted title (unique to its ticket, so its line is
        # never found in the cache) comes straight here, past four regexes that cannot match.
        if not item and len(text) >= 2 and text[-1] == first:
            inner = text[1:-1]
            if first not in inner and "\\" not in inner and inner.isprintable() and inner == inner.strip():
                return True, inner
        return False, None
    if (item and _ITEM.fullmatch(text)) or (not item and _WORD.fullmatch(text)):
        if text in _SPECIAL or (len(text) == 1 and text in "yYnN"):
            return False, None
        return True, text
    if _INT.fullmatch(text):
        return True, int(text)
    if _FLOAT.fullmatch(text):
        return True, float(text)
    if _DATE.fullmatch(text):
        try:
            day = dt.date.fromisoformat(text)
        except ValueError:
            return False, None
        return True, day.isoformat() if json_safe else day
    return False, None


# Most front-matter lines repeat across a backlog ("status: pending", "blockers: []", dates, tags,
# sizes): the parse of a line is remembered, so such a line costs one dict lookup. Only immutable
# results are kept (a flow list as a tuple, copied out as a new list each time); bounded, so a
# backlog of unique lines cannot grow the caches without end.
_CACHE_LIMIT = 50_000
_KEY_OK: dict[str, bool] = {}
# Per json_safe: line -> (key, value), or None for a line the fast path declines.
_LINES: tuple[dict[str, tuple[str, Any] | None], dict[str, tuple[str, Any] | None]] = ({}, {})
_MISS = ("", None)  # a sentinel no line maps to (a key is never empty)


def _key_ok(key: str) -> bool:
    ok = _KEY_OK.get(key)
    if ok is None:
        ok = _KEY.fullmatch(key) is not None and key not in _SPECIAL and not (len(key) == 1 and key in "yYnN")
        if len(_KEY_OK) < _CACHE_LIMIT:
            _KEY_OK[key] = ok
    return ok


def _value(value: str, json_safe: bool) -> tuple[bool, Any]:
    """(accepted, value) of a non-empty value after ``key: ``; a flow list comes back as a tuple."""
    if value != value.strip():
        return False, None
    if value.startswith("[") and value.endswith("]"):
        inner = value[1:-1]
        if not inner:
            return True, ()
        items: list[Any] = []
        for part in inner.split(", "):
            ok, item = _scalar(part, item=True, json_safe=json_safe)
            if not ok:
                return False, None
            items.append(item)
        return True, tuple(items)
    return _scalar(value, json_safe=json_safe)


def _line(line: str, json_safe: bool) -> tuple[str, Any] | None:
    """(key, value) of one non-empty line, or None if the fast path declines it."""
    # A line is ``key:`` then nothing or a space and the value; a key has no colon, so the first
    # one ends it.
    key, colon, rest = line.partition(":")
    if not colon or not _key_ok(key):
        return None
    if not rest or rest == " ":
        return key, None
    if rest[0] != " ":
        return None
    ok, parsed = _value(rest[1:], json_safe)
    return (key, parsed) if ok else None


def parse_simple(yaml_text: str, *, json_safe: bool = False) -> dict[str, Any] | None:
    """The mapping ``yaml.safe_load(yaml_text)`` would return, or None if the text is not simple.

    With ``json_safe`` dates come back as ISO strings, as ``backlog._json_safe`` would make them.
    """
    out: dict[str, Any] = {}
    cache = _LINES[json_safe]
    for line in yaml_text.split("\n"):
        if not line:
            continue
        hit = cache.get(line, _MISS)
        if hit is _MISS:
            hit = _line(line, json_safe)
            if len(cache) < _CACHE_LIMIT:
                cache[line] = hit
        if hit is None:
            return None
        key, parsed = hit
        out[key] = list(parsed) if type(parsed) is tuple else parsed
    return out
