"""Where batch-ops keeps its files inside the user's repository, and the rule that keeps them there.

Paths read from state files (a hand-edited queue line, a ticket id turned into a file name) are
untrusted: ``confine`` refuses anything that would resolve outside the directory it belongs to,
including through a symlink.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from batch_ops.errors import PathError

_SAFE_NAME = re.compile(r"[^A-Za-z0-9_.-]+")


def relative_only(candidate: str | Path) -> Path:
    """Return ``candidate`` as a relative path, refusing absolute paths, ``..`` and NUL bytes."""
    text = str(candidate)
    if not text or "\x00" in text:
        raise PathError(f"empty or NUL path refused: {text!r}")
    path = Path(text)
    if path.is_absolute():
        raise PathError(f"absolute path refused: {text}")
    if ".." in path.parts:
        raise PathError(f"path with '..' refused: {text}")
    return path


def safe_file_name(text: str, *, limit: int = 80) -> str:
    """A file-name fragment made only of safe characters (ids come from user-written tickets)."""
    cleaned = _SAFE_NAME.sub("_", text).strip("._")
    return (cleaned or "item")[:limit]


@dataclass(frozen=True)
class Layout:
    """The repository's batch-ops files, all derived from the repository root."""

    root: Path
    data_dir: str = "backlog/data"

    @property
    def ops_dir(self) -> Path:
        return self.root / ".backlog-ops"

    @property
    def queue_file(self) -> Path:
        return self.ops_dir / "batch-queue.jsonl"

    @property
    def queue_quarantine(self) -> Path:
        return self.ops_dir / "batch-queue.quarantine.jsonl"

    @property
    def lock_file(self) -> Path:
        return self.ops_dir / ".lock"

    @property
    def ledger_file(self) -> Path:
        return self.ops_dir / "usage-ledger.jsonl"

    @property
    def pause_file(self) -> Path:
        return self.ops_dir / "paused.json"

    @property
    def payloads_dir(self) -> Path:
        return self.ops_dir / "payloads"

    @property
    def results_dir(self) -> Path:
        return self.ops_dir / "results"

    @property
    def reports_dir(self) -> Path:
        return self.ops_dir / "reports"

    @property
    def backlog_dir(self) -> Path:
        return self.root / self.data_dir

    def rel(self, path: Path) -> str:
        """Repository-relative POSIX path, the form stored in state files."""
        return path.resolve().relative_to(self.root.resolve()).as_posix()

    def resolve_ops_path(self, stored: str) -> Path:
        """Resolve a path read from a state file; it must stay inside ``.backlog-ops/``."""
        return self._resolve_inside(self.ops_dir, stored)

    def resolve_backlog_path(self, stored: str) -> Path:
        """Resolve a ticket path read from a state file; it must stay inside the data dir."""
        return self._resolve_inside(self.backlog_dir, stored)

    def _resolve_inside(self, base: Path, stored: str) -> Path:
        rel = relative_only(stored)
        full = (self.root / rel).resolve()
        base_real = base.resolve()
        if full != base_real and base_real not in full.parents:
            raise PathError(f"path {stored!r} resolves outside {self.rel_or_abs(base)}")
        return full

    def ops_paths(self) -> OpsPathCheck:
        """A checker for many stored paths at once (a queue read): each directory resolved once."""
        return OpsPathCheck(self)

    def own_path(self, path: Path) -> Path:
        """``path`` (one of batch-ops' own files) if it really is inside ``.backlog-ops/``, else PathError.

        Guards against a committed symlink (``.backlog-ops/reports -> /elsewhere``) turning a write
        into a write outside the repository.
        """
        ops_real = self.ops_dir.resolve()
        root_real = self.root.resolve()
        if ops_real != root_real and root_real not in ops_real.parents:
            raise PathError(f".backlog-ops resolves outside the repository ({ops_real}): refused")
        full = path.resolve()
        if full != ops_real and ops_real not in full.parents:
            raise PathError(f"{self.rel_or_abs(path)} resolves outside .backlog-ops/ (a symlink?): refused")
        return path

    def check_own_files(self) -> None:
        """Refuse to work if ``.backlog-ops/`` or one of its fixed entries is a symlink pointing out."""
        for path in (
            self.ops_dir,
            self.queue_file,
            self.queue_quarantine,
            self.lock_file,
            self.ledger_file,
            self.pause_file,
            self.payloads_dir,
            self.results_dir,
            self.reports_dir,
        ):
            self.own_path(path)

    def rel_or_abs(self, path: Path) -> str:
        try:
            return self.rel(path)
        except ValueError:
            return str(path)


