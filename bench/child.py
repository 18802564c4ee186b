"""Run one measured call in this fresh process: ``python -m bench.child module:function '{json args}'``.

The module is imported before the clock starts (imports are not the product's work per item, but
their memory counts in the peak RSS, as it would in a real run). The function may return a dict of
extra facts; if it holds ``wall_s`` that replaces the measured wall time (a baseline that must
exclude its own preparation times only the part that counts).
"""

from __future__ import annotations

import gc
import importlib
import json
import resource
import sys
import time

from bench.harness import RESULT_TAG, peak_rss_mb


def main(argv: list[str]) -> int:
    target, raw_args = argv[1], argv[2]
    module_name, func_name = target.split(":")
    func = getattr(importlib.import_module(module_name), func_name)
    args = json.loads(raw_args)
    gc.collect()
    before = resource.getrusage(resource.RUSAGE_SELF)
    start = time.perf_counter()
    info = func(**args) or {}
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    wall = float(info.pop("wall_s", wall))
    result = {"wall_s": wall, "cpu_s": cpu, "peak_rss_mb": peak_rss_mb(), "info": info}
    sys.stdout.flush()
    print(RESULT_TAG + json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
