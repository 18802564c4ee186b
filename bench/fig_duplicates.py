"""Figure 4: duplicate candidates, zero tokens, on backlogs with planted duplicate pairs.

Measured: the duplicate-detection phase's candidate generator over every pending ticket, in a
fresh process, at 10,000 and 100,000 tickets; recall is the share of planted pairs found among
the candidates, compared with the recall on the small reference set (500 tickets, 10 pairs).

The generator is being written on branch ``phases``; until it is on main this figure prints a
"not available yet" line.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

from bench import corpus
from bench.context import Context
from bench.harness import Row, rate, run_child

# Where the candidate generator may live once it lands, tried in order.
CANDIDATE_MODULES = ("batch_ops.phases.duplicates", "batch_ops.duplicates", "batch_ops.phases.duplicate_detection")


def find_generator() -> Any | None:
    for name in CANDIDATE_MODULES:
        try:
            module = importlib.import_module(name)
        except ImportError:
            continue
        func = getattr(module, "candidate_pairs", None) or getattr(module, "candidates", None)
        if callable(func):
            return func
    return None


def candidates(repo: str, pairs: list[list[str]]) -> dict[str, Any]:
    from batch_ops.backlog import scan_backlog

    func = find_generator()
    assert func is not None
    scan = scan_backlog(Path(repo))
    found = {tuple(sorted(p)) for p in func(scan.pending)}
    planted = {tuple(sorted(p)) for p in pairs}
    hit = len(found & planted)
    return {"tickets": len(scan.pending), "candidates": len(found), "recall": hit / len(planted) if planted else 1.0}


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
        ok = (
            m.wall_s <= bar_s * max(1.0, ctx.scale)
            and recall >= ref_recall
            and (figure != "4b" or m.peak_rss_mb <= 2048)
        )
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
                    f"fig {figure}: {m.info['candidates']:,} candidates, recall {recall:.3f} "
                    f"(reference set {ref_recall:.3f})"
                ],
            )
        )
    return rows
