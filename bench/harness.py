"""What every benchmark shares: child processes, the sandbox process, result rows and the table.

Each measurement runs in a child process of its own (``python -m bench.child module:function``), so
one figure's memory never inflates another's and peak RSS is the child's own ``VmHWM``. The sandbox
runs in a process of its own too: the figures measure the client, and the sandbox only competes for
the same two cores as a real network peer would not.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULT_TAG = "BENCH-RESULT "
API_KEY = "sk-ant-bench-key-for-sandbox"


class BenchError(RuntimeError):
    pass


def peak_rss_mb(pid: int | str = "self") -> float:
    """High-water mark of resident memory (VmHWM) of a process, in MB."""
    with open(f"/proc/{pid}/status", encoding="ascii") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    raise BenchError(f"no VmHWM for process {pid}")


@dataclass
class Measured:
    """What one child reported: wall seconds of the measured call, CPU seconds, peak RSS, extras."""

    wall_s: float
    cpu_s: float
    peak_rss_mb: float
    info: dict[str, Any] = field(default_factory=dict)


def child_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env.setdefault("ANTHROPIC_API_KEY", API_KEY)
    env["PYTHONHASHSEED"] = "0"
    env.update(extra or {})
    return env


def run_child(
    target: str, args: dict[str, Any], *, env: dict[str, str] | None = None, timeout: float = 3600
) -> Measured:
    """Run ``module:function(**args)`` in a fresh interpreter and return what it measured."""
    cmd = [sys.executable, "-m", "bench.child", target, json.dumps(args)]
    proc = subprocess.run(
        cmd, cwd=ROOT, env=child_env(env), capture_output=True, text=True, timeout=timeout, check=False
    )
    if proc.returncode != 0:
        raise BenchError(f"{target} exited {proc.returncode}: {proc.stderr.strip()[-3000:]}")
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith(RESULT_TAG):
            data = json.loads(line[len(RESULT_TAG) :])
            return Measured(**data)
    raise BenchError(f"{target} printed no result line; stderr: {proc.stderr.strip()[-3000:]}")


@dataclass
class Paired:
    """A figure measured beside its baseline several times; the pair with the median ratio stands."""

    measured: Measured
    base: Measured
    ratios: list[float]  # wall ratio of every pair, in the order they ran
    peak_rss_mb: float  # the highest peak of all the measured runs (the bar is a ceiling)

    @property
    def ratio(self) -> float:
        return self.measured.wall_s / self.base.wall_s

    def note(self) -> str:
        shown = ", ".join(f"{r:.2f}" for r in self.ratios)
        return f"ratios of the {len(self.ratios)} measured/baseline pairs {shown}; the median pair is shown"


def paired(
    measure: Callable[[], Measured],
    base: Callable[[], Measured],
    repeats: int,
    *,
    prepare: Callable[[int], None] | None = None,
    warmup: bool = False,
) -> Paired:
    """``measure`` then ``base``, back to back, ``repeats`` times (``prepare(i)`` before each pair,
    untimed: e.g. the state a measured run consumes is put back).

    The machine is shared: one slow moment (another tenant, reclaimed page cache) can land on
    either side of a single pair and move its ratio by half. Each pair still runs on the same
    data at nearly the same time, and the median of their ratios is what one such moment cannot
    move. Every ratio is printed in the figure's notes.

    ``warmup``: one pair first, not recorded, for a figure whose first pair runs in a state the
    later ones do not (figure 3a: in 7 of 8 runs its first pair had the highest ratio of the five,
    2.3 to 4.2 against medians near 2, whatever the figure before it). Every recorded pair then
    follows a run of both sides on the same data.
    """
    if warmup:
        measure()
        base()
    runs: list[tuple[Measured, Measured]] = []
    for i in range(max(1, repeats)):
        if prepare is not None:
            prepare(i)
        m = measure()
        runs.append((m, base()))
    ratios = [m.wall_s / b.wall_s for m, b in runs]
    middle = sorted(range(len(runs)), key=lambda i: ratios[i])[len(runs) // 2]
    m, b = runs[middle]
    return Paired(measured=m, base=b, ratios=ratios, peak_rss_mb=max(r[0].peak_rss_mb for r in runs))


class Sandbox:
    """``batch-ops sandbox serve`` in a process of its own, on a free loopback port."""

    def __init__(
        self,
        workdir: Path,
        *,
        processing_seconds: float = 0.5,
        scenario: dict[str, Any] | None = None,
        max_body_bytes: int | None = None,
    ) -> None:
        cmd = [
            sys.executable, "-m", "batch_ops", "sandbox", "serve",
            "--port", "0", "--processing-seconds", str(processing_seconds),
        ]  # fmt: skip
        if scenario is not None:
            path = workdir / f"scenario-{time.monotonic_ns()}.json"
            path.write_text(json.dumps(scenario), encoding="utf-8")
            cmd += ["--scenario", str(path)]
        if max_body_bytes is not None:
            cmd += ["--max-body-bytes", str(max_body_bytes)]
        self._log = open(workdir / "sandbox.log", "ab")  # noqa: SIM115 - closed in close()
        self.proc = subprocess.Popen(
            cmd, cwd=ROOT, env=child_env(), stdout=subprocess.PIPE, stderr=self._log, text=True
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if "listening on" not in line:
            self.close()
            raise BenchError(f"sandbox did not start: {line!r}")
        self.url = line.rsplit(" ", 1)[1].strip()

    def _get(self, path: str) -> Any:
        with urllib.request.urlopen(self.url + path, timeout=60) as resp:
            return json.loads(resp.read())

    def calls(self) -> dict[str, int]:
        """Calls per endpoint so far (the admin endpoints are not counted)."""
        calls: dict[str, int] = self._get("/_sandbox/stats")["calls"]
        return calls

    def busy_seconds(self) -> dict[str, float]:
        """Seconds the sandbox spent per endpoint after reading each request's body."""
        busy: dict[str, float] = self._get("/_sandbox/stats")["busy_seconds"]
        return busy

    def batch(self, batch_id: str) -> dict[str, Any]:
        req = urllib.request.Request(f"{self.url}/v1/messages/batches/{batch_id}", headers={"x-api-key": API_KEY})
        with urllib.request.urlopen(req, timeout=60) as resp:
            data: dict[str, Any] = json.loads(resp.read())
        return data

    def wait_ended(self, batch_id: str, timeout: float = 600) -> None:
        give_up = time.monotonic() + timeout
        while self.batch(batch_id)["processing_status"] != "ended":
            if time.monotonic() > give_up:
                raise BenchError(f"batch {batch_id} did not end within {timeout}s")
            time.sleep(0.2)

    def download(self, batch_id: str, dest: Path) -> int:
        """Stream a batch's results to ``dest`` with plain HTTP; returns the bytes written."""
        req = urllib.request.Request(
            f"{self.url}/v1/messages/batches/{batch_id}/results", headers={"x-api-key": API_KEY}
        )
        total = 0
        with urllib.request.urlopen(req, timeout=3600) as resp, open(dest, "wb") as out:
            while chunk := resp.read(1 << 20):
                out.write(chunk)
                total += len(chunk)
        return total

    def create(self, body_parts: Any) -> dict[str, Any]:
        """POST a batch whose JSON body comes as an iterable of bytes (sent chunked)."""
        req = urllib.request.Request(
            f"{self.url}/v1/messages/batches",
            data=body_parts,
            method="POST",
            headers={"x-api-key": API_KEY, "content-type": "application/json"},
        )
        with urllib.request.urlopen(req, timeout=3600) as resp:
            data: dict[str, Any] = json.loads(resp.read())
        return data

    def peak_rss_mb(self) -> float:
        return peak_rss_mb(self.proc.pid)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        self._log.close()

    def __enter__(self) -> Sandbox:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


