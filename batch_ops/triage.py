"""Triage: how much LLM a pending ticket needs, decided from its structure with zero tokens.

The rules (also in the README):

* Strong signals, any one of which makes a ticket ``requires-frontier``: priority ``critical``;
  a BUG severity of ``critical``; a tag among ``security``, ``architecture``, ``migration``,
  ``compliance``.
* Moderate signals, two of which make it ``requires-frontier``: priority ``high``; risk words
  (whole words, case-insensitive) in the title, Description or Context only; six or more
  affected files; three or more ``depends_on``/``blockers``; ``estimated_tokens`` of 50,000 or
  more; a body over 8,000 characters.
* Otherwise ``cheap-llm`` if the deterministic validation found an error (an incomplete ticket
  needs an LLM to help) or one moderate signal is present, and ``no-llm`` if it is complete and
  has no signal: the checks alone settle it.

Boilerplate never moves a ticket: front matter values such as ``scope_boundary`` and the History,
Affected Files or Test Strategy sections are not searched for risk words.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

from pydantic import BaseModel

from batch_ops.backlog import Ticket, built_model, gc_paused, iter_scan
from batch_ops.checks import Finding, validate_ticket
from batch_ops.config import TicketValidation
from batch_ops.errors import TicketError

Bucket = Literal["no-llm", "cheap-llm", "requires-frontier"]
BUCKETS: tuple[Bucket, ...] = ("no-llm", "cheap-llm", "requires-frontier")

RISK_WORDS = (
    "security", "auth", "authentication", "authorization", "oauth", "sso", "password", "passwords",
    "credential", "credentials", "secret", "secrets", "encryption", "encrypt", "payment", "payments",
    "billing", "refund", "migration", "migrate", "schema", "gdpr", "pii", "privacy", "vulnerability",
    "xss", "csrf", "injection", "permission", "permissions", "race", "concurrency", "deadlock",
    "outage", "data-loss",
)  # fmt: skip
_RISK_RE = re.compile(
    r"(?<![\w/.-])(" + "|".join(re.escape(w) for w in RISK_WORDS) + r")(?![\w/.-])", re.IGNORECASE
)
_RISK_SET = frozenset(RISK_WORDS)
# A maximal run of word characters, '/', '.' and '-': a risk word matches _RISK_RE exactly when
# such a run is that word (the regex's look-arounds exclude the same characters on both sides).
_TOKEN_RE = re.compile(r"[\w/.-]+")
_STRONG_TAGS = frozenset({"security", "architecture", "migration", "compliance"})
_TEXT_SECTIONS = ("Description", "Context")


class TriageResult(BaseModel):
    ticket_id: str
    bucket: Bucket
    reasons: list[str]
    findings: list[Finding]


def _risk_words(ticket: Ticket) -> list[str]:
    # A line break joins the parts: no token spans two of them.
    return risk_tokens("\n".join([ticket.title] + [ticket.section(name) or "" for name in _TEXT_SECTIONS]))


# For ASCII text (nearly every ticket): one ``bytes.translate`` lower-cases and blanks every byte a
# token cannot hold (``_TOKEN_RE``'s class is ``[A-Za-z0-9_/.-]`` on ASCII), so a plain split gives
# the tokens, about half the cost of the regex over the same text.
_TOKEN_BYTES = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_/.-")
_ASCII_TOKENS = bytes(
    (c + 32 if 65 <= c <= 90 else c) if c in _TOKEN_BYTES else 32 for c in range(256)
)


def _by_first_letter(words: tuple[str, ...]) -> bytes:
    """A regex alternation of ``words`` (ASCII) with one branch per first letter: the engine
    rejects a branch on its first character, so each try costs one test per letter rather than
    one per word."""
    rests: dict[str, list[str]] = {}
    for word in sorted(set(words)):
        rests.setdefault(word[0], []).append(re.escape(word[1:]))
    return "|".join(f"{re.escape(first)}(?:{'|'.join(alts)})" for first, alts in rests.items()).encode("ascii")


# In the translated bytes (below) a token is a maximal run of non-spaces: with a space on each side
# of the text, a risk word is a token exactly where it has a space before it and one after it (the
# look-ahead leaves that space to start the next match). A search that jumps from space to space
# costs less than splitting out and hashing every token (half of them in a ticket's prose).
_RISK_PADDED = re.compile(b" (" + _by_first_letter(RISK_WORDS) + b")(?= )")


def risk_tokens(text: str) -> list[str]:
    """The risk words ``_RISK_RE`` finds in ``text``, lower-cased, sorted, each once."""
    if text.isascii():
        found = _RISK_PADDED.findall(b" %b " % text.encode("ascii").translate(_ASCII_TOKENS))
        return sorted({w.decode("ascii") for w in found})
    return sorted(_RISK_SET.intersection(_TOKEN_RE.findall(text.lower())))


def _strong_tags(ticket: Ticket) -> frozenset[str]:
    """The strong tags among ``ticket.list_field("tags")``, lower-cased."""
    value = ticket.front.get("tags")
    if isinstance(value, list):
        # list_field's filter only drops None and blank items, which are never strong tags: the
        # lower-cased ``str`` of every item, mapped in C, meets the set without a comprehension.
        return _STRONG_TAGS.intersection(map(str.lower, map(str, value)))
    return _STRONG_TAGS.intersection([t.lower() for t in ticket.list_field("tags")])


def triage_ticket(ticket: Ticket, rules: TicketValidation) -> TriageResult:
    findings = validate_ticket(ticket, rules)
    strong: list[str] = []
    moderate: list[str] = []
    priority = ticket.priority
    if priority == "critical":
        strong.append("priority is critical")
    if str(ticket.front.get("severity") or "").lower() == "critical":
        strong.append("severity is critical")
    tags = _strong_tags(ticket)
    if tags:
        strong.append(f"tagged {', '.join(sorted(tags))}")
    if priority == "high":
        moderate.append("priority is high")
    risk = _risk_words(ticket)
    if risk:
        moderate.append(f"risk words in title/description/context: {', '.join(risk)}")
    n_files = len(ticket.affected_files())
    if n_files >= 6:
        moderate.append(f"{n_files} affected files")
    n_deps = len(ticket.list_field("depends_on")) + len(ticket.list_field("blockers"))
    if n_deps >= 3:
        moderate.append(f"{n_deps} dependencies/blockers")
    est = ticket.number_field("estimated_tokens")
    if est is not None and est >= 50_000:
        moderate.append(f"estimated_tokens {int(est)}")
    body_len = len(ticket.text) - ticket.front_end
    if body_len > 8_000:
        moderate.append(f"body is {body_len} characters")

    bucket: Bucket
    if strong or len(moderate) >= 2:
        bucket = "requires-frontier"
        reasons = strong + moderate
    else:
        # The ticket is complete (``is_complete``) exactly when no finding is an error.
        errors = [f.message for f in findings if f.severity == "error"]
        if errors or moderate:
            bucket = "cheap-llm"
            reasons = moderate + errors
        else:
            bucket = "no-llm"
            reasons = ["complete and simple: the deterministic checks settle it"]
    # Built, not validated: every value is of its declared type and the lists are this call's own.
    values = {"ticket_id": ticket.id, "bucket": bucket, "reasons": reasons, "findings": findings}
    return built_model(TriageResult, values)


def triage(tickets: list[Ticket], rules: TicketValidation) -> dict[str, TriageResult]:
    # Results for the whole backlog are kept: the collector would only walk them again and again.
    with gc_paused():
        return {t.id: triage_ticket(t, rules) for t in tickets}


def triage_backlog(
    root: Path, data_dir: str, rules: TicketValidation
) -> tuple[dict[str, TriageResult], list[TicketError], int]:
    """``triage(scan_backlog(...).pending, rules)`` without keeping the tickets: (results, the scan's
    problems, the number of tickets read). For callers that need the triage alone (``batch-ops
    triage``): each ticket is triaged as soon as it is read and then let go (``iter_scan``), so its
    content hash, which triage never reads, is not computed."""
    results: dict[str, TriageResult] = {}
    problems: list[TicketError] = []
    tickets = 0
    with gc_paused():
        for item in iter_scan(root, data_dir, hashed=False):
            if isinstance(item, TicketError):
                problems.append(item)
                continue
            tickets += 1
            if item.is_pending:
                results[item.id] = triage_ticket(item, rules)
    return results, problems, tickets


def buckets(results: dict[str, TriageResult]) -> dict[Bucket, list[str]]:
    out: dict[Bucket, list[str]] = {b: [] for b in BUCKETS}
    for tid, res in results.items():
        out[res.bucket].append(tid)
    return {b: sorted(ids) for b, ids in out.items()}
