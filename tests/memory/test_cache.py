"""TieredCache: TTL, LRU, priorities, size accounting and the cleanup tiers."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stalwart import MemoryLevel
from stalwart.memory import TieredCache


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def test_entries_expire_after_their_ttl():
    clock = Clock()
    cache = TieredCache(ttl_s=10, clock=clock)
    cache["a"] = b"x" * 10
    cache.set("b", b"y" * 5, ttl_s=100)
    clock.now += 11
    assert "a" not in cache and cache.get("a") is None
    assert cache["b"] == b"y" * 5
    assert cache.nbytes == 5


def test_the_least_recently_used_goes_first_among_equal_priorities():
    cache = TieredCache(max_entries=2)
    cache["a"], cache["b"] = b"1", b"2"
    _ = cache["a"]  # a is now the most recently used
    cache["c"] = b"3"
    assert sorted(cache) == ["a", "c"] and cache.evictions == 1


def test_a_higher_priority_outlives_lower_ones():
    cache = TieredCache(max_bytes=30)
    cache.set("keep", b"k" * 10, priority=5)
    cache.set("x", b"x" * 10)
    cache.set("y", b"y" * 10)
    cache.set("z", b"z" * 10)  # over 30 bytes: the oldest low-priority entry goes
    assert set(cache) == {"keep", "y", "z"} and cache.nbytes == 30


def test_the_tiers_free_what_they_say():
    clock = Clock()
    cache = TieredCache(max_age_s=60, floor_bytes=25, clock=clock)
    cache.set("old", b"o" * 10)
    clock.now += 61
    cache.set("low", b"l" * 10, priority=0)
    cache.set("mid", b"m" * 10, priority=1)
    cache.set("top", b"t" * 10, priority=2)
    assert cache.cleanup(MemoryLevel.WARNING) == 10  # only the entry older than max_age_s
    assert set(cache) == {"low", "mid", "top"}
    assert cache.cleanup(MemoryLevel.CRITICAL) == 10  # down to the 25-byte floor
    assert set(cache) == {"mid", "top"}
    assert cache.cleanup(MemoryLevel.EMERGENCY) == 20 and len(cache) == 0 and cache.nbytes == 0


def test_bad_settings_name_the_field():
    with pytest.raises(ValueError, match=r"TieredCache\.max_entries"):
        TieredCache(max_entries=0)
    with pytest.raises(ValueError, match=r"TieredCache\.ttl_s"):
        TieredCache(ttl_s=-1)
    with pytest.raises(ValueError, match=r"TieredCache\.floor_bytes"):
        TieredCache(floor_bytes=-1)


def test_outside_an_actor_it_is_a_plain_cache():
    assert TieredCache().registered is False


operations = st.lists(
    st.tuples(
        st.sampled_from(["set", "get", "del", "tick", "clean"]),
        st.integers(0, 6),
        st.integers(0, 40),
        st.integers(0, 2),
    ),
    max_size=80,
)


@settings(max_examples=200, deadline=None)
@given(operations)
def test_sizes_and_bounds_hold_under_any_use(ops):
    clock = Clock()
    cache = TieredCache(max_entries=4, max_bytes=100, ttl_s=50, clock=clock)
    for op, key, size, priority in ops:
        if op == "set":
            cache.set(key, b"v" * size, priority=priority)
        elif op == "get":
            cache.get(key)
        elif op == "del" and key in cache._data:
            del cache[key]
        elif op == "tick":
            clock.now += size
        elif op == "clean":
            cache.cleanup(priority + 1)
        assert cache.nbytes == sum(e.size for e in cache._data.values())
        assert len(cache) <= 4 and cache.nbytes <= 100
