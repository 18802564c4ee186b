"""`batch-ops alert`: open, comment on and close the operator's alert issues on GitHub.

When it acts:

* `batch-ops alert KIND [--message TEXT]` opens the issue for KIND, or comments on it (with the
  run link) if it is open. Budget kinds only open (one issue per month), never comment.
  `workflow-failure` is scoped to the workflow (`GITHUB_WORKFLOW`); if the queue is paused, the
  failure *is* the pause, so the `provider-outage` or `auth-billing` alert is raised instead.
* `batch-ops alert KIND --resolved [--message TEXT]` closes the open issue with a comment, and does
  nothing if none is open.
* `batch-ops alert check [--run FILE]` — run after a *successful* run — compares the repository's
  state with the open alerts: a pause opens its alert (no comment if open), no pause closes the outage
  and auth alerts; this workflow's failure alert closes; failed requests of jobs that ended in this
  run (from `--run`) raise `failed-items`, and no outstanding failed request closes it; a budget
  threshold opens its alert once a month, and spend back under it closes it.

GitHub comes from `GITHUB_TOKEN`, `GITHUB_REPOSITORY`, `GITHUB_API_URL`, `GITHUB_SERVER_URL`,
`GITHUB_RUN_ID`; a missing token is a one-line error (exit 1). GitHub errors and rate limits are
retried a bounded number of times (`BATCH_OPS_GITHUB_ATTEMPTS`, default 4; backoff
`BATCH_OPS_GITHUB_BACKOFF` seconds, default 2; longest wait `BATCH_OPS_GITHUB_MAX_WAIT`, default
60); if GitHub still fails the command exits 1 with its own message, after whatever failure the
run already reported.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
from typing import TYPE_CHECKING

from batch_ops.commands._common import add_repo_arg, warn
from batch_ops.commands._lenient import load_lenient
from batch_ops.config import Config
from batch_ops.github.conditions import (
    budget_state,
    current_pause,
    describe_pause,
    failures_table,
    outstanding_failures,
    pause_alert_kind,
    read_run_records,
)
from batch_ops.github.env import GitHubEnv, github_env
from batch_ops.github.kinds import KINDS, SPECS, Alert, GitHubRefused, GitHubUnavailable, alert_key
from batch_ops.markdown import inline
from batch_ops.paths import Layout

if TYPE_CHECKING:
    from batch_ops.github.alerts import AlertService

BUDGET_KINDS = ("budget-warning", "budget-hard-stop")


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("alert", help="open, comment on or close an alert issue; `check` syncs them with the state")
    add_repo_arg(p)
    p.add_argument("kind", choices=(*KINDS, "check"), help="alert kind, or `check`")
    p.add_argument("--message", help="what to say (plain text; escaped for Markdown)")
    p.add_argument("--resolved", action="store_true", help="close the open issue for KIND with a comment")
    p.add_argument("--scope", help="workflow name (workflow-failure) or month YYYY-MM (budget kinds)")
    p.add_argument("--run", action="append", default=[], metavar="FILE", help="with check: a step's --json output")
    p.set_defaults(func=run)


def service_from_env(env: GitHubEnv) -> AlertService:
    from batch_ops.github.alerts import AlertService  # PyGithub: imported only when alerts are sent

    def number(name: str, default: float) -> float:
        try:
            return float(os.environ.get(name, default))
        except ValueError:
            return default

    return AlertService(
        env,
        attempts=int(number("BATCH_OPS_GITHUB_ATTEMPTS", 4)),
        backoff=number("BATCH_OPS_GITHUB_BACKOFF", 2.0),
        max_wait=number("BATCH_OPS_GITHUB_MAX_WAIT", 60.0),
        timeout=number("BATCH_OPS_GITHUB_TIMEOUT", 15.0),
    )


def _month() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m")


def build_alert(
    kind: str, layout: Layout, config: Config, env: GitHubEnv, message: str | None, scope: str | None
) -> Alert:
    """The alert to raise for KIND, from the message and what the state says."""
    said = inline(message) if message else None
    pause = current_pause(layout)
    if kind == "workflow-failure":
        if pause is not None:
            text = describe_pause(pause) + (f". The run failed: {said}" if said else ". The run failed.")
            return Alert(pause_alert_kind(pause), text)
        return Alert(kind, said or "A step failed.", scope=scope or env.workflow or "batch-ops")
    if kind in ("provider-outage", "auth-billing"):
        text = describe_pause(pause) if pause is not None else "Reported by hand; the queue is not paused"
        return Alert(kind, text + (f". {said}" if said else "."))
    if kind == "failed-items":
        failed = outstanding_failures(layout)
        text = said or f"{len(failed)} request(s) failed and are outstanding."
        return Alert(kind, text, failures_table(failed))
    budget = budget_state(layout, config)
    text = budget.describe() + "." if budget is not None else "No `llmOps.budget` is configured."
    return Alert(kind, (said + ". " if said else "") + text, scope=scope or (budget.month if budget else _month()))


def _resolve(service: AlertService, kind: str, scope: str | None, env: GitHubEnv, message: str | None) -> list[str]:
    text = inline(message) if message else None
    if kind in BUDGET_KINDS and not scope:
        alerts = service.open_alerts()
        keys = [k for k in alerts if k.split(":", 1)[0] == kind]
        return [service.resolve_open(alerts, k, text).describe() for k in keys] or [
            f"alert {kind}: no open issue, nothing to do"
        ]
    if kind == "workflow-failure":
        scope = scope or env.workflow or "batch-ops"
    return [service.resolve(alert_key(kind, scope), text).describe()]


def check(service: AlertService, layout: Layout, config: Config, env: GitHubEnv, runs: list[str]) -> list[str]:
    said: list[str] = []
    open_alerts = service.open_alerts()
    pause = current_pause(layout)
    for kind in ("provider-outage", "auth-billing"):
        if pause is not None and pause_alert_kind(pause) == kind:
            # Open if need be; the failing runs comment (via workflow-failure), a passing one need not.
            alert = Alert(kind, describe_pause(pause) + ".")
            said.append(service.raise_alert(alert, comment_if_open=False).describe())
        elif kind in open_alerts:
            message = "The queue is not paused and this run succeeded."
            said.append(service.resolve_open(open_alerts, kind, message).describe())
    wf_key = alert_key("workflow-failure", env.workflow or "batch-ops")
    if wf_key in open_alerts:
        said.append(service.resolve_open(open_alerts, wf_key, "This workflow ran successfully.").describe())

    run = read_run_records(runs)
    failed = outstanding_failures(layout)
    if not failed:
        if "failed-items" in open_alerts:
            text = "No failed request is outstanding."
            said.append(service.resolve_open(open_alerts, "failed-items", text).describe())
    else:
        new = [f for f in failed if f.job_id in run.ended_jobs]
        if new:
            jobs = sorted({f.job_id for f in new})
            text = (
                f"{len(new)} request(s) failed in {', '.join(inline(j) for j in jobs)}"
                f" ({len(failed)} outstanding in all)."
            )
            said.append(service.raise_alert(Alert("failed-items", text, failures_table(failed))).describe())

    budget = budget_state(layout, config)
    active = alert_key(budget.level, budget.month) if budget is not None and budget.level else None
    for key in [k for k in open_alerts if k.split(":", 1)[0] in BUDGET_KINDS and k != active]:
        said.append(service.resolve_open(open_alerts, key, "Spend is under this threshold now.").describe())
    # Once a month: a budget alert closed by hand stays closed.
    if budget is not None and budget.level and active is not None and active not in service.known_keys():
        alert = Alert(budget.level, budget.describe() + ".", scope=budget.month)
        said.append(service.raise_alert(alert).describe())
    return said or ["alerts: nothing to open or close"]


def run(args: argparse.Namespace) -> int:
    layout, config = load_lenient(args)
    env = github_env()
    service = service_from_env(env)
    try:
        if args.kind == "check":
            if args.resolved:
                warn("`check` decides by itself what to resolve; --resolved is not used with it")
                return 1
            lines = check(service, layout, config, env, args.run)
        elif args.resolved:
            lines = _resolve(service, args.kind, args.scope, env, args.message)
        else:
            alert = build_alert(args.kind, layout, config, env, args.message, args.scope)
            if alert.kind != args.kind:
                print(f"the queue is paused: raising {alert.kind} instead of {args.kind}")
            lines = [service.raise_alert(alert).describe()]
    except (GitHubUnavailable, GitHubRefused) as exc:
        warn(f"alert not delivered: {exc}")
        return 1
    for line in lines:
        print(line)
    return 0


__all__ = ["SPECS", "register", "run"]