@dataclass
class Row:
    """One line of the table. ``ok`` is None for a figure with nothing to judge."""

    figure: str
    what: str
    size: str
    wall_s: float | None = None
    rss_mb: float | None = None
    throughput: str = ""
    baseline_s: float | None = None
    ratio: float | None = None
    bar: str = ""
    ok: bool | None = None
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def rate(count: float, seconds: float | None, unit: str) -> str:
    if not seconds:
        return ""
    per = count / seconds
    if per >= 10_000:
        return f"{per / 1000:,.0f}k {unit}/s"
    return f"{per:,.0f} {unit}/s"


def _fmt(value: float | None, spec: str) -> str:
    return "—" if value is None else format(value, spec)


COLUMNS = (
    ("fig", 4), ("what", 34), ("size", 22), ("wall s", 8), ("peak RSS MB", 11), ("throughput", 16),
    ("baseline s", 10), ("ratio", 6), ("bar", 30), ("result", 6),
)  # fmt: skip


def table(rows: list[Row], *, markdown: bool = False) -> str:
    cells = [
        [
            r.figure,
            r.what,
            r.size,
            _fmt(r.wall_s, ".2f"),
            _fmt(r.rss_mb, ".0f"),
            r.throughput or "—",
            _fmt(r.baseline_s, ".2f"),
            _fmt(r.ratio, ".2f"),
            r.bar or "—",
            {True: "PASS", False: "FAIL", None: "—"}[r.ok],
        ]
        for r in rows
    ]
    if markdown:
        head = "| " + " | ".join(name for name, _ in COLUMNS) + " |"
        sep = "| " + " | ".join("---" for _ in COLUMNS) + " |"
        return "\n".join([head, sep] + ["| " + " | ".join(c) + " |" for c in cells])
    widths = [max(w, *(len(c[i]) for c in cells)) if cells else w for i, (_, w) in enumerate(COLUMNS)]
    lines = ["  ".join(name.ljust(widths[i]) for i, (name, _) in enumerate(COLUMNS))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(c[i].ljust(widths[i]) for i in range(len(COLUMNS))) for c in cells]
    return "\n".join(lines)


def scaled(full: int, scale: float, minimum: int = 1) -> int:
    return max(minimum, round(full * scale))
