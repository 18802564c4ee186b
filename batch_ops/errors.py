"""The project's own error types.

Every reader raises one of these with the file, the place and the reason, so a command can
report the problem in one line and carry on (or exit non-zero) without a traceback.
"""

from __future__ import annotations


class BatchOpsError(Exception):
    """Base class: a problem the user can act on, rendered as one line."""

    exit_code = 1


class ConfigError(BatchOpsError):
    """The configuration is invalid; ``problems`` holds one line per key path."""

    def __init__(self, path: str, problems: list[str]) -> None:
        self.path = path
        self.problems = problems
        super().__init__(f"{path}: invalid configuration: " + "; ".join(problems))


class TicketError(BatchOpsError):
    """A ticket file that cannot be read or parsed."""

    def __init__(self, path: str, reason: str) -> None:
        self.path = path
        self.reason = reason
        super().__init__(f"{path}: {reason}")


class StateError(BatchOpsError):
    """Queue, ledger or payload state that cannot be used as it is."""


class PathError(BatchOpsError):
    """A path that would leave the directory it belongs to."""


class PolicyRefusal(BatchOpsError):
    """The batch policy forbids what was asked (disabled, ineligible phase, budget)."""

    exit_code = 2
