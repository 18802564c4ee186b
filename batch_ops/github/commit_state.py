"""Commit batch-ops state and ticket changes, and push them, safely next to other writers.

What is committed: ``.backlog-ops/`` (less the lock file, temp files and what .gitignore excludes)
and the backlog's data directory. Nothing staged means no commit. The message is computed from the staged change itself
(the queue and the ledger before and after), so it says what the run did.

Pushing: ``git push``; when it is refused (someone pushed meanwhile) fetch the branch, rebase this
one commit onto it and push again, up to ``attempts`` times with exponential backoff.

Conflicts are never settled by merging text:

* **queue** (``.backlog-ops/batch-queue.jsonl``) — a merge driver merges *records by job id*,
  three-way against the common base: a job changed on one side only takes that side; a job
  changed on both sides takes the record with the later ``updated_at``, then the more advanced
  status (queued < submitted < running < completed/failed), then this run's; jobs new on either
  side are kept (remote order first). The same new job id made differently on both sides is a
  real conflict: the push fails with a message instead of guessing.
* **ledger** (``.backlog-ops/usage-ledger.jsonl``) — the remote's lines, then this run's appended
  lines that are not already present.
* other files under ``.backlog-ops/`` (reports, results, payloads, pause) — this run's version.
* a ticket changed on both sides — the remote's version (a person's edit wins); the run's result
  for it stays in ``.backlog-ops/results/`` and a warning names the ticket.
"""

from __future__ import annotations

import contextlib
import json
import shlex
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from batch_ops.errors import BatchOpsError
from batch_ops.github.git import Git, GitError
from batch_ops.queue import parse_queue_text

STATE_DIR = ".backlog-ops"
QUEUE_PATH = ".backlog-ops/batch-queue.jsonl"
LEDGER_PATH = ".backlog-ops/usage-ledger.jsonl"
PAUSE_PATH = ".backlog-ops/paused.json"
LOCK_PATH = ".backlog-ops/.lock"
# Never state: the lock file, and atomic writes' and downloads' temp files caught mid-write.
_NOT_STATE_SUFFIXES = (".tmp", ".part")
_DRIVERS = {QUEUE_PATH: "batch-ops-queue", LEDGER_PATH: "batch-ops-ledger"}
_RANK = {"queued": 0, "submitted": 1, "running": 2, "completed": 3, "failed": 3}


class MergeConflict(BatchOpsError):
    """State that cannot be merged without a person."""


# ---- record-level merges (also the git merge drivers, via `batch-ops merge-state`)


def _jsonl_lines(text: str) -> list[str]:
    """The lines of a JSONL file: split at "\n" only (a record may hold U+2028 or U+0085, which
    ``str.splitlines()`` would cut at), a trailing "\r" dropped."""
    return [line.removesuffix("\r") for line in text.split("\n")]


def _records(text: str) -> tuple[dict[str, dict[str, Any]], list[str], list[str]]:
    """(records by id, ids in file order, lines that are not records — kept, never dropped)."""
    records: dict[str, dict[str, Any]] = {}
    order: list[str] = []
    other: list[str] = []
    for line in _jsonl_lines(text):
        if not line.strip():
            continue
        try:
            data = json.loads(line)
        except (ValueError, RecursionError):
            other.append(line)
            continue
        job_id = data.get("id") if isinstance(data, dict) else None
        if not isinstance(job_id, str) or job_id in records:
            other.append(line)
            continue
        records[job_id] = data
        order.append(job_id)
    return records, order, other


