"""Deterministic, zero-token validation of a ticket against ``ticketValidation``."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict

from batch_ops.backlog import Ticket, built_model
from batch_ops.config import TicketValidation

Severity = Literal["error", "warning"]


class Finding(BaseModel):
    model_config = ConfigDict(frozen=True)

    code: str
    severity: Severity
    message: str


_REQUIRED_FRONT = ("title", "status", "priority")
_PRIORITIES = ("low", "medium", "high", "critical")
_STATUSES = ("pending", "in_progress", "completed", "split")


def _empty(body: str | None) -> bool:
    # What ``not body.strip()`` says, without copying the section to find out.
    return not body or body.isspace()


def validate_ticket(ticket: Ticket, rules: TicketValidation) -> list[Finding]:
    """Every finding carries a reason a maintainer can act on."""
    found: list[Finding] = []

    def add(code: str, message: str, severity: Severity = "error") -> None:
        # Built, not validated: the arguments are this function's own strings and severities.
        found.append(built_model(Finding, {"code": code, "severity": severity, "message": message}))

    if ticket.id_from_file_name:
        add("front.id", f"front matter has no `id`; using {ticket.id!r} from the file name", "warning")
    for key in _REQUIRED_FRONT:
        if not str(ticket.front.get(key) or "").strip():
            add(f"front.{key}", f"front matter has no `{key}`")
    priority, status = ticket.priority, ticket.status
    if priority and priority not in _PRIORITIES:
        add("front.priority", f"priority {priority!r} is not one of {', '.join(_PRIORITIES)}", "warning")
    if status not in _STATUSES:
        add("front.status", f"status {status!r} is not one of {', '.join(_STATUSES)}", "warning")
    if not ticket.utf8:
        add("encoding", "file is not valid UTF-8 (read as Latin-1); it will not be rewritten", "warning")

    if _empty(ticket.section("Description")):
        add("section.description", "`## Description` is missing or empty")
    if _empty(ticket.section("Context")):
        add("section.context", "`## Context` is missing or empty", "warning")

    criteria = ticket.acceptance_criteria()
    if len(criteria) < rules.min_acceptance_criteria:
        add(
            "section.acceptance_criteria",
            f"{len(criteria)} acceptance criteria (`- [ ] AC-n: ...`); "
            f"at least {rules.min_acceptance_criteria} required",
        )
    if rules.require_test_strategy and _empty(ticket.section("Test Strategy")):
        add("section.test_strategy", "`## Test Strategy` is missing or empty")
    if rules.require_verification_commands and not ticket.has_verification_commands():
        add(
            "section.verification_commands",
            "no commands under `### Verification Commands` in the Test Strategy",
        )
    if rules.require_affected_files and not ticket.affected_files():
        add("section.affected_files", "`## Affected Files` has no table rows")
    if rules.require_dependency_check and ticket.section("Dependencies") is None:
        add("section.dependencies", "`## Dependencies` is missing (write 'None' if there are none)")
    return found


def is_complete(findings: list[Finding]) -> bool:
    return not any(f.severity == "error" for f in findings)
