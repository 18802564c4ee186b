"""Figure 4: duplicate candidates, zero tokens, on backlogs with planted duplicate pairs.

Measured: the duplicate-detection phase's candidate generator (``similarity.ticket_candidates``
with the default ``Params``, which the phase and ``batch-ops duplicates --candidates`` use too: 3
per ticket) over every pending ticket, in a fresh process, at 10,000 and 100,000 tickets (the backlog scan
before it is not timed: it is figure 3; its time is in the notes); recall is the share of planted
pairs found among the candidates, compared with the recall on the small reference set (500
tickets, 10 pairs). Peak RSS is the whole process, scan included.
"""

from __future__ import annotations

import importlib
import time
from pathlib import Path
from typing import Any

from bench import corpus
from bench.context import Context
from bench.harness import Row, rate, run_child


def find_generator() -> Any | None:
    """The zero-token candidate generator (``batch_ops.similarity.ticket_candidates``), if present."""
    try:
        module = importlib.import_module("batch_ops.similarity")
    except ImportError:
        return None
    func = getattr(module, "ticket_candidates", None)
    return func if callable(func) else None


def candidates(repo: str, pairs: list[list[str]]) -> dict[str, Any]:
    """Scan (untimed), then time the candidate step over every pending ticket."""
    from batch_ops.backlog import scan_backlog
    from batch_ops.similarity import recall, ticket_candidates

    started = time.perf_counter()
    scan = scan_backlog(Path(repo))
    scanned = time.perf_counter() - started
    started = time.perf_counter()
    found = ticket_candidates(scan.pending)  # the default Params: what the phase judges
    spent = time.perf_counter() - started
    planted = [(a, b) for a, b in pairs]
    return {
        "wall_s": spent,
        "scan_s": scanned,
        "tickets": len(scan.pending),
        "candidates": len(found),
        "recall": recall(found, planted),
    }


def run(ctx: Context) -> list[Row]:
    if find_generator() is None:
        return [
            Row(
                figure="4",
                what="duplicate candidates",
                size="10k and 100k tickets",
                bar="<= 10 s / <= 120 s",
                notes=[
                    "fig 4: not available yet: the duplicate-candidate generator (branch `phases`) is not on "
                    "main; the harness runs once it lands"
                ],
            )
        ]
    rows: list[Row] = []
    small = ctx.small_backlog()
    ref = run_child("bench.fig_duplicates:candidates", {"repo": str(small), "pairs": corpus.planted_pairs(small)})
    ref_recall = float(ref.info["recall"])
    for figure, root, bar_s in (("4a", ctx.mid_backlog(), 10.0), ("4b", ctx.big_backlog(), 120.0)):
        m = run_child("bench.fig_duplicates:candidates", {"repo": str(root), "pairs": corpus.planted_pairs(root)})
        recall = float(m.info["recall"])
        ok = m.wall_s <= bar_s and recall >= ref_recall and (figure != "4b" or m.peak_rss_mb <= 2048)
        rows.append(
            Row(
                figure=figure,
                what="duplicate candidates",
                size=f"{m.info['tickets']:,} tickets",
                wall_s=m.wall_s,
                rss_mb=m.peak_rss_mb,
                throughput=rate(m.info["tickets"], m.wall_s, "tickets"),
                bar=f"<= {bar_s:g} s, recall >= {ref_recall:.2f}" + (", RSS <= 2 GB" if figure == "4b" else ""),
                ok=ok,
                notes=[
                    f"fig {figure}: {m.info['candidates']:,} candidates "
                    f"({m.info['candidates'] / max(1, m.info['tickets']):.2f} per ticket), recall {recall:.3f} "
                    f"(reference set {ref_recall:.3f}); the scan before it {m.info['scan_s']:.1f}s"
                ],
            )
        )
    return rows
