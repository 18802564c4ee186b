"""Alert issues on GitHub, through PyGithub: one open issue per alert key; repeats comment; recovery closes.

An alert issue carries the label ``batch-ops-alert`` and, in its body, the marker
``<!-- batch-ops-alert-key: KEY -->``. Open alerts are found with the issue-list endpoint filtered
by that label (never with Search, whose index lags), and the key is read from the marker.

Creating an issue is not idempotent: a create whose answer was lost (5xx, timeout, dropped
connection) may still have made the issue. So PyGithub's own retries are off (``retry=None``) and
every attempt here lists the open alerts first and adopts a matching issue before it creates one.
GitHub errors and rate limits are retried a bounded number of times; ``Retry-After`` and the
rate-limit reset are honoured up to a cap. Error texts are rebuilt from the status and GitHub's
message only: no headers, no request bodies, never the token.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from typing import Any, TypeVar

import requests
from github import Auth, Github, GithubException
from github.GithubException import RateLimitExceededException, UnknownObjectException

from batch_ops.github.env import GitHubEnv
from batch_ops.github.kinds import (  # noqa: F401  (re-exported)
    _BODY_LIMIT,
    _MARKER,
    _MARKER_RE,
    ALERT_LABEL,
    KINDS,
    LABEL_COLOR,
    LABEL_DESCRIPTION,
    SPECS,
    Alert,
    AlertSpec,
    GitHubRefused,
    GitHubUnavailable,
    Outcome,
    alert_key,
)

T = TypeVar("T")


def describe_error(exc: BaseException) -> str:
    """A one-line description built from safe parts only (status, GitHub's message, exception type)."""
    if isinstance(exc, GithubException):
        message = ""
        if isinstance(exc.data, dict) and isinstance(exc.data.get("message"), str):
            message = " ".join(exc.data["message"].split())[:200]
        return f"HTTP {exc.status}" + (f" {message}" if message else "")
    if isinstance(exc, requests.exceptions.Timeout):
        return "timed out"
    if isinstance(exc, requests.exceptions.ConnectionError):
        return "connection failed"
    return type(exc).__name__


def _headers(exc: GithubException) -> dict[str, str]:
    return {str(k).lower(): str(v) for k, v in (exc.headers or {}).items()}


def _now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")


class AlertService:
    """Find, open, comment on and close alert issues in ``env.repository``."""

    def __init__(
        self,
        env: GitHubEnv,
        *,
        attempts: int = 4,
        backoff: float = 2.0,
        max_wait: float = 60.0,
        timeout: float = 15.0,
        sleep: Callable[[float], None] = time.sleep,
        label: str = ALERT_LABEL,
    ) -> None:
        self.env = env
        self.attempts = max(attempts, 1)
        self.backoff = backoff
        self.max_wait = max_wait
        self.sleep = sleep
        self.label = label
        self._gh = Github(
            auth=Auth.Token(env.token),
            base_url=env.api_url,
            timeout=int(max(timeout, 1)),
            retry=None,  # one retry layer, here, that looks before it creates
            seconds_between_requests=0,
            seconds_between_writes=0,
            per_page=100,
        )
        self._repo: Any = None
        self._label_ready = False

    # ---- the one retry layer

    def _delay(self, exc: BaseException, attempt: int) -> float | None:
        """Seconds to wait before trying again, or None if retrying cannot help."""
        backoff = self.backoff * (2.0 ** (attempt - 1))
        if isinstance(exc, GithubException):
            headers = _headers(exc)
            status = exc.status
            limited = (
                isinstance(exc, RateLimitExceededException)
                or status == 429
                or (status == 403 and ("retry-after" in headers or headers.get("x-ratelimit-remaining") == "0"))
            )
            if limited:
                if "retry-after" in headers:
                    try:
                        return max(float(headers["retry-after"]), 0.0)
                    except ValueError:
                        return backoff
                if headers.get("x-ratelimit-remaining") == "0" and "x-ratelimit-reset" in headers:
                    try:
                        return max(float(headers["x-ratelimit-reset"]) - time.time(), 0.0) + 1.0
                    except ValueError:
                        return backoff
                return backoff
            if status is not None and status >= 500:
                return backoff
            return None
        if isinstance(exc, requests.exceptions.RequestException):
            return backoff
        return None

    def _refused(self, exc: GithubException, what: str) -> GitHubRefused:
        detail = self.env.redact(describe_error(exc))
        if exc.status == 401:
            hint = "check GITHUB_TOKEN"
        elif exc.status == 403:
            hint = "the job needs `permissions: issues: write`"
        elif exc.status == 404:
            hint = f"is {self.env.repository} right, and can the token see it?"
        elif exc.status == 410:
            hint = "issues are disabled in this repository"
        else:
            hint = "GitHub refused the request"
        return GitHubRefused(f"GitHub refused {what} ({detail}): {hint}")

    def _call(self, what: str, fn: Callable[[], T]) -> T:
        for attempt in range(1, self.attempts + 1):
            try:
                return fn()
            except (GithubException, requests.exceptions.RequestException) as exc:
                delay = self._delay(exc, attempt)
                if delay is None:
                    assert isinstance(exc, GithubException)
                    raise self._refused(exc, what) from None
                detail = self.env.redact(describe_error(exc))
                if attempt == self.attempts:
                    raise GitHubUnavailable(
                        f"GitHub did not answer {what} after {self.attempts} attempt(s): {detail}"
                    ) from None
                if delay > self.max_wait:
                    raise GitHubUnavailable(
                        f"GitHub rate-limited {what} for {delay:.0f}s, longer than this run waits "
                        f"({self.max_wait:.0f}s): {detail}"
                    ) from None
                self.sleep(delay)
        raise AssertionError("unreachable")

    # ---- reading

    @property
    def repo(self) -> Any:
        if self._repo is None:
            self._repo = self._call("reading the repository", lambda: self._gh.get_repo(self.env.repository))
        return self._repo

    def _fetch(self, state: str) -> list[Any]:
        return [
            issue
            for issue in self.repo.get_issues(state=state, labels=[self.label])
            if getattr(issue, "pull_request", None) is None
        ]

    def _list(self, state: str) -> list[Any]:
        return self._call(f"listing {state} alert issues", lambda: self._fetch(state))

    @staticmethod
    def key_of(issue: Any) -> str | None:
        match = _MARKER_RE.search(issue.body or "")
        return match.group(1) if match else None

    @classmethod
    def by_key(cls, issues: list[Any]) -> dict[str, Any]:
        """Alert issues by key; of two with one key (made by hand), the oldest counts."""
        found: dict[str, Any] = {}
        for issue in sorted(issues, key=lambda i: i.number):
            key = cls.key_of(issue)
            if key and key not in found:
                found[key] = issue
        return found

    def open_alerts(self) -> dict[str, Any]:
        return self.by_key(self._list("open"))

    def known_keys(self) -> set[str]:
        """Keys of every alert issue, open or closed."""
        return {k for k in (self.key_of(i) for i in self._list("all")) if k}

    # ---- writing

    def _ensure_label(self) -> None:
        if self._label_ready:
            return

        def ensure() -> None:
            try:
                self.repo.get_label(self.label)
            except UnknownObjectException:
                try:
                    self.repo.create_label(self.label, LABEL_COLOR, LABEL_DESCRIPTION)
                except GithubException as exc:
                    if exc.status != 422:  # 422: made meanwhile (or by a lost answer): fine
                        raise

        self._call(f"creating the label {self.label}", ensure)
        self._label_ready = True

    def body(self, alert: Alert) -> str:
        run = self.env.run_url
        parts = [
            _MARKER.format(key=alert.key),
            f"### {alert.title}",
            f"**What happened.** {alert.summary}",
        ]
        if alert.details:
            parts.append(alert.details)
        parts += [
            f"**What to do.**\n\n{alert.spec.what_to_do}",
            f"First seen {_now()}" + (f" in [run {self.env.run_id}]({run})." if run else "."),
            "<sub>Opened by batch-ops. A repeat of this alert comments here; batch-ops closes this issue "
            f"when the condition clears. Alert key: `{alert.key}`.</sub>",
        ]
        return _clip("\n\n".join(parts))

    def _run_ref(self) -> str:
        run = self.env.run_url
        return f"in [run {self.env.run_id}]({run})" if run else "outside a workflow run"

    def raise_alert(self, alert: Alert, *, comment_if_open: bool | None = None) -> Outcome:
        """Open the alert's issue, or comment on it if it is open (unless the kind says not to)."""
        comment = alert.spec.comment_on_repeat if comment_if_open is None else comment_if_open
        key = alert.key
        existing = self.open_alerts().get(key)
        if existing is not None:
            if not comment:
                return Outcome("unchanged", key, existing.number, existing.html_url)
            text = _clip(f"**Seen again** {_now()} {self._run_ref()}: {alert.summary}" + (
                f"\n\n{alert.details}" if alert.details else ""))
            self._call(f"commenting on alert #{existing.number}", lambda: existing.create_comment(text))
            return Outcome("commented", key, existing.number, existing.html_url)
        self._ensure_label()
        body = self.body(alert)
        tried: list[bool] = []

        def create() -> Any:
            # Look before you create: an earlier attempt whose answer was lost may have made it.
            if tried:
                again = self.by_key(self._fetch("open")).get(key)
                if again is not None:
                    return again
            tried.append(True)
            return self.repo.create_issue(alert.title, body=body, labels=[self.label])

        issue = self._call(f"opening the alert issue for {key}", create)
        return Outcome("opened", key, issue.number, issue.html_url)

    def resolve(self, key: str, message: str | None = None) -> Outcome:
        """Close the open issue for ``key`` with a comment; nothing to do if none is open."""
        issue = self.open_alerts().get(key)
        if issue is None:
            return Outcome("none", key)
        return self._close(issue, key, message)

    def _close(self, issue: Any, key: str, message: str | None) -> Outcome:
        text = _clip(f"**Resolved** {_now()} {self._run_ref()}: {message or 'The condition cleared.'}")
        self._call(f"commenting on alert #{issue.number}", lambda: issue.create_comment(text))
        # Editing to closed twice is harmless, so this one may be retried freely.
        self._call(f"closing alert #{issue.number}", lambda: issue.edit(state="closed", state_reason="completed"))
        return Outcome("closed", key, issue.number, issue.html_url)

    def resolve_open(self, open_alerts: dict[str, Any], key: str, message: str | None = None) -> Outcome:
        issue = open_alerts.get(key)
        if issue is None:
            return Outcome("none", key)
        return self._close(issue, key, message)


def _clip(text: str) -> str:
    if len(text) <= _BODY_LIMIT:
        return text
    return text[: _BODY_LIMIT - 40].rstrip() + "\n\n… (cut: too long for an issue)"

