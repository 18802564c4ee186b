"""Alert kinds and what each issue tells the operator; no GitHub client here (cheap to import)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from batch_ops.errors import BatchOpsError

ALERT_LABEL = "batch-ops-alert"
LABEL_COLOR = "d93f0b"
LABEL_DESCRIPTION = "Raised by batch-ops: something needs an operator"
_MARKER = "<!-- batch-ops-alert-key: {key} -->"
_MARKER_RE = re.compile(r"<!-- batch-ops-alert-key: ([A-Za-z0-9:._/+-]{1,200}) -->")
_BODY_LIMIT = 60_000  # GitHub refuses bodies over 65,536 characters

RESUME_HOWTO = (
    "lift the pause: **Actions → batch-reconcile → Run workflow** with **resume** ticked, or run "
    "`batch-ops resume` locally and push the removal of `.backlog-ops/paused.json`"
)


@dataclass(frozen=True)
class AlertSpec:
    kind: str
    title: str
    what_to_do: str
    # Repeats of this alert add a comment (with the run link) to the open issue.
    comment_on_repeat: bool = True


SPECS: dict[str, AlertSpec] = {
    spec.kind: spec
    for spec in (
        AlertSpec(
            "workflow-failure",
            "batch-ops: the {scope} workflow failed",
            "1. Open the run linked below and read the failing step's log: batch-ops prints a one-line "
            "reason on stderr, and the job summary shows the queue.\n"
            "2. Exit codes: 1 error, 2 refused by the policy, 3 provider outage (queue paused), "
            "4 authentication or billing stop.\n"
            "3. Fix the cause; the next scheduled run tries again by itself. This issue closes itself "
            "after the next successful run of this workflow.",
        ),
        AlertSpec(
            "provider-outage",
            "batch-ops: provider outage, queue paused",
            "1. Check the provider's status page. Nothing is lost meanwhile: batches already submitted "
            "keep running at the provider and their results stay downloadable for 29 days.\n"
            "2. While the queue is paused, scheduled runs submit nothing new.\n"
            f"3. When the provider answers again, {RESUME_HOWTO}.\n"
            "4. This issue closes itself after the next successful run with the queue unpaused.",
        ),
        AlertSpec(
            "auth-billing",
            "batch-ops: Anthropic refused the key or the billing, queue paused",
            "1. Check the `ANTHROPIC_API_KEY` repository secret (Settings → Secrets and variables → "
            "Actions): revoked, expired or mistyped keys end here.\n"
            "2. Check the Anthropic Console: credit balance and spend limits.\n"
            "3. No retries are spent on this: the queue stopped at the first refusal. Once fixed, "
            f"{RESUME_HOWTO}.\n"
            "4. This issue closes itself after the next successful run with the queue unpaused.",
        ),
        AlertSpec(
            "failed-items",
            "batch-ops: requests failed",
            "1. Each failed request is listed with its error. An `invalid_request_error` or an answer "
            "that did not parse means the ticket or the payload needs a fix.\n"
            "2. Fix the ticket: the next scheduled submit enqueues a changed ticket again. For a job that "
            "failed as a whole, fix its payload under `.backlog-ops/payloads/` and run "
            "`batch-ops retry JOB`, then push.\n"
            "3. This issue closes itself once no failed request is outstanding (each one succeeded in a "
            "later job, or its job was retried). Closing it by hand acknowledges these failures; it "
            "opens again only for new ones.",
        ),
        AlertSpec(
            "budget-warning",
            "batch-ops: monthly budget warning ({scope})",
            "1. Month-to-date spend is summed from `.backlog-ops/usage-ledger.jsonl`; the job summary and "
            "`batch-ops status` show the cost by job.\n"
            "2. If this is expected, nothing to do; otherwise reduce the phases in "
            "`llmOps.batchPolicy.eligiblePhases` or raise `llmOps.budget.monthlyUsd`.\n"
            "3. This issue closes itself when spend is back under the threshold (a higher budget) or the "
            "month ends.",
            comment_on_repeat=False,
        ),
        AlertSpec(
            "budget-hard-stop",
            "batch-ops: monthly budget exhausted ({scope})",
            "1. Month-to-date spend reached `llmOps.budget.hardStopRatio` of `monthlyUsd`.\n"
            "2. To stop spending now: disable the batch-submit workflow (Actions → batch-submit → ⋯ → "
            "Disable workflow) or set `llmOps.batchPolicy.enabled` to `false`; or raise the budget.\n"
            "3. This issue closes itself when spend is back under the hard stop (a higher budget) or the "
            "month ends.",
            comment_on_repeat=False,
        ),
    )
}
KINDS = tuple(SPECS)


def alert_key(kind: str, scope: str | None = None) -> str:
    if kind not in SPECS:
        raise BatchOpsError(f"unknown alert kind {kind!r} (known: {', '.join(KINDS)})")
    key = f"{kind}:{scope}" if scope else kind
    safe = re.sub(r"[^A-Za-z0-9:._/+-]+", "-", key)[:200]
    return safe


@dataclass
class Alert:
    """What to say. ``summary`` and ``details`` are Markdown that the caller already made safe."""

    kind: str
    summary: str
    details: str = ""
    scope: str | None = None

    @property
    def key(self) -> str:
        return alert_key(self.kind, self.scope)

    @property
    def spec(self) -> AlertSpec:
        return SPECS[self.kind]

    @property
    def title(self) -> str:
        return self.spec.title.format(scope=self.scope or "batch-ops")


@dataclass(frozen=True)
class Outcome:
    action: Literal["opened", "commented", "closed", "unchanged", "none"]
    key: str
    number: int | None = None
    url: str | None = None

    def describe(self) -> str:
        where = f" #{self.number}" if self.number is not None else ""
        if self.action == "none":
            return f"alert {self.key}: no open issue, nothing to do"
        if self.action == "unchanged":
            return f"alert {self.key}: already open{where}, left as it is"
        return f"alert {self.key}: {self.action}{where}" + (f" {self.url}" if self.url else "")


class GitHubUnavailable(BatchOpsError):
    """GitHub kept failing (5xx, rate limit, network) after the bounded retries."""


class GitHubRefused(BatchOpsError):
    """GitHub refused the request for a reason retrying cannot fix (token, permissions, repository)."""
