"""Recall of the zero-token duplicate-candidate step on labelled synthetic backlogs.

    .venv/bin/python bench/duplicates_recall.py                      # 2,000 tickets, 120 planted pairs
    .venv/bin/python bench/duplicates_recall.py --tickets 10000 --duplicates 500 --per-ticket 5 3 1

Writes the backlog with ``batch_ops.testing.ticketgen`` (planted pairs are reworded: another title,
synonyms, reordered sentences, a different ticket kind at times, never copies), reads it with the
real scanner, runs ``similarity.ticket_candidates`` with at most K candidates per ticket and prints
the share of planted pairs found, the pair count and the time taken. No model is involved.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
import time
from pathlib import Path

from batch_ops.backlog import scan_backlog
from batch_ops.similarity import Params, recall, ticket_candidates
from batch_ops.testing.ticketgen import generate_backlog


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tickets", type=int, default=2000)
    parser.add_argument("--duplicates", type=int, default=120)
    parser.add_argument("--per-ticket", type=int, nargs="+", default=[Params().per_ticket])
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory(prefix="dup-recall-") as tmp:
        made = generate_backlog(Path(tmp), args.tickets, duplicates=args.duplicates, seed=args.seed)
        start = time.perf_counter()
        scan = scan_backlog(Path(tmp))
        scan_s = time.perf_counter() - start
        for k in args.per_ticket:
            start, cpu = time.perf_counter(), time.process_time()
            found = ticket_candidates(scan.pending, Params(per_ticket=k))
            wall, cpu = time.perf_counter() - start, time.process_time() - cpu
            hit = recall(found, made.pairs)
            rows.append(
                {
                    "tickets": len(scan.pending),
                    "planted_pairs": len(made.pairs),
                    "candidates_per_ticket": k,
                    "candidate_pairs": len(found),
                    "pairs_per_ticket": round(len(found) / max(1, len(scan.pending)), 2),
                    "recall": round(hit, 4),
                    "found": round(hit * len(made.pairs)),
                    "candidate_seconds": round(wall, 2),
                    "candidate_cpu_seconds": round(cpu, 2),
                    "scan_seconds": round(scan_s, 2),
                    "max_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024,
                    "seed": args.seed,
                }
            )
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    for r in rows:
        print(
            f"tickets {r['tickets']}, planted pairs {r['planted_pairs']}, <= {r['candidates_per_ticket']} "
            f"candidates per ticket ({r['candidate_pairs']} pairs, {r['pairs_per_ticket']} per ticket): "
            f"recall {r['recall']:.3f} ({r['found']}/{r['planted_pairs']}); candidates {r['candidate_seconds']} s "
            f"({r['candidate_cpu_seconds']} s CPU; scan {r['scan_seconds']} s; max RSS {r['max_rss_mb']} MB)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
