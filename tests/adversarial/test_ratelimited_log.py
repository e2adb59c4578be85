"""The rate-limited logger and the connection caps, driven by hand (fake clock, no loop)."""

from __future__ import annotations

import logging
from collections.abc import Callable

import pytest

from protoproxy.config import Limits
from protoproxy.fdlimits import ConnectionLimits
from protoproxy.ratelimited_log import RateLimitedLog


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def records(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.WARNING, "test.ratelimited")
    return caplog


LOG = logging.getLogger("test.ratelimited")


def _messages(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == LOG.name]


def test_one_line_per_key_per_interval_then_a_summary(records: pytest.LogCaptureFixture) -> None:
    clock = FakeClock()
    limiter = RateLimitedLog(interval=1.0, clock=clock)
    for i in range(1000):
        limiter.warning(LOG, ("echo", "rejected"), "conn %d rejected", i)
    assert _messages(records) == ["conn 0 rejected"]
    clock.now += 1.5
    limiter.warning(LOG, ("echo", "rejected"), "conn %d rejected", 1000)
    assert _messages(records) == [
        "conn 0 rejected",
        "... suppressed 999 similar (echo rejected) in the last 1.5s",
        "conn 1000 rejected",
    ]


def test_keys_are_limited_separately(records: pytest.LogCaptureFixture) -> None:
    limiter = RateLimitedLog(interval=1.0, clock=FakeClock())
    limiter.warning(LOG, ("a", "rejected"), "a")
    limiter.warning(LOG, ("b", "rejected"), "b")
    limiter.warning(LOG, ("a", "reset"), "a reset")
    limiter.warning(LOG, ("a", "rejected"), "a again")
    assert _messages(records) == ["a", "b", "a reset"]


def test_a_scheduled_flush_reports_a_burst_that_nothing_follows(
    records: pytest.LogCaptureFixture,
) -> None:
    clock = FakeClock()
    scheduled: list[tuple[float, Callable[[], None]]] = []
    limiter = RateLimitedLog(
        interval=1.0, clock=clock, schedule=lambda d, cb: scheduled.append((d, cb))
    )
    limiter.warning(LOG, "k", "first")
    clock.now += 0.5
    for _ in range(5):
        limiter.warning(LOG, "k", "again")
    assert [d for d, _ in scheduled] == [0.5]  # one flush, when the next token is back
    clock.now += 0.5
    scheduled[0][1]()
    assert _messages(records) == ["first", "... suppressed 5 similar (k) in the last 0.5s"]
    limiter.warning(LOG, "k", "next")  # the token is back: logged at once, no summary again
    assert _messages(records)[2:] == ["next"]


def test_a_late_flush_has_nothing_to_say(records: pytest.LogCaptureFixture) -> None:
    clock = FakeClock()
    scheduled: list[Callable[[], None]] = []
    limiter = RateLimitedLog(interval=1.0, clock=clock, schedule=lambda d, cb: scheduled.append(cb))
    limiter.warning(LOG, "k", "one")
    limiter.warning(LOG, "k", "held")
    clock.now += 2
    limiter.warning(LOG, "k", "two")  # summarises the first window itself
    scheduled[0]()  # the summary was written with "two": nothing left to say
    limiter.warning(LOG, "k", "held too")
    assert _messages(records) == [
        "one",
        "... suppressed 1 similar (k) in the last 2.0s",
        "two",
    ]


def test_a_burst_passes_then_one_line_per_interval(records: pytest.LogCaptureFixture) -> None:
    clock = FakeClock()
    limiter = RateLimitedLog(interval=1.0, clock=clock, burst=3)
    for i in range(10):
        limiter.warning(LOG, "k", "line %d", i)
    clock.now += 1.0
    for i in range(10, 20):
        limiter.warning(LOG, "k", "line %d", i)
    assert _messages(records) == [
        "line 0",
        "line 1",
        "line 2",
        "... suppressed 7 similar (k) in the last 1.0s",
        "line 10",
    ]


def test_keys_are_bounded(records: pytest.LogCaptureFixture) -> None:
    clock = FakeClock()
    limiter = RateLimitedLog(interval=1.0, clock=clock, max_keys=2)
    limiter.warning(LOG, 1, "one")
    limiter.warning(LOG, 1, "one again")
    limiter.warning(LOG, 2, "two")
    limiter.warning(LOG, 3, "three")  # evicts key 1, reporting what it held back
    assert len(limiter._windows) == 2
    assert _messages(records) == [
        "one",
        "two",
        "... suppressed 1 similar (1) in the last 0.0s",
        "three",
    ]


def test_a_disabled_level_costs_no_window(records: pytest.LogCaptureFixture) -> None:
    limiter = RateLimitedLog(clock=FakeClock())
    assert not limiter.log(LOG, logging.DEBUG, "k", "debug")
    assert limiter._windows == {}


def test_listener_cap_then_global_cap_then_fd_budget() -> None:
    limits = ConnectionLimits(Limits(max_connections=5, admin_reserve=10))
    assert limits.fit(nofile_soft=30, fds_open=12) is not None  # (30-12-10)//2 = 4 < 5
    assert limits.fd_cap == 4
    assert [limits.admit("a", 2) for _ in range(3)] == [None, None, "listener_max_connections"]
    assert [limits.admit("b", None) for _ in range(3)] == [None, None, "fd_limit"]
    limits.release("a")
    assert limits.admit("c", None) is None
    assert limits.active == {"a": 1, "b": 2, "c": 1}


def test_the_global_cap_refuses_first_when_it_fits() -> None:
    limits = ConnectionLimits(Limits(max_connections=2, admin_reserve=64))
    assert limits.fit(nofile_soft=20000, fds_open=50) is None
    assert [limits.admit("a", None) for _ in range(3)] == [None, None, "max_connections"]
