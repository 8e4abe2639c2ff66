"""Run the pool tree from its TOML file through a pricing outage and say what happened.

python -m examples.pool [--jobs 200] [--base simple|multiproc]
"""

from __future__ import annotations

import argparse
import collections
import os
import tempfile
import time
from pathlib import Path

from stalwart import StalwartError, load_tree, start

from .actors import Job

HERE = Path(__file__).resolve().parent


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m examples.pool", description=__doc__)
    parser.add_argument("--jobs", type=int, default=200)
    parser.add_argument("--base", choices=["simple", "multiproc"], default="simple")
    args = parser.parse_args(argv)
    tree_file = load_tree(HERE / "pool.toml")
    with tempfile.TemporaryDirectory(prefix="stalwart-pool-") as folder:
        os.chdir(folder)  # the outage flag and the final report live here
        options = tree_file.system_options(base=args.base, report_path=None)
        settings = {f: getattr(options, f) for f in options.__struct_fields__}
        with start(tree_file.tree, **settings) as system:
            sources: collections.Counter[str] = collections.Counter()
            errors: collections.Counter[str] = collections.Counter()
            outage = range(args.jobs // 3, args.jobs // 2)
            for i in range(args.jobs):
                if i == outage.start:
                    Path("pricing-down.flag").write_text("down")
                    print(f"job {i}: the pricing service goes down")
                if i == outage.stop:
                    Path("pricing-down.flag").unlink()
                    print(f"job {i}: the pricing service is back")
                try:
                    done = system.ask("pool/workers/w", Job(i, f"sku-{i % 25}"), timeout=15)
                    sources[done.source] += 1
                except StalwartError as exc:
                    errors[type(exc).__name__] += 1
                time.sleep(0.005)
            status = system.status()
            breaker = [e.detail for e in system.events() if e.kind == "breaker"]
            restarts = sum(s.restarts for s in status if s.path.startswith("pool/workers/"))
        answered = sum(sources.values())
        print(f"\n{answered} of {args.jobs} jobs answered: {dict(sources)}")
        print(f"errors: {dict(errors) or 'none'}")
        print(f"breaker states: {' -> '.join(breaker) or 'closed throughout'}")
        print(f"worker restarts: {restarts}")
    return 0 if answered == args.jobs else 1


if __name__ == "__main__":
    raise SystemExit(main())
