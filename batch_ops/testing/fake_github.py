"""A small stand-in for api.github.com: the REST endpoints batch-ops' alerts use, over real HTTP on loopback.

Real PyGithub talks to it unchanged::

    with FakeGitHub(token="ghs_x", repos=["octo/app"]) as srv:
        gh = Github(auth=Auth.Token("ghs_x"), base_url=srv.url, seconds_between_writes=0)
        gh.get_repo("octo/app").create_issue("t", labels=["batch-ops-alert"])
        assert srv.issues("octo/app")[0]["labels"] == ["batch-ops-alert"]

Every URL in a response (``url``, ``html_url``, ``comments_url``, ``Link`` headers, …) is built from the
server's own address, because PyGithub refuses to follow URLs outside its ``base_url``.

Served endpoints (paths relative to ``srv.url``): ``GET /repos/{o}/{r}``; ``GET``/``POST
/repos/{o}/{r}/issues`` (list filters ``state``, ``labels``, ``since``, ``creator``, ``sort``,
``direction``, ``per_page``, ``page`` with a ``Link`` header); ``GET``/``PATCH /repos/{o}/{r}/issues/{n}``;
``GET``/``POST /repos/{o}/{r}/issues/{n}/comments``; ``POST /repos/{o}/{r}/issues/{n}/labels``;
``DELETE /repos/{o}/{r}/issues/{n}/labels/{name}``; ``GET``/``POST /repos/{o}/{r}/labels``;
``GET /repos/{o}/{r}/labels/{name}``; ``GET /user``; ``GET /rate_limit``; and ``GET /search/issues``,
which answers from a lagging index (``search_lag_seconds``, default 60 s) as GitHub's search does — code
that looks for an existing issue with Search will not find one it just created.

The fake knows no pull requests, milestones, or permissions beyond the single token.
"""

from __future__ import annotations

import itertools
import json
import re
import threading
import time
import urllib.parse
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

__all__ = ["Failure", "FakeGitHub", "RequestRecord"]

JSON = dict[str, Any]

# Bodies GitHub sends for these statuses; a Failure may override the message.
_DEFAULT_MESSAGES = {
    400: "Problems parsing JSON",
    401: "Bad credentials",
    403: "You have exceeded a secondary rate limit. Please wait a few minutes before you try again.",
    404: "Not Found",
    410: "Issues are disabled for this repo",
    422: "Validation Failed",
    429: "API rate limit exceeded",
    500: "Internal Server Error",
    502: "Server Error",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}
_DOCS = "https://docs.github.com/rest"
_REACTIONS = {"total_count": 0, "+1": 0, "-1": 0, "laugh": 0, "hooray": 0, "confused": 0, "heart": 0,
              "rocket": 0, "eyes": 0}


@dataclass
class Failure:
    """An injected failure: the next ``times`` requests matching ``method`` and ``path_regex`` fail."""

    method: str
    path_regex: re.Pattern[str]
    status: int
    times: int
    headers: dict[str, str]
    after_effect: bool
    message: str | None
    delay: float


@dataclass(frozen=True)
class RequestRecord:
    method: str
    path: str
    query: dict[str, list[str]]
    status: int
    body: Any


@dataclass
class _Comment:
    id: int
    body: str
    user: str
    created_at: str
    updated_at: str


@dataclass
class _Issue:
    number: int
    id: int
    title: str
    body: str | None
    user: str
    labels: list[str]
    created_at: str
    updated_at: str
    state: str = "open"
    state_reason: str | None = None
    closed_at: str | None = None
    closed_by: str | None = None
    assignees: list[str] = field(default_factory=list)
    comments: list[_Comment] = field(default_factory=list)
    # (monotonic time, copy of the issue's searchable fields) per change, for the lagging search index.
    revisions: list[tuple[float, JSON]] = field(default_factory=list)


@dataclass
class _Label:
    id: int
    name: str
    color: str
    description: str | None


