"""Run every benchmark; each prints its figures beside the peer's, as ratios.

python benchmarks/run.py            # all
python benchmarks/run.py core       # only bench_core.py
"""

from __future__ import annotations

import importlib
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

ORDER = [
    "strategies",
    "selector",
    "core",
    "supervision",
    "levels",
    "standby",
    "children",
    "telemetry",
    "scrape",
    "mediation",
    "memory",
    "recover",
    "dashboard",
    "cluster",
    "delivery",
    "async",
    "scale",
    "passivation",
    "pipeline",
]


def main(argv: list[str]) -> int:
    names = argv or ORDER
    started = time.time()
    for name in names:
        module = importlib.import_module(f"bench_{name}")
        module.run()
    print(f"\n(all benchmarks took {time.time() - started:.0f}s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
