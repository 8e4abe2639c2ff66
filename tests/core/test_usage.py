"""Process usage on the recovery path: the same figures as psutil, and no file left open."""

import os
import subprocess
import sys

import psutil

from stalwart.supervisors._usage import ProcessUsage


def test_usage_matches_psutil_for_a_real_process():
    child = subprocess.Popen(
        [sys.executable, "-c", "import time; x = bytearray(50 << 20); time.sleep(30)"]
    )
    try:
        proc = psutil.Process(child.pid)
        usage = ProcessUsage()
        for _ in range(50):
            rss, cpu = usage.usage(child.pid)
            if rss > 50 << 20:
                break
        assert abs(rss - proc.memory_info().rss) < 4 << 20
        times = proc.cpu_times()
        assert abs(cpu - (times.user + times.system)) < 0.5
    finally:
        child.kill()
        child.wait()
    assert usage.usage(child.pid) == (0, 0.0)  # gone: zeros, and its files are closed
    assert child.pid not in usage._files


def test_files_are_closed_when_it_goes_away():
    me = psutil.Process()
    before = me.num_fds()
    usage = ProcessUsage()
    usage.usage(os.getpid())
    assert me.num_fds() == before + 2
    del usage
    assert me.num_fds() == before
