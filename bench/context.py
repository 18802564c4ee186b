"""The run's shared state: scale, work directory, and the generated backlogs the figures reuse."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from bench import corpus
from bench.harness import scaled


@dataclass
class Context:
    workdir: Path
    scale: float
    repeats: int = 5  # measured/baseline pairs per ratio figure (``harness.paired``)
    log: list[str] = field(default_factory=list)

    def say(self, message: str) -> None:
        print(f"  .. {message}", flush=True)
        self.log.append(message)

    def n(self, full: int, minimum: int = 1) -> int:
        return scaled(full, self.scale, minimum)

    def big_backlog(self) -> Path:
        """100,000 tickets at full scale, 1 % of them in planted duplicate pairs."""
        n = self.n(100_000, 100)
        if not (self.workdir / f"backlog-{n}").exists():
            self.say(f"generating {n:,} tickets")
        return corpus.backlog(self.workdir, f"backlog-{n}", n, duplicates=n // 200, seed=11)

    def mid_backlog(self) -> Path:
        """10,000 tickets at full scale, 1 % of them in planted duplicate pairs."""
        n = self.n(10_000, 100)
        if not (self.workdir / f"backlog-{n}").exists():
            self.say(f"generating {n:,} tickets")
        return corpus.backlog(self.workdir, f"backlog-{n}", n, duplicates=n // 200, seed=11)

    def small_backlog(self) -> Path:
        """The small reference set (same at every scale): 500 tickets, 10 planted pairs."""
        return corpus.backlog(self.workdir, "backlog-small", 500, duplicates=10, seed=3)
