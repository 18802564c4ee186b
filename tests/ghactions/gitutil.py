"""Real git in temporary folders: a bare remote, clones of it, commits by someone else."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

PERSON = {
    "GIT_AUTHOR_NAME": "A Person",
    "GIT_AUTHOR_EMAIL": "person@example.com",
    "GIT_COMMITTER_NAME": "A Person",
    "GIT_COMMITTER_EMAIL": "person@example.com",
}


def git(cwd: Path, *args: str, env: dict[str, str] | None = None) -> str:
    full = {**os.environ, **PERSON, "GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1", **(env or {})}
    result = subprocess.run(
        ["git", *args], cwd=cwd, env=full, capture_output=True, text=True, errors="replace", check=False
    )
    if result.returncode != 0:
        raise AssertionError(f"git {' '.join(args)} failed: {result.stderr}")
    return result.stdout


def make_remote(tmp: Path, source: Path, name: str = "remote.git") -> Path:
    """A bare repository whose main branch holds ``source``'s files in one commit."""
    bare = tmp / name
    git(tmp, "init", "-q", "--bare", "-b", "main", str(bare))
    seed = tmp / "seed"
    shutil.copytree(source, seed)
    git(seed, "init", "-q", "-b", "main")
    git(seed, "add", "-A")
    git(seed, "commit", "-qm", "initial backlog")
    git(seed, "remote", "add", "origin", str(bare))
    git(seed, "push", "-q", "origin", "main")
    shutil.rmtree(seed)
    return bare


def clone(bare: Path, dest: Path, *, shallow: bool = True) -> Path:
    args = ["clone", "-q", "--branch", "main"]
    if shallow:
        args += ["--depth", "1"]
    git(dest.parent, *args, f"file://{bare}", str(dest))
    return dest


def push_change(bare: Path, work: Path, files: dict[str, str | None], message: str) -> None:
    """Someone else commits ``files`` (None deletes) on top of the remote's main and pushes."""
    if not work.exists():
        clone(bare, work, shallow=False)
    git(work, "pull", "-q", "--rebase", "origin", "main")
    for rel, text in files.items():
        path = work / rel
        if text is None:
            path.unlink()
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
    git(work, "add", "-A")
    git(work, "commit", "-qm", message)
    git(work, "push", "-q", "origin", "HEAD:main")


def remote_file(bare: Path, rel: str, ref: str = "main") -> str:
    return git(bare, "show", f"{ref}:{rel}")


def remote_log(bare: Path, ref: str = "main") -> list[str]:
    """``author <email> | subject`` per commit, newest first."""
    return git(bare, "log", "--format=%an <%ae> | %s", ref).splitlines()
