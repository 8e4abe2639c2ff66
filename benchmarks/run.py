"""Run every benchmark; each prints its figures beside the peer's, as ratios.

python benchmarks/run.py            # all
python benchmarks/run.py core       # only bench_core.py

Each benchmark runs in a process of its own. A system's processes are forked from
the program that starts it and inherit its memory, and a fork costs more, and the
new process copies more pages, the more of it there is: run one after another in
one process, a benchmark would pay for the objects the ones before it left behind
(the start rates on real processes halved, raw Thespian's with them).
"""

from __future__ import annotations

import importlib
import subprocess
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
    if len(names) == 1:
        importlib.import_module(f"bench_{names[0]}").run()
        return 0
    failed = []
    for name in names:
        sys.stdout.flush()
        if subprocess.run([sys.executable, __file__, name], check=False).returncode:
            failed.append(name)
    print(f"\n(all benchmarks took {time.time() - started:.0f}s)")
    if failed:
        print(f"failed: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
