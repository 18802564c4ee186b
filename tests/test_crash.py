"""Crash safety (issue #3 §4): SIGKILL ``submit`` and ``reconcile`` at many instants, then check
through the sandbox's own list of batches that none was created twice, and that a clean
``cycle --wait`` brings every job to ``completed`` or ``failed`` with the ledger written once.

Kill points are chosen two ways: by the engine's ``crashpoint`` hook (``BATCH_OPS_CRASH_AT=
label:n`` kills the process at the n-th pass of that label) and by time (a SIGKILL after a random
delay, wherever the run happens to be). Runs are forked from a pre-imported process
(``crash_zygote.py``) to keep the test fast; a few go through ``python -m batch_ops`` as well.
The sandbox lives in the pytest process, so it outlives every client it serves.

By default every crash point gets 2 kills and 16 more runs are killed by time (over 50 kills);
``BATCH_OPS_CRASH_PER_POINT=N`` runs a longer variant (N kills per point, 8N by time).
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from batch_ops.engine import CRASH_POINTS
from batch_ops.paths import Layout
from batch_ops.sandbox import SandboxServer
from tests.conftest import TEST_KEY
from tests.policy_support import (  # validation_only_in_batch: autouse, active where imported
    assert_ledger_once,
    assert_no_duplicate_batches,
    configure,
    jobs,
    results,
    validation_only_in_batch,  # noqa: F401
)

ZYGOTE = Path(__file__).with_name("crash_zygote.py")
# Kills wanted at each crash point, and kills by time; BATCH_OPS_CRASH_PER_POINT scales it up.
PER_POINT = int(os.environ.get("BATCH_OPS_CRASH_PER_POINT", "2"))
TIMED_KILLS = 8 * PER_POINT
MAX_RUNS = 120 * PER_POINT
SEED = int(os.environ.get("BATCH_OPS_CRASH_SEED", "20260218"))
SUBMIT_POINTS = tuple(p for p in CRASH_POINTS if p.startswith("submit.") and p != "submit.doubt-cleared")
SETTLE_POINTS = tuple(p for p in CRASH_POINTS if p.startswith("reconcile.") and p != "reconcile.polled")
END_POINTS = ("reconcile.next-round", "finish.results-written", "finish.applied", "finish.closed")




@dataclass
class Tally:
    runs: int = 0
    killed_by_hook: Counter[str] = field(default_factory=Counter)
    hook_not_reached: int = 0
    killed_by_time: int = 0
    timed_finished_first: int = 0
    kill_delays: list[float] = field(default_factory=list)
    clean_runs: int = 0


class Zygote:
    def __init__(self, env: dict[str, str], out_dir: Path) -> None:
        self.out_dir = out_dir
        self.proc = subprocess.Popen(
            [sys.executable, str(ZYGOTE)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )
        self.count = 0

    def run(self, argv: list[str], env: dict[str, str | None] | None = None, kill_after: float | None = None) -> int:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.count += 1
        out = self.out_dir / f"run-{self.count:03d}-{argv[0]}.log"
        request = {"argv": argv, "env": env or {}, "out": str(out), "kill_after": kill_after}
        self.proc.stdin.write(json.dumps(request) + "\n")
        self.proc.stdin.flush()
        json.loads(self.proc.stdout.readline())  # the child's pid: it is running
        status = int(json.loads(self.proc.stdout.readline())["status"])
        if status not in (0, -signal.SIGKILL):
            raise AssertionError(f"{argv} exited {status}:\n{out.read_text()}")
        return status

    def close(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        self.proc.wait(timeout=30)


@pytest.fixture
def zygote_env(tmp_path: Path) -> Iterator[tuple[SandboxServer, dict[str, str]]]:
    # Batches hold 3 requests: the third of each errors, so every job has a follow-up round.
    scenario = {"requests": {"errored_every": 3, "errored_type": "overloaded_error"}}
    with SandboxServer(processing_seconds=0.15, scenario=scenario) as srv:
        env = {
            **os.environ,
            "ANTHROPIC_BASE_URL": srv.url,
            "ANTHROPIC_API_KEY": TEST_KEY,
            "BATCH_OPS_HTTP_TIMEOUT": "10",
            "BATCH_OPS_MAX_BATCH_REQUESTS": "3",
            "BATCH_OPS_ADOPT_GRACE": "0.2",
        }
        env.pop("BATCH_OPS_CRASH_AT", None)
        yield srv, env


def _touch_tickets(repo: Path, epoch: int) -> None:
    """Change every pending ticket so the next enqueue makes new jobs of them."""
    for path in sorted((repo / "backlog/data/pending").glob("*.md")):
        data = path.read_bytes()
        if data.strip():
            path.write_bytes(data + f"\nRevision {epoch}.\n".encode())


def _reachable(repo: Path, srv: SandboxServer) -> set[str]:
    """The crash points the next run can reach, judged from the queue and the sandbox."""
    state = {b["id"]: b["processing_status"] for b in srv.batch_summaries()}
    found: set[str] = set()
    for job in jobs(repo):
        if job.terminal:
            continue
        current = [b for b in job.batches if b.round == job.round]
        if not job.round_submitted:
            found.update(SUBMIT_POINTS)
        if any(b.status == "creating" and b.doubt for b in job.batches):
            found.add("submit.doubt-cleared")
        for ref in job.batches:
            if ref.status == "in_progress":
                found.add("reconcile.polled")
            ended = ref.id is not None and state.get(ref.id) == "ended"
            if (ref.status in ("in_progress", "ended") and ended) or ref.status in ("downloaded", "lost"):
                found.update(SETTLE_POINTS)
        settling = [b for b in current if b.status not in ("settled", "rejected")]
        if job.round_submitted and all(b.id is not None and state.get(b.id) == "ended" for b in settling):
            found.update(END_POINTS)
    return found


def _pick(rng: random.Random, reachable: set[str], tally: Tally) -> str | None:
    """The reachable point killed least so far (ties broken at random), if any still needs kills."""
    wanted = [p for p in CRASH_POINTS if p in reachable and tally.killed_by_hook[p] < PER_POINT]
    if not wanted:
        return None
    # A create in doubt without its batch is rare (it takes a kill just before the call) and the
    # next run resolves it whatever it is asked to do: take the chance when it is there.
    if "submit.doubt-cleared" in wanted:
        return "submit.doubt-cleared"
    least = min(tally.killed_by_hook[p] for p in wanted)
    return rng.choice([p for p in wanted if tally.killed_by_hook[p] == least])


def test_sigkill_at_many_points_loses_no_job_and_creates_no_batch_twice(
    sample_repo: Path, tmp_path: Path, zygote_env: tuple[SandboxServer, dict[str, str]]
) -> None:
    srv, env = zygote_env
    repo = sample_repo
    configure(repo, maxConcurrentBatchJobs=4)
    rng = random.Random(SEED)
    logs = tmp_path / "logs"
    logs.mkdir()
    tally = Tally()
    enqueued: list[str] = []
    zygote = Zygote(env, logs)
    base = ["--repo", str(repo)]

    def enqueue(epoch: int) -> None:
        if epoch:
            _touch_tickets(repo, epoch)
        before = {j.id for j in jobs(repo)}
        assert zygote.run(["enqueue", *base]) == 0
        enqueued.extend(j.id for j in jobs(repo) if j.id not in before)

    def hook_run(command: str, label: str, hit: int | None = None) -> bool:
        # A create in doubt is usually the only one of its run: its hook must fire at the first hit.
        if hit is None:
            hit = 1 if label == "submit.doubt-cleared" else rng.choice((1, 1, 2))
        status = zygote.run([command, *base], env={"BATCH_OPS_CRASH_AT": f"{label}:{hit}"})
        tally.runs += 1
        if status == -signal.SIGKILL:
            tally.killed_by_hook[label] += 1
            return True
        tally.hook_not_reached += 1
        return False

    def timed_run(command: str) -> None:
        delay = rng.uniform(0.005, 0.15)
        status = zygote.run([command, *base], kill_after=delay)
        tally.runs += 1
        if status == -signal.SIGKILL:
            tally.killed_by_time += 1
            tally.kill_delays.append(delay)
        else:
            tally.timed_finished_first += 1

    def hooks_done() -> bool:
        return all(tally.killed_by_hook[p] >= PER_POINT for p in CRASH_POINTS)

    started = time.monotonic()
    epoch = 0
    try:
        enqueue(0)
        while tally.runs + tally.clean_runs < MAX_RUNS and not (hooks_done() and tally.killed_by_time >= TIMED_KILLS):
            found = jobs(repo)
            if all(j.terminal for j in found) or sum(1 for j in found if not j.terminal) < 2:
                epoch += 1
                enqueue(epoch)  # new work arrives while older jobs are mid-flight
            label = None if hooks_done() else _pick(rng, _reachable(repo, srv), tally)
            if label != "submit.doubt-cleared" and tally.killed_by_time < TIMED_KILLS and rng.random() < 0.25:
                timed_run(rng.choice(("submit", "reconcile")))
            elif label is not None:
                command = "submit" if label in SUBMIT_POINTS and rng.random() < 0.7 else "reconcile"
                hook_run(command, label)
            else:
                # Nothing to kill at right now: an uninterrupted run moves the work along.
                assert zygote.run([rng.choice(("submit", "reconcile")), *base]) == 0
                tally.clean_runs += 1
            time.sleep(0.03)
        # A busy machine can end the loop before a create was left in doubt often enough. Leave
        # one on purpose (kill right after the durable intent), then kill the run that clears it.
        for _ in range(6 * PER_POINT):
            if tally.killed_by_hook["submit.doubt-cleared"] >= PER_POINT:
                break
            if "submit.doubt-cleared" not in _reachable(repo, srv):
                if all(j.terminal or j.round_submitted for j in jobs(repo)):
                    epoch += 1
                    enqueue(epoch)
                if not hook_run("submit", "submit.intent-saved", hit=1):
                    assert zygote.run(["reconcile", *base]) == 0  # free a slot for the next create
                    tally.clean_runs += 1
                    continue
            hook_run("submit", "submit.doubt-cleared")
        forked_seconds = time.monotonic() - started
        # The real entry point too, killed where a batch exists that the queue does not name yet.
        for label in ("submit.created",):
            _touch_tickets(repo, 100 + tally.runs)
            assert zygote.run(["enqueue", *base]) == 0
            enqueued.extend(j.id for j in jobs(repo) if j.id not in enqueued)
            command = "submit" if label.startswith("submit.") else "reconcile"
            for _ in range(20):
                proc = subprocess.run(
                    [sys.executable, "-m", "batch_ops", command, *base],
                    env={**env, "BATCH_OPS_CRASH_AT": f"{label}:1"},
                    capture_output=True,
                    text=True,
                    timeout=120,
                )
                tally.runs += 1
                if proc.returncode == -signal.SIGKILL:
                    tally.killed_by_hook[label] += 1
                    break
                assert proc.returncode == 0, proc.stderr
                command = "submit" if command == "reconcile" else "reconcile"
                time.sleep(0.2)
        crash_seconds = time.monotonic() - started
        entry_point_seconds = crash_seconds - forked_seconds

        # Nothing is lost or doubled while the jobs are still half done...
        assert_no_duplicates_so_far(repo, srv)
        # ...and one clean cycle finishes everything.
        assert zygote.run(["cycle", *base, "--wait", "--poll", "0.1", "--timeout", "120"]) == 0
    finally:
        zygote.close()

    final = jobs(repo)
    lost = [j for j in enqueued if j not in {x.id for x in final}]
    unfinished = [j.id for j in final if j.status not in ("completed", "failed")]
    assert not lost and not unfinished, (lost, unfinished)
    assert_no_duplicate_batches(repo, srv)
    lines = assert_ledger_once(repo)
    for job in final:
        settled = results(repo, job)
        assert sorted(r.custom_id for r in settled) == sorted({r.custom_id for r in settled})
        assert len(settled) == job.request_count
    assert not list(Layout(repo).ops_dir.glob("batch-queue.quarantine.jsonl"))

    killed = sum(tally.killed_by_hook.values()) + tally.killed_by_time
    report = {
        "runs": tally.runs,
        "killed": killed,
        "killed_by_hook": sum(tally.killed_by_hook.values()),
        "kill_points_hit": len(tally.killed_by_hook),
        "kill_points": len(CRASH_POINTS),
        "per_point": dict(sorted(tally.killed_by_hook.items())),
        "killed_by_time": tally.killed_by_time,
        "time_kill_delays_s": [
            round(min(tally.kill_delays, default=0), 3),
            round(max(tally.kill_delays, default=0), 3),
        ],
        "hook_not_reached": tally.hook_not_reached,
        "timed_finished_first": tally.timed_finished_first,
        "clean_runs_between": tally.clean_runs,
        "jobs": len(final),
        "jobs_lost": len(lost) + len(unfinished),
        "batches_created": len(srv.batch_summaries()),
        "duplicate_batches": 0,
        "ledger_lines": len(lines),
        "completed": sum(1 for j in final if j.status == "completed"),
        "failed": sum(1 for j in final if j.status == "failed"),
        "forked_runs_seconds": round(forked_seconds, 1),
        "entry_point_runs_seconds": round(entry_point_seconds, 1),
    }
    print("\ncrash test:", json.dumps(report, indent=2))
    assert killed >= 50, report
    missed = sorted(p for p in CRASH_POINTS if tally.killed_by_hook[p] < PER_POINT)
    assert not missed, (missed, report)


def assert_no_duplicates_so_far(repo: Path, srv: SandboxServer) -> None:
    """Mid-way, a batch may exist that a ref in doubt has not adopted yet; no batch may be owned twice
    and no more than one may be unowned per ref still in doubt."""
    owned = [b.id for j in jobs(repo) for b in (*j.batches, *j.previous_batches) if b.id]
    assert len(owned) == len(set(owned))
    in_doubt = sum(1 for j in jobs(repo) for b in j.batches if b.status == "creating" and b.doubt)
    unowned = {b["id"] for b in srv.batch_summaries()} - set(owned)
    assert len(unowned) <= in_doubt, (unowned, in_doubt)
