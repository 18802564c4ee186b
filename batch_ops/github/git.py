"""Every git call commit-state makes goes through ``Git.run``: one identity, one environment, no secrets.

* Commits are made as ``github-actions[bot]`` (author and committer), whatever the machine's config.
* Extra configuration (the merge drivers, the push credential) is passed through ``GIT_CONFIG_COUNT``
  / ``GIT_CONFIG_KEY_n`` / ``GIT_CONFIG_VALUE_n``: never on a command line (visible in ``ps``) and
  never written to ``.git/config``.
* With ``GITHUB_TOKEN`` set and a remote on ``GITHUB_SERVER_URL``, the token reaches git as an
  ``http.<server>/.extraheader``, the way actions/checkout does it, unless the checkout already left
  one (``persist-credentials: true``). Workflows use ``persist-credentials: false``, so the token is
  never on disk.
* Error messages carry git's stderr with the token (and its base64 form) replaced.
"""

from __future__ import annotations

import base64
import os
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from batch_ops.errors import BatchOpsError

BOT_NAME = "github-actions[bot]"
BOT_EMAIL = "41898282+github-actions[bot]@users.noreply.github.com"


class GitError(BatchOpsError):
    """A git command failed; the message has its (redacted) stderr."""


@dataclass
class Git:
    root: Path
    token: str | None = field(default=None, repr=False)
    server_url: str = "https://github.com"
    config: list[tuple[str, str]] = field(default_factory=list)
    base_env: Mapping[str, str] | None = None
    _auth_checked: bool = field(default=False, repr=False)

    # ---- environment

    def _secrets(self) -> list[str]:
        if not self.token:
            return []
        return [self.token, base64.b64encode(f"x-access-token:{self.token}".encode()).decode()]

    def redact(self, text: str) -> str:
        for secret in self._secrets():
            text = text.replace(secret, "***")
        return text

    def _auth_config(self) -> list[tuple[str, str]]:
        if not self.token or self._auth_checked:
            return []
        key = f"http.{self.server_url.rstrip('/')}/.extraheader"
        existing = self._raw(["config", "--get-all", key], extra=[]).stdout.strip()
        if existing:
            return []  # the checkout left its own credential; two headers would be refused
        header = base64.b64encode(f"x-access-token:{self.token}".encode()).decode()
        return [(key, f"AUTHORIZATION: basic {header}")]

    def env(self, extra: Sequence[tuple[str, str]]) -> dict[str, str]:
        env = dict(os.environ if self.base_env is None else self.base_env)
        env.update(
            GIT_AUTHOR_NAME=BOT_NAME,
            GIT_AUTHOR_EMAIL=BOT_EMAIL,
            GIT_COMMITTER_NAME=BOT_NAME,
            GIT_COMMITTER_EMAIL=BOT_EMAIL,
            GIT_TERMINAL_PROMPT="0",
            GIT_EDITOR="true",
            GIT_MERGE_AUTOEDIT="no",
            LC_ALL="C",
        )
        try:
            count = int(env.get("GIT_CONFIG_COUNT", "0"))
        except ValueError:
            count = 0
        for key, value in list(extra):
            env[f"GIT_CONFIG_KEY_{count}"] = key
            env[f"GIT_CONFIG_VALUE_{count}"] = value
            count += 1
        if count:
            env["GIT_CONFIG_COUNT"] = str(count)
        return env

    # ---- running

    def _raw(
        self, args: Sequence[str], *, extra: Sequence[tuple[str, str]], input_text: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["git", *args],
            cwd=self.root,
            env=self.env(extra),
            input=input_text,
            capture_output=True,
            encoding="utf-8",
            errors="replace",  # tickets may hold bytes that are not UTF-8
            check=False,
        )

    def run(
        self,
        *args: str,
        check: bool = True,
        network: bool = False,
        input_text: str | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """Run ``git ARGS`` in the repository; ``network=True`` adds the push credential if any."""
        extra = list(self.config)
        if network:
            extra += self._auth_config()
        result = self._raw(args, extra=extra, input_text=input_text)
        if check and result.returncode != 0:
            raise GitError(f"git {args[0]} failed: {self.tail(result)}")
        return result

    def tail(self, result: subprocess.CompletedProcess[str], lines: int = 6) -> str:
        text = (result.stderr or result.stdout or "").strip().splitlines()
        return self.redact(" | ".join(text[-lines:])) or f"exit {result.returncode}"

    def out(self, *args: str) -> str:
        return self.run(*args).stdout

    def show(self, rev_path: str) -> str | None:
        """``git show REV:PATH``, or None if the path is not there."""
        result = self.run("show", rev_path, check=False)
        return result.stdout if result.returncode == 0 else None

    def git_path(self, name: str) -> Path:
        return self.root / self.out("rev-parse", "--git-path", name).strip()
