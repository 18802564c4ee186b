"""Figure 3: triage and deterministic validation of a whole backlog.

Measured: ``triage.triage_backlog``, what ``batch-ops triage`` does before it prints, in a fresh
process: the scan (read, decode, parse front matter and sections of every ticket) streamed into
triage (the deterministic checks and the triage rules) of every pending ticket as it is read.

Baseline: reading the same files and splitting each into front matter (``key: value`` lines) and
``## `` sections, with no YAML parser and no rules.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from batch_ops.config import load_config
from batch_ops.triage import triage_backlog
from bench.context import Context
from bench.harness import Row, paired, rate, run_child

_SECTION = re.compile(r"^## ", re.MULTILINE)


def triage_all(repo: str) -> dict[str, Any]:
    """What ``batch-ops triage`` does before it prints: the streamed scan and triage."""
    root = Path(repo)
    config = load_config(root)
    results, problems, tickets = triage_backlog(root, config.backlog.data_dir, config.ticket_validation)
    counts: dict[str, int] = {}
    for res in results.values():
        counts[res.bucket] = counts.get(res.bucket, 0) + 1
    return {"tickets": tickets, "problems": len(problems), "buckets": counts}


def baseline(repo: str) -> dict[str, Any]:
    pending = Path(repo) / "backlog" / "data" / "pending"
    n = 0
    for path in sorted(pending.glob("*.md")):
        text = path.read_bytes().decode("utf-8", errors="replace").replace("\r\n", "\n")
        end = text.find("\n---", 4)
        front = dict(line.partition(":")[::2] for line in text[4:end].split("\n"))
        sections = {part.partition("\n")[0]: part.partition("\n")[2] for part in _SECTION.split(text[end + 4 :])}
        n += bool(front) + bool(sections)
    return {"files": n // 2}


def _row(figure: str, repo: Path, bar_ratio: float | None, repeats: int) -> Row:
    pair = paired(
        lambda: run_child("bench.fig_triage:triage_all", {"repo": str(repo)}),
        lambda: run_child("bench.fig_triage:baseline", {"repo": str(repo)}),
        repeats,
        warmup=bar_ratio is not None,  # 3b (one run, no ratio bar) needs none
    )
    measured, base = pair.measured, pair.base
    tickets = int(measured.info["tickets"])
    ratio = pair.ratio
    finished = tickets > 0 and measured.info["problems"] == 0
    ok = finished and (bar_ratio is None or ratio <= bar_ratio)
    return Row(
        figure=figure,
        what="triage + validation of a backlog",
        size=f"{tickets:,} tickets",
        wall_s=measured.wall_s,
        rss_mb=pair.peak_rss_mb,
        throughput=rate(tickets, measured.wall_s, "tickets"),
        baseline_s=base.wall_s,
        ratio=ratio,
        bar=f"ratio <= {bar_ratio:g}" if bar_ratio is not None else "finishes",
        ok=ok,
        notes=[
            f"fig {figure}: buckets {measured.info['buckets']}; CPU {measured.cpu_s:.2f}s vs baseline CPU "
            f"{base.cpu_s:.2f}s (CPU ratio {measured.cpu_s / max(base.cpu_s, 1e-9):.2f}); {pair.note()}"
        ],
    )


def run(ctx: Context) -> list[Row]:
    # 3b has no ratio bar (it must finish): one run of it is enough.
    return [_row("3a", ctx.mid_backlog(), 2.0, ctx.repeats), _row("3b", ctx.big_backlog(), None, 1)]
