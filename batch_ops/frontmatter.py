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

_LINE = re.compile(r"([A-Za-z_][A-Za-z0-9_-]*):(?: (.*))?")
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
    if not item and len(text) >= 2 and text[0] == text[-1] and text[0] in "\"'":
        inner = text[1:-1]
        if text[0] not in inner and "\\" not in inner and inner.isprintable() and inner == inner.strip():
            return True, inner
    return False, None


def parse_simple(yaml_text: str, *, json_safe: bool = False) -> dict[str, Any] | None:
    """The mapping ``yaml.safe_load(yaml_text)`` would return, or None if the text is not simple.

    With ``json_safe`` dates come back as ISO strings, as ``backlog._json_safe`` would make them.
    """
    out: dict[str, Any] = {}
    for line in yaml_text.split("\n"):
        if not line:
            continue
        match = _LINE.fullmatch(line)
        if match is None:
            return None
        key, value = match.group(1), match.group(2)
        if key in _SPECIAL or (len(key) == 1 and key in "yYnN"):
            return None
        if value is None or value == "":
            out[key] = None
            continue
        if value != value.strip():
            return None
        if value.startswith("[") and value.endswith("]"):
            inner = value[1:-1]
            if not inner:
                out[key] = []
                continue
            items: list[Any] = []
            for part in inner.split(", "):
                ok, item = _scalar(part, item=True, json_safe=json_safe)
                if not ok:
                    return None
                items.append(item)
            out[key] = items
            continue
        ok, scalar = _scalar(value, json_safe=json_safe)
        if not ok:
            return None
        out[key] = scalar
    return out
