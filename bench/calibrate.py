"""Row 0: a fixed CPU-bound reference (json.loads of the same 20 MB document, three times).

It is no bar: it shows how fast the machine was during this run, so two runs' tables can be compared.
"""

from __future__ import annotations

import json
import time
from typing import Any

from bench.context import Context
from bench.harness import Row, run_child


def reference() -> dict[str, Any]:
    doc = json.dumps([{"id": i, "text": "word " * 30, "n": [i, i + 1, i * 2.5]} for i in range(80_000)])
    started = time.perf_counter()
    for _ in range(3):
        json.loads(doc)
    return {"wall_s": time.perf_counter() - started, "mb": 3 * len(doc) / 1e6}


def run(ctx: Context) -> list[Row]:
    m = run_child("bench.calibrate:reference", {})
    mb = float(m.info["mb"])
    return [
        Row(
            figure="0",
            what="machine reference: json.loads",
            size=f"{mb:,.0f} MB",
            wall_s=m.wall_s,
            rss_mb=m.peak_rss_mb,
            throughput=f"{mb / m.wall_s:,.0f} MB/s",
        )
    ]