def _newer(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    """Of two changed records of one job: later updated_at, then further status, then ``b``."""
    def key(r: dict[str, Any]) -> tuple[str, int]:
        return (str(r.get("updated_at") or ""), _RANK.get(str(r.get("status")), -1))

    return a if key(a) > key(b) else b


def merge_queue_texts(base: str, current: str, other: str) -> str:
    """Three-way merge of queue files by job id; ``current`` is the remote, ``other`` this run."""
    b, _, _ = _records(base)
    a, a_order, a_bad = _records(current)
    o, o_order, o_bad = _records(other)
    merged: dict[str, dict[str, Any]] = {}
    order: list[str] = []
    for job_id in a_order + [i for i in o_order if i not in a]:
        in_a, in_o, in_b = job_id in a, job_id in o, job_id in b
        if in_a and in_o:
            ra, ro = a[job_id], o[job_id]
            if ra == ro or (in_b and ro == b[job_id]):
                rec = ra
            elif in_b and ra == b[job_id]:
                rec = ro
            elif not in_b:
                raise MergeConflict(
                    f"job id {job_id} was created on both sides with different contents; "
                    "re-run enqueue after pulling"
                )
            else:
                rec = _newer(ra, ro)
        elif in_a:
            if in_b and a[job_id] == b[job_id]:
                continue  # the other side removed it and this side did not touch it
            rec = a[job_id]
        else:
            if in_b and o[job_id] == b[job_id]:
                continue
            rec = o[job_id]
        merged[job_id] = rec
        order.append(job_id)
    lines = [json.dumps(merged[i], ensure_ascii=False, separators=(",", ":")) for i in order]
    for bad in a_bad + [x for x in o_bad if x not in a_bad]:
        lines.append(bad)  # the next queue write quarantines it with a reason
    return "".join(line + "\n" for line in lines)


def merge_ledger_texts(base: str, current: str, other: str) -> str:
    """The remote's lines, then the other side's appended lines not already present."""
    base_lines = set(_jsonl_lines(base))
    out = [line for line in _jsonl_lines(current) if line.strip()]
    present = set(out)
    for line in _jsonl_lines(other):
        if line.strip() and line not in base_lines and line not in present:
            out.append(line)
            present.add(line)
    return "".join(line + "\n" for line in out)


# ---- the commit message


@dataclass
class Change:
    enqueued: list[str] = field(default_factory=list)
    batches_submitted: int = 0
    completed: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    requeued: list[str] = field(default_factory=list)
    ledger_lines: int = 0
    cost_usd: float = 0.0
    tickets_refined: list[str] = field(default_factory=list)
    tickets_moved: list[str] = field(default_factory=list)
    reports: list[str] = field(default_factory=list)
    paused: str | None = None
    resumed: bool = False
    other_files: int = 0


def _batch_ids(job: Any) -> set[str]:
    return {b.id for b in job.batches if b.id}


def describe_change(git: Git, data_dir: str) -> Change:
    change = Change()
    old_jobs, _ = parse_queue_text(git.show(f"HEAD:{QUEUE_PATH}") or "")
    new_jobs, _ = parse_queue_text(git.show(f":{QUEUE_PATH}") or "")
    before = {j.id: j for j in old_jobs}
    for job in new_jobs:
        old = before.get(job.id)
        if old is None:
            change.enqueued.append(job.id)
        change.batches_submitted += len(_batch_ids(job) - (_batch_ids(old) if old else set()))
        if job.status != (old.status if old else None):
            if job.status == "completed":
                change.completed.append(job.id)
            elif job.status == "failed":
                change.failed.append(job.id)
            elif job.status == "queued" and old is not None:
                change.requeued.append(job.id)
    old_ledger = set(_jsonl_lines(git.show(f"HEAD:{LEDGER_PATH}") or ""))
    for line in _jsonl_lines(git.show(f":{LEDGER_PATH}") or ""):
        if line.strip() and line not in old_ledger:
            change.ledger_lines += 1
            with contextlib.suppress(ValueError, AttributeError, TypeError, RecursionError):
                change.cost_usd += float(json.loads(line).get("cost_usd") or 0.0)
    status = git.out("diff", "--cached", "--name-status", "--no-renames", "-z", "--", STATE_DIR, data_dir)
    parts = status.split("\0")
    for flag, path in zip(parts[0::2], parts[1::2], strict=False):
        if not path:
            continue
        if path.startswith(data_dir.rstrip("/") + "/"):
            name = path.rsplit("/", 1)[-1]
            (change.tickets_refined if flag == "M" else change.tickets_moved).append(name)
        elif path == PAUSE_PATH:
            if flag == "D":
                change.resumed = True
            else:
                kind = "unknown"
                with contextlib.suppress(ValueError):
                    kind = str(json.loads(git.show(f":{PAUSE_PATH}") or "{}").get("kind", "unknown"))
                change.paused = kind
        elif path.startswith(f"{STATE_DIR}/reports/") and path.endswith(".md"):
            change.reports.append(path)
        elif path not in (QUEUE_PATH, LEDGER_PATH):
            change.other_files += 1
    return change


def _n(count: int, word: str, plural: str | None = None) -> str:
    return f"{count} {word if count == 1 else (plural or word + 's')}"


def _one_line(text: str) -> str:
    return " ".join("".join(c if c.isprintable() else " " for c in str(text)).split())[:200]


def commit_message(change: Change, *, run_url: str | None = None, workflow: str | None = None) -> str:
    parts: list[str] = []
    if change.paused:
        parts.append(f"queue paused ({_one_line(change.paused)})")
    if change.resumed:
        parts.append("queue resumed")
    if change.enqueued:
        parts.append(f"enqueued {_n(len(change.enqueued), 'job')}")
    if change.batches_submitted:
        parts.append(f"submitted {_n(change.batches_submitted, 'batch', 'batches')}")
    if change.completed:
        parts.append(f"completed {_n(len(change.completed), 'job')}")
    if change.failed:
        parts.append(f"failed {_n(len(change.failed), 'job')}")
    if change.ledger_lines:
        parts.append(f"settled {_n(change.ledger_lines, 'request')}")
    if change.tickets_refined:
        parts.append(f"refined {_n(len(change.tickets_refined), 'ticket')}")
    if change.tickets_moved:
        parts.append(f"added or moved {_n(len(change.tickets_moved), 'ticket')}")
    if change.reports and not parts:
        parts.append(f"updated {_n(len(change.reports), 'report')}")
    subject = "batch-ops: " + (", ".join(parts) if parts else "update state")
    body: list[str] = []
    for label, ids in (
        ("Enqueued", change.enqueued),
        ("Completed", change.completed),
        ("Failed", change.failed),
        ("Re-queued for a follow-up batch", change.requeued),
        ("Tickets refined", change.tickets_refined),
        ("Tickets added or moved", change.tickets_moved),
        ("Reports", change.reports),
    ):
        if ids:
            # Job ids and file names come from hand-editable state: one line each, so that none can
            # add a line (a "Co-authored-by:" trailer, say) to the bot's commit.
            body.append(f"{label}: {', '.join(_one_line(i) for i in ids)}")
    if change.ledger_lines:
        body.append(f"Ledger: {_n(change.ledger_lines, 'line')} added, cost ${change.cost_usd:.4f}")
    if workflow:
        body.append(f"Workflow: {workflow}")
    if run_url:
        body.append(f"Run: {run_url}")
    return subject + ("\n\n" + "\n".join(body) if body else "") + "\n"


# ---- commit and push


@dataclass
class CommitResult:
    committed: bool
    sha: str | None = None
    subject: str | None = None
    pushed: bool = False
    attempts: int = 0
    rebased: int = 0
    notes: list[str] = field(default_factory=list)


def _paths(git: Git, data_dir: str) -> list[str]:
    keep = []
    for path in (STATE_DIR, data_dir):
        if (git.root / path).exists() or git.out("ls-files", "--", path).strip():
            keep.append(path)
    return keep


def stage(git: Git, data_dir: str) -> bool:
    """Stage the state and the tickets; True if anything is staged."""
    paths = _paths(git, data_dir)
    if not paths:
        return False
    git.run("add", "-A", "--", *paths)
    staged = git.out("diff", "--cached", "--name-only", "-z", "--", STATE_DIR).split("\0")
    stray = [p for p in staged if p and (p == LOCK_PATH or p.endswith(_NOT_STATE_SUFFIXES))]
    if stray:
        git.run("reset", "-q", "--", *stray)
    return git.run("diff", "--cached", "--quiet", check=False).returncode == 1


def driver_config(executable: str | None = None) -> list[tuple[str, str]]:
    exe = shlex.quote(executable or sys.executable)
    config = []
    for path, name in _DRIVERS.items():
        kind = "queue" if path == QUEUE_PATH else "ledger"
        config.append((f"merge.{name}.name", f"batch-ops {kind} merge (by record, never by text)"))
        config.append((f"merge.{name}.driver", f"{exe} -m batch_ops merge-state {kind} %O %A %B"))
    return config


def install_attributes(git: Git) -> None:
    """Route the queue and the ledger to the merge drivers (``.git/info/attributes``, not committed)."""
    path = git.git_path("info/attributes")
    path.parent.mkdir(parents=True, exist_ok=True)
    text = path.read_text(encoding="utf-8") if path.exists() else ""
    wanted = [f"/{p} merge={name}" for p, name in _DRIVERS.items()]
    missing = [w for w in wanted if w not in text.splitlines()]
    if missing:
        if text and not text.endswith("\n"):
            text += "\n"
        path.write_text(text + "".join(w + "\n" for w in missing), encoding="utf-8")


def _unmerged(git: Git) -> dict[str, set[int]]:
    stages: dict[str, set[int]] = {}
    for line in git.out("ls-files", "-u", "-z").split("\0"):
        if not line.strip():
            continue
        meta, _, path = line.partition("\t")
        stages.setdefault(path, set()).add(int(meta.split()[2]))
    return stages


def _rebase(git: Git, upstream: str, data_dir: str, notes: list[str]) -> None:
    """Rebase onto ``upstream``; settle what the drivers could not by the module's rules."""
    result = git.run("rebase", upstream, check=False)
    for _ in range(10):
        if result.returncode == 0:
            return
        unmerged = _unmerged(git)
        if not unmerged:
            git.run("rebase", "--abort", check=False)
            raise GitError(f"rebase onto the remote failed: {git.tail(result)}")
        for path, stages in unmerged.items():
            if path in _DRIVERS:
                git.run("rebase", "--abort", check=False)
                raise MergeConflict(f"{path}: {git.tail(result)}")
            # During a rebase, stage 2 ("ours") is the remote and stage 3 ("theirs") is this run.
            take = 2 if path.startswith(data_dir.rstrip("/") + "/") else 3
            if take == 2:
                notes.append(f"{path} was changed on the remote meanwhile: kept the remote's version")
            if take in stages:
                git.run("checkout", "--ours" if take == 2 else "--theirs", "--", path)
                git.run("add", "--", path)
            else:
                git.run("rm", "-q", "--cached", "--ignore-unmatch", "--", path)
                (git.root / path).unlink(missing_ok=True)
        result = git.run("-c", "core.editor=true", "rebase", "--continue", check=False)
    git.run("rebase", "--abort", check=False)
    raise GitError("rebase did not finish after 10 rounds of conflict resolution")


def current_branch(git: Git) -> str:
    result = git.run("symbolic-ref", "--quiet", "--short", "HEAD", check=False)
    branch = result.stdout.strip()
    if result.returncode != 0 or not branch:
        raise GitError("HEAD is detached: pass --branch (the branch to push to)")
    return branch


def commit_state(
    git: Git,
    *,
    data_dir: str,
    branch: str,
    remote: str = "origin",
    attempts: int = 5,
    backoff: float = 2.0,
    push: bool = True,
    run_url: str | None = None,
    workflow: str | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> CommitResult:
    """Stage, commit (only if something changed) and push with bounded fetch-rebase-retry."""
    if not stage(git, data_dir):
        return CommitResult(committed=False)
    message = commit_message(describe_change(git, data_dir), run_url=run_url, workflow=workflow)
    git.run("commit", "-q", "--no-verify", "-F", "-", input_text=message)
    result = CommitResult(committed=True, subject=message.splitlines()[0])
    if push:
        install_attributes(git)
        git.config = [*git.config, *driver_config()]
        last = ""
        for attempt in range(1, max(attempts, 1) + 1):
            result.attempts = attempt
            pushed = git.run("push", "--porcelain", remote, f"HEAD:refs/heads/{branch}", check=False, network=True)
            if pushed.returncode == 0:
                result.pushed = True
                break
            last = git.tail(pushed)
            if attempt == attempts:
                break
            sleep(backoff * (2.0 ** (attempt - 1)))
            fetched = git.run("fetch", "--quiet", "--no-tags", remote, branch, check=False, network=True)
            if fetched.returncode != 0:
                last = git.tail(fetched)
                continue
            _rebase(git, "FETCH_HEAD", data_dir, result.notes)
            result.rebased += 1
        if not result.pushed:
            raise GitError(f"push to {remote}/{branch} failed after {result.attempts} attempt(s): {last}")
    result.sha = git.out("rev-parse", "HEAD").strip()
    return result
