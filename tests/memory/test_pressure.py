"""The memory-pressure actor on real memory: tiers in order, caches emptied, load shed."""

import time

import pytest

from stalwart import Breaker, Child, MemoryLevel, Overloaded, ServiceOff, Supervisor, start
from tests.support import (
    Allocate,
    GetLog,
    Hog,
    Holding,
    Ping,
    Worker,
    touched,
    wait_for,
)

MiB = 2**20


def hogs():
    return Supervisor(
        "m",
        children=[
            Child("keeper", Hog),
            Child("cachey", Hog, options={"floor_bytes": 20 * MiB, "hook_reports": 1234}),
        ],
    )


def baseline(tree, **options):
    """What the tree's processes hold at rest (measured the way the actor measures it)."""
    with start(tree, report_path=None, memory_budget="1TiB", memory_interval_s=0.2, **options) as s:
        time.sleep(1.0)
        return s.memory().sample.used


def automatic(system):
    return [r for r in system.memory().cleanups if r.trigger != "manual"]


def test_tiers_fire_in_order_caches_empty_and_the_largest_actor_restarts(make_system):
    budget = int(baseline(hogs(), base="multiproc") / 0.6)  # at rest: about 60 %
    system = make_system(
        hogs(),
        base="multiproc",
        memory_budget=budget,
        memory_interval_s=0.2,
        memory={"horizon_s": 0, "repeat_s": 600},
    )

    def fill(path, percent, where, chunk=None, priority=0):
        """Allocate up to ``percent`` of the budget; the holder's state right after."""
        need = int(budget * percent / 100) - system.memory().sample.used
        held = None
        while need > 0:
            part = min(need, chunk or need)
            held = system.ask(path, Allocate(part, where, priority), timeout=30)
            need -= part
        return held

    # 70 %: standard cleanup; the hooks run and report what they freed
    fill("m/keeper", 74, "attr")
    warning = wait_for(lambda: automatic(system))[0]
    assert warning.tier == "warning" and warning.trigger == "threshold"
    assert warning.actors["m/cachey"].hook == 1234
    assert system.ask("m/keeper", GetLog()) == [int(MemoryLevel.WARNING)]
    time.sleep(1.0)  # five more samples above 70 %: no second warning
    assert [r.tier for r in automatic(system)] == ["warning"], automatic(system)

    # 85 %: aggressive cleanup; the cache shrinks to its 20 MiB floor
    fill("m/cachey", 83, "cache", chunk=10 * MiB)  # below 85 %: nothing happens yet
    held = fill("m/cachey", 89, "cache", priority=-1)  # the cache as 85 % is crossed
    assert held.cache_bytes > 20 * MiB
    critical = wait_for(lambda: automatic(system)[1:])[0]
    assert critical.tier == "critical", automatic(system)
    after = system.ask("m/cachey", Holding())
    assert 0 < after.cache_bytes <= 20 * MiB  # the low-priority entry went first
    assert critical.actors["m/cachey"].caches == held.cache_bytes - after.cache_bytes
    assert critical.actors["m/cachey"].rss_freed > 0  # the bytes really went back to the OS

    # 95 %: emergency; load is shed, caches empty, the largest restartable actor restarts
    keeper = system.ask("m/keeper", Holding())
    fill("m/keeper", 97, "attr")
    emergency = wait_for(lambda: [r for r in automatic(system) if r.tier == "emergency"])[0]
    tiers = [r.tier for r in automatic(system)]
    # in order; a sample taken while the pages were being written may see 85 % again first
    assert [t for i, t in enumerate(tiers) if t not in tiers[:i]] == [
        "warning",
        "critical",
        "emergency",
    ]
    assert tiers[-1] == "emergency" and tiers.count("emergency") == 1, automatic(system)
    assert emergency.restarted == ("m/keeper",) and emergency.shedding, emergency
    assert emergency.actors["m/cachey"].caches > 0, emergency  # the floor went too
    with pytest.raises(Overloaded):
        system.ask("m/cachey", Holding())  # no new work while shedding
    wait_for(lambda: system.status()["m/keeper"].restarts == 1, timeout=20)
    # the measured memory falls back below the warning level, and load is taken again
    wait_for(lambda: system.memory().sample.percent < 70, timeout=20)
    wait_for(lambda: not system.memory().shedding, timeout=20)
    assert system.ask("m/cachey", Holding()).cache_entries == 0
    restarted = system.ask("m/keeper", Holding())
    assert restarted.pid != keeper.pid and restarted.attr_bytes == 0
    assert restarted.allocations == keeper.allocations + 1  # its checkpoint was restored
    kinds = [e.detail.split(":")[0] for e in system.events() if e.kind == "shed-load"]
    assert kinds == ["on", "off"]


