"""Run the whole suite several times, each from a clean clone, and list every test that failed.

    make flake            # 5 runs
    make flake N=10

Each run clones this checkout's HEAD (uncommitted changes are not tested) into a
temporary folder and runs pytest there with this checkout's virtual environment
(the clone's own code is imported: it comes first on the path). A test that fails in
any run is a defect, a race in the test or in the code: the report names each with
how often it failed. Exits 1 if any test failed, 0 otherwise.
"""

from __future__ import annotations

import argparse
import collections
import os
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def failed_tests(junit: Path) -> list[str]:
    """The ids of the tests that failed or errored in a junit-xml report."""
    if not junit.exists():
        return ["(the run ended without a report)"]
    failed = []
    for case in ET.parse(junit).getroot().iter("testcase"):
        if case.find("failure") is not None or case.find("error") is not None:
            failed.append(f"{case.get('classname')}::{case.get('name')}")
    return failed


def workers(count: str) -> tuple[str, ...]:
    """pytest's options for ``count`` processes at once ("0": the suite in this one)."""
    return ("-n", count, "--dist", "worksteal") if count not in ("", "0") else ()


def one_run(n: int, total: int) -> tuple[list[str], float, int]:
    """Run the suite once from a clean clone; (failed test ids, seconds, exit code)."""
    with tempfile.TemporaryDirectory(prefix="stalwart-flake-") as folder:
        clone = Path(folder) / "clone"
        subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True)
        junit = Path(folder) / "report.xml"
        env = {**os.environ, "PYTHONPATH": str(clone), "CI": "true"}
        began = time.monotonic()
        out = subprocess.run(
            [
                *(sys.executable, "-m", "pytest", "-p", "no:cacheprovider", f"--junitxml={junit}"),
                *workers(os.environ.get("PYTEST_WORKERS", "0")),
            ],
            cwd=clone,
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        took = time.monotonic() - began
        failed = failed_tests(junit)
        summary = out.stdout.strip().splitlines()[-1:] or [""]
        print(f"run {n}/{total}: exit {out.returncode} in {took:.0f}s: {summary[0]}", flush=True)
        if failed:  # what pytest printed is kept, to read the failure
            log = Path(tempfile.gettempdir()) / f"stalwart-flake-run-{n}.log"
            log.write_text(out.stdout + out.stderr)
            for test in failed:
                print(f"  failed: {test}", flush=True)
            print(f"  output: {log}", flush=True)
        return failed, took, out.returncode


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args(argv)
    failures: collections.Counter[str] = collections.Counter()
    slowest = 0.0
    for n in range(1, args.runs + 1):
        failed, took, _ = one_run(n, args.runs)
        failures.update(failed)
        slowest = max(slowest, took)
    print(f"\n{args.runs} runs from clean clones of HEAD; the slowest took {slowest:.0f}s")
    if not failures:
        print("no test failed in any run")
        return 0
    print("tests that failed at least once:")
    for test, count in failures.most_common():
        print(f"  {count}/{args.runs}  {test}")
    return 1


if __name__ == "__main__":
    raise SystemExit(main())