@dataclass
class _Repo:
    id: int
    owner: str
    name: str
    created_at: str
    issues: dict[int, _Issue] = field(default_factory=dict)
    labels: dict[str, _Label] = field(default_factory=dict)  # keyed by lower-cased name, as GitHub matches

    @property
    def full_name(self) -> str:
        return f"{self.owner}/{self.name}"


def _invalid(resource: str, field_name: str, code: str = "invalid") -> _HTTPError:
    return _HTTPError(422, errors=[{"resource": resource, "code": code, "field": field_name}])


class _HTTPError(Exception):
    def __init__(self, status: int, message: str | None = None, errors: list[JSON] | None = None) -> None:
        super().__init__(status)
        self.status = status
        self.message = message or _DEFAULT_MESSAGES.get(status, "Error")
        self.errors = errors


@dataclass
class _Response:
    status: int
    body: Any
    headers: dict[str, str] = field(default_factory=dict)


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _q(name: str) -> str:
    return urllib.parse.quote(name, safe="")


class FakeGitHub:
    """In-memory GitHub REST fake. Thread-safe; all state lives on the instance."""

    def __init__(
        self,
        token: str = "ghs_test_token",
        repos: Iterable[str] = ("octo/app",),
        *,
        login: str = "github-actions[bot]",
        host: str = "127.0.0.1",
        port: int = 0,
        path_prefix: str = "",
        search_lag_seconds: float = 60.0,
    ) -> None:
        """``path_prefix`` (e.g. ``"/api/v3"``) serves the API below a path, as GitHub Enterprise does."""
        self.token = token
        self.login = login
        self._host = host
        self._port = port
        self._prefix = path_prefix.rstrip("/")
        self.search_lag_seconds = search_lag_seconds
        self._lock = threading.RLock()
        self._ids = itertools.count(1000)
        self._repos: dict[str, _Repo] = {}
        self._failures: list[Failure] = []
        self._log: list[RequestRecord] = []
        self._rate_remaining = 5000
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        for repo in repos:
            self.add_repo(repo)

    # ---- lifecycle

    def start(self) -> FakeGitHub:
        if self._server is not None:
            return self
        handler = type("_BoundHandler", (_Handler,), {"fake": self})
        server = ThreadingHTTPServer((self._host, self._port), handler)
        server.daemon_threads = True
        self._server = server
        # A short poll interval keeps stop() fast: shutdown() waits for the serve loop's next poll.
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.02}, name="fake-github", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        server, thread = self._server, self._thread
        self._server = self._thread = None
        if server is not None:
            server.shutdown()
            server.server_close()
        if thread is not None:
            thread.join(timeout=5)

    def __enter__(self) -> FakeGitHub:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    @property
    def root(self) -> str:
        """Scheme, host and port: the base of ``html_url`` values."""
        if self._server is None:
            raise RuntimeError("FakeGitHub is not started")
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    @property
    def url(self) -> str:
        """The API base URL, for ``Github(base_url=...)`` and ``GITHUB_API_URL``."""
        return self.root + self._prefix

    # ---- test controls and inspection

    def add_repo(self, full_name: str) -> None:
        owner, _, name = full_name.partition("/")
        if not owner or not name or "/" in name:
            raise ValueError(f"repository must be 'owner/name', got {full_name!r}")
        with self._lock:
            self._repos.setdefault(full_name.lower(), _Repo(next(self._ids), owner, name, _now()))

    def fail_next(
        self,
        method: str,
        path_regex: str,
        status: int,
        times: int = 1,
        headers: dict[str, str] | None = None,
        after_effect: bool = False,
        *,
        message: str | None = None,
        delay: float = 0.0,
    ) -> None:
        """Make the next ``times`` requests matching ``method`` and ``path_regex`` answer ``status``.

        ``path_regex`` must match the whole path (no query string, no ``path_prefix``), e.g.
        ``r"/repos/octo/app/issues"``. With ``after_effect=True`` the request is carried out first and
        only the answer is the error, as when a create succeeds but the response is lost. ``headers`` are
        sent with the error (``{"Retry-After": "1"}``); ``message`` replaces the default body message
        (403's default is GitHub's secondary-rate-limit text). ``delay`` seconds pass before the answer,
        to trip client timeouts. ``status=0`` drops the connection without any answer.
        """
        with self._lock:
            self._failures.append(Failure(
                method.upper(), re.compile(path_regex), status, times, dict(headers or {}), after_effect,
                message, delay,
            ))

    @property
    def requests(self) -> list[tuple[str, str]]:
        """Every request seen, as (method, path) without query string or path prefix."""
        with self._lock:
            return [(r.method, r.path) for r in self._log]

    @property
    def request_log(self) -> list[RequestRecord]:
        with self._lock:
            return list(self._log)

    def issues(self, repo: str) -> list[JSON]:
        """Issues of ``repo`` by number: number, title, body, state, state_reason, labels (names),
        comments (bodies), created_at, closed_at."""
        with self._lock:
            r = self._repo(repo)
            return [
                {
                    "number": i.number, "title": i.title, "body": i.body, "state": i.state,
                    "state_reason": i.state_reason, "labels": list(i.labels),
                    "comments": [c.body for c in i.comments], "created_at": i.created_at,
                    "closed_at": i.closed_at,
                }
                for i in sorted(r.issues.values(), key=lambda i: i.number)
            ]

    def labels(self, repo: str) -> list[JSON]:
        with self._lock:
            return [{"name": lb.name, "color": lb.color, "description": lb.description}
                    for lb in self._repo(repo).labels.values()]

    def seed_issue(
        self, repo: str, title: str, body: str = "", labels: Iterable[str] = (), state: str = "open"
    ) -> int:
        """Create an issue directly (no HTTP, not logged); returns its number."""
        with self._lock:
            r = self._repo(repo)
            issue = self._create_issue(r, {"title": title, "body": body, "labels": list(labels)})
            if state == "closed":
                self._edit_issue(r, issue, {"state": "closed"})
            return issue.number

    # ---- state helpers (call with the lock held)

    def _repo(self, full_name: str) -> _Repo:
        try:
            return self._repos[full_name.lower()]
        except KeyError:
            raise _HTTPError(404) from None

    def _issue(self, repo: _Repo, number: str) -> _Issue:
        issue = repo.issues.get(int(number))
        if issue is None:
            raise _HTTPError(404)
        return issue

    def _ensure_label(self, repo: _Repo, name: str) -> _Label:
        # Setting an unknown label on an issue creates it, with GitHub's default colour.
        label = repo.labels.get(name.lower())
        if label is None:
            label = _Label(next(self._ids), name, "ededed", None)
            repo.labels[name.lower()] = label
        return label

    @staticmethod
    def _label_names(value: Any) -> list[str]:
        if not isinstance(value, list):
            raise _invalid("Issue", "labels")
        names = []
        for item in value:
            name = item.get("name") if isinstance(item, dict) else item
            if not isinstance(name, str) or not name:
                raise _invalid("Label", "name")
            names.append(name)
        return names

    def _set_labels(self, repo: _Repo, issue: _Issue, names: list[str]) -> None:
        result: list[str] = []
        for name in names:
            label = self._ensure_label(repo, name)
            if label.name not in result:
                result.append(label.name)
        issue.labels = result

    def _snapshot(self, issue: _Issue) -> None:
        issue.revisions.append((time.monotonic(), {
            "number": issue.number, "title": issue.title, "body": issue.body or "", "state": issue.state,
            "labels": [lb.lower() for lb in issue.labels],
        }))

    def _create_issue(self, repo: _Repo, body: JSON) -> _Issue:
        title = body.get("title")
        if not isinstance(title, str) or not title.strip():
            raise _invalid("Issue", "title", "missing_field")
        now = _now()
        number = max(repo.issues, default=0) + 1
        issue = _Issue(number, next(self._ids), title, body.get("body"), self.login, [], now, now)
        self._set_labels(repo, issue, self._label_names(body.get("labels", [])))
        assignees = body.get("assignees", [])
        issue.assignees = [a for a in assignees if isinstance(a, str)] if isinstance(assignees, list) else []
        repo.issues[number] = issue
        self._snapshot(issue)
        return issue

    def _edit_issue(self, repo: _Repo, issue: _Issue, body: JSON) -> None:
        if "title" in body:
            if not isinstance(body["title"], str) or not body["title"].strip():
                raise _invalid("Issue", "title", "missing_field")
            issue.title = body["title"]
        if "body" in body:
            issue.body = body["body"]
        if "labels" in body:
            self._set_labels(repo, issue, self._label_names(body["labels"]))
        if "assignees" in body and isinstance(body["assignees"], list):
            issue.assignees = [a for a in body["assignees"] if isinstance(a, str)]
        if "state" in body:
            state = body["state"]
            if state not in ("open", "closed"):
                raise _invalid("Issue", "state")
            if state == "closed" and issue.state != "closed":
                issue.state, issue.closed_at, issue.closed_by = "closed", _now(), self.login
                issue.state_reason = body.get("state_reason") or "completed"
            elif state == "open" and issue.state != "open":
                issue.state, issue.closed_at, issue.closed_by = "open", None, None
                issue.state_reason = "reopened"
        elif "state_reason" in body and issue.state == "closed":
            issue.state_reason = body["state_reason"]
        issue.updated_at = _now()
        self._snapshot(issue)

    # ---- JSON shapes (enough for PyGithub's Repository, Issue, IssueComment, Label, NamedUser)

    def _user_json(self, login: str, kind: str | None = None) -> JSON:
        api, web = self.url, self.root
        uid = 41898282 if login == "github-actions[bot]" else 10_000 + sum(map(ord, login))
        kind = kind or ("Bot" if login.endswith("[bot]") else "User")
        user = f"{api}/users/{_q(login)}"
        return {
            "login": login, "id": uid, "node_id": f"MDQ6VXNlcnt{uid}", "avatar_url": f"{web}/avatars/u/{uid}",
            "gravatar_id": "", "url": user, "html_url": f"{web}/{_q(login)}",
            "followers_url": f"{user}/followers", "following_url": f"{user}/following{{/other_user}}",
            "gists_url": f"{user}/gists{{/gist_id}}", "starred_url": f"{user}/starred{{/owner}}{{/repo}}",
            "subscriptions_url": f"{user}/subscriptions", "organizations_url": f"{user}/orgs",
            "repos_url": f"{user}/repos", "events_url": f"{user}/events{{/privacy}}",
            "received_events_url": f"{user}/received_events", "type": kind, "user_view_type": "public",
            "site_admin": False,
        }

    def _label_json(self, repo: _Repo, label: _Label) -> JSON:
        return {
            "id": label.id, "node_id": f"LA_kwDO{label.id}", "name": label.name, "color": label.color,
            "description": label.description, "default": False,
            "url": f"{self.url}/repos/{repo.full_name}/labels/{_q(label.name)}",
        }

    def _repo_json(self, repo: _Repo) -> JSON:
        api = f"{self.url}/repos/{repo.full_name}"
        open_count = sum(1 for i in repo.issues.values() if i.state == "open")
        return {
            "id": repo.id, "node_id": f"R_kgDO{repo.id}", "name": repo.name, "full_name": repo.full_name,
            "private": False, "owner": self._user_json(repo.owner, "Organization"),
            "html_url": f"{self.root}/{repo.full_name}", "description": None, "fork": False, "url": api,
            "archive_url": f"{api}/{{archive_format}}{{/ref}}", "assignees_url": f"{api}/assignees{{/user}}",
            "branches_url": f"{api}/branches{{/branch}}", "comments_url": f"{api}/comments{{/number}}",
            "commits_url": f"{api}/commits{{/sha}}", "contents_url": f"{api}/contents/{{+path}}",
            "events_url": f"{api}/events", "hooks_url": f"{api}/hooks",
            "issue_comment_url": f"{api}/issues/comments{{/number}}",
            "issue_events_url": f"{api}/issues/events{{/number}}", "issues_url": f"{api}/issues{{/number}}",
            "labels_url": f"{api}/labels{{/name}}", "pulls_url": f"{api}/pulls{{/number}}",
            "git_url": f"git://{self.root.split('://', 1)[1]}/{repo.full_name}.git",
            "clone_url": f"{self.root}/{repo.full_name}.git",
            "ssh_url": f"git@localhost:{repo.full_name}.git",
            "created_at": repo.created_at, "updated_at": repo.created_at, "pushed_at": repo.created_at,
            "homepage": None, "size": 0, "stargazers_count": 0, "watchers_count": 0, "language": None,
            "has_issues": True, "has_projects": False, "has_downloads": True, "has_wiki": False,
            "has_pages": False, "has_discussions": False, "forks_count": 0, "archived": False,
            "disabled": False, "open_issues_count": open_count, "license": None, "allow_forking": True,
            "is_template": False, "topics": [], "visibility": "public", "forks": 0,
            "open_issues": open_count, "watchers": 0, "default_branch": "main",
            "permissions": {"admin": False, "maintain": False, "push": True, "triage": True, "pull": True},
        }

    def _issue_json(self, repo: _Repo, issue: _Issue, *, full: bool = False) -> JSON:
        repo_api = f"{self.url}/repos/{repo.full_name}"
        url = f"{repo_api}/issues/{issue.number}"
        data: JSON = {
            "url": url, "repository_url": repo_api, "labels_url": f"{url}/labels{{/name}}",
            "comments_url": f"{url}/comments", "events_url": f"{url}/events",
            "html_url": f"{self.root}/{repo.full_name}/issues/{issue.number}", "id": issue.id,
            "node_id": f"I_kwDO{issue.id}", "number": issue.number, "title": issue.title,
            "user": self._user_json(issue.user),
            "labels": [self._label_json(repo, repo.labels[name.lower()]) for name in issue.labels],
            "state": issue.state, "locked": False,
            "assignee": self._user_json(issue.assignees[0]) if issue.assignees else None,
            "assignees": [self._user_json(a) for a in issue.assignees], "milestone": None,
            "comments": len(issue.comments), "created_at": issue.created_at, "updated_at": issue.updated_at,
            "closed_at": issue.closed_at, "author_association": "CONTRIBUTOR", "active_lock_reason": None,
            "body": issue.body, "reactions": {"url": f"{url}/reactions", **_REACTIONS},
            "timeline_url": f"{url}/timeline", "performed_via_github_app": None,
            "state_reason": issue.state_reason,
        }
        if full:
            # Only the single-issue endpoint reports who closed it.
            data["closed_by"] = self._user_json(issue.closed_by) if issue.closed_by else None
        return data

    def _comment_json(self, repo: _Repo, issue: _Issue, comment: _Comment) -> JSON:
        repo_api = f"{self.url}/repos/{repo.full_name}"
        return {
            "url": f"{repo_api}/issues/comments/{comment.id}",
            "html_url": f"{self.root}/{repo.full_name}/issues/{issue.number}#issuecomment-{comment.id}",
            "issue_url": f"{repo_api}/issues/{issue.number}", "id": comment.id,
            "node_id": f"IC_kwDO{comment.id}", "user": self._user_json(comment.user),
            "created_at": comment.created_at, "updated_at": comment.updated_at,
            "author_association": "CONTRIBUTOR", "body": comment.body,
            "reactions": {"url": f"{repo_api}/issues/comments/{comment.id}/reactions", **_REACTIONS},
            "performed_via_github_app": None,
        }

    # ---- request handling

    def _paginate(self, path: str, query: dict[str, list[str]], items: list[JSON]) -> _Response:
        try:
            per_page = min(max(int(query.get("per_page", ["30"])[0]), 1), 100)
            page = max(int(query.get("page", ["1"])[0]), 1)
        except ValueError:
            raise _HTTPError(422, "Invalid pagination parameters") from None
        last = max((len(items) + per_page - 1) // per_page, 1)
        chunk = items[(page - 1) * per_page: page * per_page]
        links = []

        def link(p: int, rel: str) -> str:
            params = {k: v[-1] for k, v in query.items()}
            params["page"] = str(p)
            params["per_page"] = str(per_page)
            return f'<{self.url}{path}?{urllib.parse.urlencode(params)}>; rel="{rel}"'

        if page > 1:
            links += [link(page - 1, "prev"), link(1, "first")]
        if page < last:
            links += [link(page + 1, "next"), link(last, "last")]
        return _Response(200, chunk, {"Link": ", ".join(links)} if links else {})

    def _list_issues(self, repo: _Repo, path: str, query: dict[str, list[str]]) -> _Response:
        state = query.get("state", ["open"])[0]
        if state not in ("open", "closed", "all"):
            raise _invalid("Issue", "state")
        wanted = [lb.strip().lower() for lb in query.get("labels", [""])[0].split(",") if lb.strip()]
        since = query.get("since", [""])[0]
        creator = query.get("creator", [""])[0]
        sort = query.get("sort", ["created"])[0]
        direction = query.get("direction", ["desc"])[0]
        selected = [
            i for i in repo.issues.values()
            if (state == "all" or i.state == state)
            and all(w in (lb.lower() for lb in i.labels) for w in wanted)
            and (not since or i.updated_at >= since)
            and (not creator or i.user == creator)
        ]

        def key(issue: _Issue) -> tuple[str, int]:
            if sort == "updated":
                return issue.updated_at, issue.number
            if sort == "comments":
                return f"{len(issue.comments):09d}", issue.number
            # Creation order is the number order; timestamps have only second resolution.
            return "", issue.number

        selected.sort(key=key, reverse=direction != "asc")
        return self._paginate(path, query, [self._issue_json(repo, i) for i in selected])

    def _search_issues(self, path: str, query: dict[str, list[str]]) -> _Response:
        q = query.get("q", [""])[0]
        terms = re.findall(r'(\w+):"([^"]*)"|(\w+):(\S+)|(\S+)', q)
        repo_name, state, labels, words = "", "", [], []
        for k1, v1, k2, v2, word in terms:
            key, value = (k1, v1) if k1 else (k2, v2)
            if key == "repo":
                repo_name = value
            elif key in ("is", "state") and value in ("open", "closed"):
                state = value
            elif key == "label":
                labels.append(value.lower())
            elif word:
                words.append(word.lower())
        horizon = time.monotonic() - self.search_lag_seconds
        items: list[JSON] = []
        repos = [self._repo(repo_name)] if repo_name else list(self._repos.values())
        for repo in repos:
            for issue in repo.issues.values():
                # Search answers from an index that lags: use the newest revision older than the lag.
                seen = [snap for ts, snap in issue.revisions if ts <= horizon]
                if not seen:
                    continue
                snap = seen[-1]
                text = f"{snap['title']} {snap['body']}".lower()
                if (state and snap["state"] != state) or not all(lb in snap["labels"] for lb in labels):
                    continue
                if not all(w in text for w in words):
                    continue
                stale = self._issue_json(repo, issue)
                stale.update(title=snap["title"], body=snap["body"], state=snap["state"], score=1.0)
                items.append(stale)
        page = self._paginate(path, query, items)
        return _Response(200, {"total_count": len(items), "incomplete_results": False, "items": page.body},
                         page.headers)

    def _route(self, method: str, path: str, query: dict[str, list[str]], body: Any) -> _Response:
        parts = [urllib.parse.unquote(p) for p in path.strip("/").split("/")]
        if method == "GET" and parts == ["user"]:
            return _Response(200, self._user_json(self.login))
        if method == "GET" and parts == ["rate_limit"]:
            core = {"limit": 5000, "remaining": self._rate_remaining, "reset": int(time.time()) + 3600,
                    "used": 5000 - self._rate_remaining}
            return _Response(200, {"resources": {"core": core, "search": dict(core, limit=30)}, "rate": core})
        if method == "GET" and parts == ["search", "issues"]:
            return self._search_issues(path, query)
        if len(parts) < 3 or parts[0] != "repos":
            raise _HTTPError(404)
        repo = self._repo(f"{parts[1]}/{parts[2]}")
        rest = parts[3:]
        match method, rest:
            case "GET", []:
                return _Response(200, self._repo_json(repo))
            case "GET", ["issues"]:
                return self._list_issues(repo, path, query)
            case "POST", ["issues"]:
                issue = self._create_issue(repo, self._object(body))
                return _Response(201, self._issue_json(repo, issue, full=True))
            case "GET", ["issues", number] if number.isdigit():
                return _Response(200, self._issue_json(repo, self._issue(repo, number), full=True))
            case "PATCH", ["issues", number] if number.isdigit():
                issue = self._issue(repo, number)
                self._edit_issue(repo, issue, self._object(body))
                return _Response(200, self._issue_json(repo, issue, full=True))
            case "GET", ["issues", number, "comments"] if number.isdigit():
                issue = self._issue(repo, number)
                since = query.get("since", [""])[0]
                comments = [self._comment_json(repo, issue, c) for c in issue.comments
                            if not since or c.updated_at >= since]
                return self._paginate(path, query, comments)
            case "POST", ["issues", number, "comments"] if number.isdigit():
                issue = self._issue(repo, number)
                text = self._object(body).get("body")
                if not isinstance(text, str) or not text:
                    raise _invalid("IssueComment", "body", "missing_field")
                now = _now()
                comment = _Comment(next(self._ids), text, self.login, now, now)
                issue.comments.append(comment)
                issue.updated_at = now
                return _Response(201, self._comment_json(repo, issue, comment))
            case "POST", ["issues", number, "labels"] if number.isdigit():
                issue = self._issue(repo, number)
                names = self._label_names(body.get("labels") if isinstance(body, dict) else body)
                self._set_labels(repo, issue, issue.labels + names)
                issue.updated_at = _now()
                self._snapshot(issue)
                return _Response(200, [self._label_json(repo, repo.labels[n.lower()]) for n in issue.labels])
            case "DELETE", ["issues", number, "labels", name] if number.isdigit():
                issue = self._issue(repo, number)
                if name.lower() not in (lb.lower() for lb in issue.labels):
                    raise _HTTPError(404, "Label does not exist")
                issue.labels = [lb for lb in issue.labels if lb.lower() != name.lower()]
                issue.updated_at = _now()
                self._snapshot(issue)
                return _Response(200, [self._label_json(repo, repo.labels[n.lower()]) for n in issue.labels])
            case "GET", ["labels"]:
                labels = [self._label_json(repo, lb) for lb in repo.labels.values()]
                return self._paginate(path, query, labels)
            case "GET", ["labels", name]:
                label = repo.labels.get(name.lower())
                if label is None:
                    raise _HTTPError(404)
                return _Response(200, self._label_json(repo, label))
            case "POST", ["labels"]:
                data = self._object(body)
                label_name = data.get("name")
                if not isinstance(label_name, str) or not label_name:
                    raise _invalid("Label", "name", "missing_field")
                if label_name.lower() in repo.labels:
                    raise _invalid("Label", "name", "already_exists")
                color = str(data.get("color") or "ededed").lstrip("#")
                label = _Label(next(self._ids), label_name, color, data.get("description"))
                repo.labels[label_name.lower()] = label
                return _Response(201, self._label_json(repo, label))
        raise _HTTPError(404)

    @staticmethod
    def _object(body: Any) -> JSON:
        if not isinstance(body, dict):
            raise _HTTPError(400)
        return body

    def _take_failure(self, method: str, path: str) -> Failure | None:
        for failure in self._failures:
            if failure.method == method and failure.path_regex.fullmatch(path):
                failure.times -= 1
                if failure.times <= 0:
                    self._failures.remove(failure)
                return failure
        return None

    def _handle(
        self, method: str, raw_path: str, headers: dict[str, str], raw_body: bytes
    ) -> _Response | None:
        """Serve one request; ``None`` means drop the connection without answering."""
        split = urllib.parse.urlsplit(raw_path)
        path = split.path
        if self._prefix and path.startswith(self._prefix + "/"):
            path = path[len(self._prefix):]
        query = urllib.parse.parse_qs(split.query, keep_blank_values=True)
        body: Any = None
        response: _Response
        failure: Failure | None = None
        try:
            if raw_body:
                try:
                    body = json.loads(raw_body)
                except ValueError:
                    raise _HTTPError(400) from None
            auth = headers.get("authorization", "")
            scheme, _, credential = auth.partition(" ")
            if scheme.lower() not in ("token", "bearer") or credential.strip() != self.token:
                raise _HTTPError(401)
            with self._lock:
                failure = self._take_failure(method, path)
                if failure is not None and not failure.after_effect:
                    response = self._failure_response(failure)
                else:
                    response = self._route(method, path, query, body)
                    if failure is not None:
                        response = self._failure_response(failure)
        except _HTTPError as err:
            payload: JSON = {"message": err.message, "documentation_url": _DOCS, "status": str(err.status)}
            if err.errors:
                payload["errors"] = err.errors
            response = _Response(err.status, payload)
        with self._lock:
            self._log.append(RequestRecord(method, path, query, response.status, body))
            self._rate_remaining = max(self._rate_remaining - 1, 0)
            response.headers.update({
                "X-RateLimit-Limit": "5000", "X-RateLimit-Remaining": str(self._rate_remaining),
                "X-RateLimit-Reset": str(int(time.time()) + 3600), "X-RateLimit-Resource": "core",
                "X-GitHub-Api-Version-Selected": "2022-11-28",
            })
        if failure is not None and failure.delay:
            time.sleep(failure.delay)
        return None if response.status == 0 else response

    @staticmethod
    def _failure_response(failure: Failure) -> _Response:
        message = failure.message or _DEFAULT_MESSAGES.get(failure.status, "Error")
        body = {"message": message, "documentation_url": _DOCS, "status": str(failure.status)}
        return _Response(failure.status, body, dict(failure.headers))


class _Handler(BaseHTTPRequestHandler):
    fake: FakeGitHub
    protocol_version = "HTTP/1.1"  # keep-alive, as PyGithub's connection pool expects
    server_version = "GitHub.com"
    sys_version = ""
    timeout = 30  # idle keep-alive connections must not pin handler threads forever

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw_body = self.rfile.read(length) if length else b""
        headers = {k.lower(): v for k, v in self.headers.items()}
        response = self.fake._handle(self.command, self.path, headers, raw_body)
        if response is None:
            self.close_connection = True
            return
        data = b"" if response.status in (204, 304) else json.dumps(response.body).encode()
        try:
            self.send_response(response.status)
            self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            for key, value in response.headers.items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            # The client gave up first (a delayed answer past its timeout): nothing left to tell it.
            self.close_connection = True

    do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = _serve

    def log_message(self, format: str, *args: Any) -> None:
        # Tests read srv.request_log instead of stderr noise.
        pass