# Past this many paths in one directory, it is listed once (the names of its symlinks, from the
# directory entries) instead of an lstat per path: results/ of 10,000 jobs is one listing.
_LIST_AFTER = 32
_UNLISTABLE: frozenset[str] = frozenset({"\x00"})  # a name no file can have: list failed, ask each


def _symlinks_in(directory: str) -> frozenset[str]:
    try:
        with os.scandir(directory) as entries:
            return frozenset(entry.name for entry in entries if entry.is_symlink())
    except (FileNotFoundError, NotADirectoryError):
        return frozenset()  # nothing is inside it, so no name there is a symlink
    except OSError:
        return _UNLISTABLE


@dataclass
class OpsPathCheck:
    """``Layout.resolve_ops_path`` for every stored path of a queue read, without a ``Path.resolve()`` each.

    A queue of 10,000 jobs stores some 30,000 paths, almost all in two or three directories. The
    answer is the same as ``resolve_ops_path``'s: the stored path is checked lexically (relative, no
    ``..``, no NUL), its directory is resolved through any symlinks once per directory, and the last
    component, when it is itself a symlink (an lstat, or one listing of a directory asked about
    often), is resolved in full. Only the resolved path is compared
    with ``.backlog-ops/``, so a symlink anywhere on the way that leads out is refused, as before.
    The cache lives for one read: a later change on disk is seen by the next read, and every place
    that opens a stored path resolves it again there (``resolve_ops_path``).
    """

    layout: Layout
    _dirs: dict[str, str] = field(default_factory=dict)
    _links: dict[str, frozenset[str]] = field(default_factory=dict)
    _asked: dict[str, int] = field(default_factory=dict)
    _base: str = ""

    def __post_init__(self) -> None:
        self._base = str(self.layout.ops_dir.resolve())

    @property
    def ops_real(self) -> str:
        return self._base

    def resolve(self, stored: str) -> str:
        """The real path of ``stored`` (a string), or PathError if it is not inside ``.backlog-ops/``."""
        # relative_only's rules on the string, as pathlib reads a POSIX path: "/" at the start makes
        # it absolute, empty and "." parts drop out. Anything odd goes to relative_only for the refusal.
        parts = stored.split("/")
        if "" in parts or "." in parts:
            parts = [p for p in parts if p and p != "."]
        if not stored or "\x00" in stored or stored.startswith("/") or ".." in parts:
            relative_only(stored)  # raises PathError with the reason
            raise PathError(f"path refused: {stored!r}")  # not reached: relative_only refused it
        parent = "/".join(parts[:-1])
        leaf = parts[-1] if parts else ""
        real_parent = self._dirs.get(parent)
        if real_parent is None:
            real_parent = self._dirs[parent] = self._real(os.path.join(self.layout.root, parent), stored)
        # real_parent is absolute and normalised (no trailing "/" unless it is the root itself).
        full = (real_parent.rstrip("/") + "/" + leaf) if leaf else real_parent
        if leaf and self._is_link(real_parent, leaf, full):
            full = self._real(full, stored)
        base = self._base
        if full != base and not full.startswith(base.rstrip(os.sep) + os.sep):
            raise PathError(f"path {stored!r} resolves outside {self.layout.rel_or_abs(self.layout.ops_dir)}")
        return full

    def _is_link(self, directory: str, name: str, full: str) -> bool:
        """``os.path.islink(full)``; for a directory asked about often, from one listing of it."""
        links = self._links.get(directory)
        if links is None:
            asked = self._asked[directory] = self._asked.get(directory, 0) + 1
            if asked <= _LIST_AFTER:
                return os.path.islink(full)
            links = self._links[directory] = _symlinks_in(directory)
        if links is _UNLISTABLE:
            return os.path.islink(full)
        return name in links

    @staticmethod
    def _real(path: str, stored: str) -> str:
        try:
            return str(Path(path).resolve())
        except (RuntimeError, OSError) as exc:  # a symlink loop: refused, not followed
            raise PathError(f"path {stored!r} cannot be resolved: {exc}") from exc
