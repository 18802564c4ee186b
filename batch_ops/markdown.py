"""Text that lands in Markdown (reports, issues, summaries) comes from tickets and models: untrusted.

These helpers keep such text from breaking the document's structure, pinging people, linking
elsewhere, or acting on a GitHub Actions runner when it is printed to a log:

* ``inline`` / ``cell``: one line, safe inside a paragraph, a list item, a heading or a table cell.
* ``code``: a code span that cannot be closed early.
* ``neutralise_workflow_commands``: for anything printed to stdout/stderr on a runner.
"""

from __future__ import annotations

import html
import re

_MENTION = re.compile(r"(?<![\w`])@(?=[A-Za-z0-9])")
# A bare "#123" (or "GH-123") becomes a cross-reference on GitHub: it would ping that issue's timeline.
_ISSUE_REF = re.compile(r"(?<![\w&])(#|GH-)(?=\d)", re.IGNORECASE)
# The runner reads its commands from any line (split at \r or \n) that starts with "::" or "##[".
_WORKFLOW_CMD = re.compile(r"(^|[\r\n])([^\S\r\n]*)(::|##\[)")
# C0/C1 controls (ANSI escapes included) and the bidirectional overrides of "Trojan source".
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
_LINE_START_ORDERED = re.compile(r"^(\d+)([.)])")


def _one_line(text: str) -> str:
    return " ".join(_CONTROL.sub("\ufffd", str(text)).split())


def inline(text: str, *, limit: int = 500) -> str:
    """One line of plain text, safe inside a paragraph, heading, list item or table cell."""
    flat = _one_line(text)
    if len(flat) > limit:
        flat = flat[: limit - 1] + "…"
    flat = flat.replace("\\", "\\\\")  # first: a "\|" in the input must not turn into an escaped pipe
    flat = html.escape(flat, quote=False)  # no HTML tags or comments, no <autolinks>
    flat = flat.replace("|", "\\|").replace("`", "'")
    flat = flat.replace("[", "\\[").replace("]", "\\]")  # no links, no images (a tracking pixel is a link)
    flat = _MENTION.sub("@\u200b", flat)
    flat = _ISSUE_REF.sub(lambda m: m.group(1) + "\u200b", flat)
    # At the start of a line, these would make a heading, quote, list, rule or fence.
    if flat[:1] and flat[0] in "#>-+=*~_:":
        flat = "\\" + flat
    flat = _LINE_START_ORDERED.sub(r"\1\\\2", flat)
    return flat


def cell(text: str, *, limit: int = 300) -> str:
    return inline(text, limit=limit) or " "


def code(text: str, *, limit: int = 300) -> str:
    """A one-line code span whose fence is longer than any run of backticks inside it."""
    flat = _one_line(text)
    if len(flat) > limit:
        flat = flat[: limit - 1] + "…"
    longest = max((len(m) for m in re.findall(r"`+", flat)), default=0)
    fence = "`" * (longest + 1)
    pad = " " if flat.startswith("`") or flat.endswith("`") or not flat else ""
    # Inside a code span Markdown escapes do nothing, but a table still splits at "|".
    return f"{fence}{pad}{flat}{pad}{fence}".replace("|", "\\|")


def neutralise_workflow_commands(text: str) -> str:
    """Stop ``::set-output``/``::add-mask::``/``##[...]`` sequences in text we print from acting on a runner."""
    text = _CONTROL.sub("\ufffd", text)
    return _WORKFLOW_CMD.sub(lambda m: m.group(1) + m.group(2) + m.group(3)[0] + "\u200b" + m.group(3)[1:], text)
