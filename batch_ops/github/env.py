"""The GitHub Actions environment batch-ops reads (DESIGN.md §7), in one place.

Nothing here talks to GitHub; it only reads variables. The token is kept out of ``repr`` so an
accidental print of the object cannot leak it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field

from batch_ops.errors import BatchOpsError

DEFAULT_API_URL = "https://api.github.com"
DEFAULT_SERVER_URL = "https://github.com"


class GitHubNotConfigured(BatchOpsError):
    """A variable that alerts need is missing; the message says which and how to set it."""


@dataclass(frozen=True)
class GitHubEnv:
    repository: str
    token: str = field(repr=False)
    api_url: str = DEFAULT_API_URL
    server_url: str = DEFAULT_SERVER_URL
    run_id: str | None = None
    run_attempt: str | None = None
    workflow: str | None = None

    @property
    def run_url(self) -> str | None:
        if not self.run_id:
            return None
        return f"{self.server_url.rstrip('/')}/{self.repository}/actions/runs/{self.run_id}"

    def redact(self, text: str) -> str:
        """``text`` with the token replaced, for any message that might echo a request."""
        return text.replace(self.token, "***") if self.token else text


def run_url_from(environ: Mapping[str, str] | None = None) -> str | None:
    env = os.environ if environ is None else environ
    repo, run_id = env.get("GITHUB_REPOSITORY"), env.get("GITHUB_RUN_ID")
    if not repo or not run_id:
        return None
    server = (env.get("GITHUB_SERVER_URL") or DEFAULT_SERVER_URL).rstrip("/")
    return f"{server}/{repo}/actions/runs/{run_id}"


def github_env(environ: Mapping[str, str] | None = None) -> GitHubEnv:
    """Read ``GITHUB_TOKEN``, ``GITHUB_REPOSITORY``, ``GITHUB_API_URL``, ``GITHUB_SERVER_URL``, ``GITHUB_RUN_ID``.

    Raises GitHubNotConfigured naming the missing variable.
    """
    env = os.environ if environ is None else environ
    token = (env.get("GITHUB_TOKEN") or "").strip()
    if not token:
        raise GitHubNotConfigured(
            "GITHUB_TOKEN is not set: alerts need it. In a workflow, give the step "
            "`env: GITHUB_TOKEN: ${{ github.token }}` and the job `permissions: issues: write`"
        )
    repository = (env.get("GITHUB_REPOSITORY") or "").strip()
    if repository.count("/") != 1 or not all(repository.split("/")):
        raise GitHubNotConfigured(
            f"GITHUB_REPOSITORY must be 'owner/name' (got {repository!r}); GitHub Actions sets it"
        )
    return GitHubEnv(
        repository=repository,
        token=token,
        api_url=(env.get("GITHUB_API_URL") or DEFAULT_API_URL).rstrip("/"),
        server_url=(env.get("GITHUB_SERVER_URL") or DEFAULT_SERVER_URL).rstrip("/"),
        run_id=env.get("GITHUB_RUN_ID") or None,
        run_attempt=env.get("GITHUB_RUN_ATTEMPT") or None,
        workflow=env.get("GITHUB_WORKFLOW") or None,
    )
