"""Text that lands in Markdown (reports, issues, summaries) comes from tickets and models: untrusted.

These helpers keep such text from breaking the document's structure or pinging people.
"""

from __future__ import annotations

import html
import re

_MENTION = re.compile(r"(?<![\w`])@(?=[A-Za-z0-9])")
_WORKFLOW_CMD = re.compile(r"^(\s*)::", re.MULTILINE)


def inline(text: str, *, limit: int = 500) -> str:
    """One line of plain text, safe inside a paragraph or a table cell."""
    flat = " ".join(str(text).split())
    if len(flat) > limit:
        flat = flat[: limit - 1] + "…"
    flat = html.escape(flat, quote=False)
    flat = flat.replace("|", "\\|").replace("`", "'")
    flat = _MENTION.sub("@\u200b", flat)
    # A line starting with '#' or '>' or '-' could become a heading, quote or list inside a cell.
    if flat[:1] in "#>-+=*":
        flat = "\\" + flat
    return flat


def cell(text: str, *, limit: int = 300) -> str:
    return inline(text, limit=limit) or " "


def neutralise_workflow_commands(text: str) -> str:
    """Stop ``::set-output``/``::add-mask::`` style sequences in text we print from acting on a runner."""
    return _WORKFLOW_CMD.sub(lambda m: m.group(1) + ":\u200b:", text)