def test_an_emergency_sheds_load_until_memory_is_back(make_system):
    tree = Supervisor(
        "s",
        children=[Child("w", Worker), Child("pay", Worker, breaker=Breaker())],
    )
    used = baseline(tree)
    budget = int(used / 0.5)
    system = make_system(tree, memory_budget=budget, memory_interval_s=0.1, memory={"horizon_s": 0})
    ballast = touched(int(budget * 0.5))  # real memory, in this (the only) process
    wait_for(lambda: system.memory().shedding, timeout=20)
    with pytest.raises(Overloaded, match=r"s/w: the tree is shedding load"):
        system.ask("s/w", Ping(1))
    with pytest.raises(Overloaded):
        system.ask("s/pay", Ping(2))
    report = system.memory().cleanups[-1]
    assert report.tier == "emergency" and report.restarted == ()  # one process: none to pick
    del ballast
    wait_for(lambda: not system.memory().shedding, timeout=20)
    assert system.ask("s/w", Ping(3)).n == 3
    assert system.ask("s/pay", Ping(4)).n == 4


def test_a_manual_cleanup_runs_the_tier_asked_for(make_system):
    system = make_system(hogs(), memory_budget="1TiB")
    for _ in range(30):
        system.ask("m/cachey", Allocate(MiB, "cache"))
    report = system.memory_cleanup("critical", "before a batch job")
    assert (report.tier, report.trigger) == ("critical", "manual")
    assert report.detail == "before a batch job"
    assert report.actors["m/cachey"].caches == 10 * MiB  # down to its 20 MiB floor
    assert system.ask("m/cachey", GetLog()) == [int(MemoryLevel.CRITICAL)]  # its hook ran
    memory_events = [e for e in system.events() if e.kind == "memory"]
    assert memory_events[-1].detail.startswith("critical cleanup (manual)")


def test_a_cleanup_of_many_actors_counts_every_answer_and_reports_those_that_freed(
    make_system,
):
    """A report names the actors that freed something (at most 100) and counts every
    answer: in a tree of many idle actors, it does not hold a line for each."""
    idle = Child("idle", Worker, replicas=600)
    tree = Supervisor("m", children=[*hogs().children, idle])
    system = make_system(tree, memory_budget="1TiB")
    for _ in range(30):
        system.ask("m/cachey", Allocate(MiB, "cache"))
    actors = [e.path for e in system.status() if e.kind == "actor"]
    report = system.memory_cleanup("critical")
    assert report.answered == len(actors) - 1 >= 602  # (all but the memory actor itself)
    assert (report.unanswered, report.unanswered_total) == ((), 0)
    assert "m/cachey" in report.actors and len(report.actors) <= 100
    for a in report.actors.values():  # (one that freed nothing is left out)
        assert a.error or a.caches or a.hook or a.rss_freed
    assert system.ask("m/idle.599", Ping(3)).n == 3


def test_a_system_without_the_memory_actor_says_it_is_off(make_system):
    system = make_system(Supervisor("m", children=[Child("w", Worker)]), memory=None)
    for ask in (system.memory, lambda: system.memory_cleanup("warning")):
        with pytest.raises(ServiceOff, match=r"memory=None") as raised:
            ask()
        assert raised.value.path == "_system/memory"
    assert "memory=None" in system.diagnostics()["memory"]["error"]
    assert system.ask("m/w", Ping(7)).n == 7  # the rest of the tree serves
