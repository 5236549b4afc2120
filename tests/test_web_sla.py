"""The pure SLA clock: business hours, bands, cycles and states, all with an injected ``now``."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from otklik.domain.sla import (
    BusinessHours,
    ClockState,
    Cycle,
    SlaPolicy,
    SlaSpecError,
    add_business_time,
    business_minutes,
    cycle_from_events,
    due_and_risk,
    next_due,
    priority_band,
    sla_clock,
)

MSK = "Europe/Moscow"  # UTC+3 all year
HOURS = BusinessHours.parse("Mon-Fri 09:00-18:00", MSK)


def msk(day: int, hour: int, minute: int = 0, second: int = 0) -> datetime:
    """A time in November 2026 given in Moscow time (23 Nov 2026 is a Monday)."""
    return datetime(2026, 11, day, hour - 3, minute, second, tzinfo=UTC)


def policy(hours: BusinessHours | None = HOURS, **overrides) -> SlaPolicy:
    return SlaPolicy(
        first_response={"high": 30, "normal": 120, "low": 480},
        resolution={"high": 240, "normal": 960, "low": 2880},
        hours=hours,
        at_risk_percent=25,
        **overrides,
    )


def test_priority_bands() -> None:
    assert [priority_band(p) for p in (100, 60, 59, 30, 29, 0)] == [
        "high",
        "high",
        "normal",
        "normal",
        "low",
        "low",
    ]


@pytest.mark.parametrize(
    ("spec", "days"),
    [
        ("Mon-Fri 09:00-18:00", {0, 1, 2, 3, 4}),
        ("Sun-Thu 8:00-17:00", {6, 0, 1, 2, 3}),
        ("Mon,Wed,Sat 10:00-12:00", {0, 2, 5}),
    ],
)
def test_business_hours_parse(spec: str, days: set[int]) -> None:
    assert BusinessHours.parse(spec, MSK).days == frozenset(days)


@pytest.mark.parametrize(
    ("spec", "tz"),
    [
        ("Mon-Fry 09:00-18:00", MSK),
        ("Mon-Fri 18:00-09:00", MSK),
        ("Mon-Fri 9-18", MSK),
        ("Mon-Fri 09:00-18:00", "Mars/Olympus"),
    ],
)
def test_business_hours_parse_errors(spec: str, tz: str) -> None:
    with pytest.raises(SlaSpecError):
        BusinessHours.parse(spec, tz)


def test_empty_spec_means_around_the_clock() -> None:
    assert BusinessHours.parse("", MSK) is None
    start = msk(28, 23)  # Saturday night
    assert add_business_time(start, 30, None) == start + timedelta(minutes=30)


def test_adding_business_time_across_the_evening_and_the_weekend() -> None:
    assert add_business_time(msk(23, 10), 30, HOURS) == msk(23, 10, 30)
    assert add_business_time(msk(23, 17, 45), 30, HOURS) == msk(24, 9, 15)  # overnight
    assert add_business_time(msk(27, 17, 50), 30, HOURS) == msk(30, 9, 20)  # Fri -> Mon
    assert add_business_time(msk(28, 12), 30, HOURS) == msk(30, 9, 30)  # posted on Saturday
    assert add_business_time(msk(23, 7), 30, HOURS) == msk(23, 9, 30)  # before opening
    assert add_business_time(msk(23, 18), 1, HOURS) == msk(24, 9, 1)  # exactly at closing
    assert add_business_time(msk(23, 9), 9 * 60, HOURS) == msk(23, 18)  # the whole day


def test_business_minutes_counts_only_working_time() -> None:
    assert business_minutes(msk(23, 17), msk(24, 10), HOURS) == 120
    assert business_minutes(msk(27, 17), msk(30, 10), HOURS) == 120
    assert business_minutes(msk(28, 10), msk(28, 16), HOURS) == 0
    assert business_minutes(msk(24, 10), msk(23, 17), HOURS) == -120


def test_a_post_just_before_closing_is_at_risk_only_next_morning() -> None:
    cycle = Cycle(started_at=msk(27, 17, 50))  # Friday 17:50, high band: 30 business minutes
    clock = sla_clock(cycle, policy(), "twitter", 80, now=msk(28, 23))  # Saturday night
    assert clock.state == ClockState.OK and clock.first_response.remaining_minutes == 20
    assert clock.first_response.due_at == msk(30, 9, 20)
    assert sla_clock(cycle, policy(), "twitter", 80, msk(30, 9, 14)).state == ClockState.AT_RISK
    assert sla_clock(cycle, policy(), "twitter", 80, msk(30, 9, 20)).state == ClockState.BREACHED
    assert clock.band == "high" and clock.due_at == msk(30, 9, 20)


def test_without_business_hours_the_weekend_counts() -> None:
    cycle = Cycle(started_at=msk(27, 17, 50))
    clock = sla_clock(cycle, policy(hours=None), "twitter", 80, now=msk(28, 23))
    assert clock.state == ClockState.BREACHED and clock.remaining < timedelta(0)


def test_states_met_and_breached_when_done() -> None:
    started = msk(23, 10)
    on_time = Cycle(started, first_response_at=msk(23, 10, 20))
    clock = sla_clock(on_time, policy(), "vk", 70, now=msk(23, 11))
    assert clock.first_response.state == ClockState.MET
    assert clock.resolution.state == ClockState.OK and clock.state == ClockState.OK
    assert clock.due_at == msk(23, 14)  # resolution: 240 business minutes
    late = Cycle(started, first_response_at=msk(23, 11), resolved_at=msk(23, 12))
    done = sla_clock(late, policy(), "vk", 70, now=msk(23, 13))
    assert done.first_response.state == ClockState.BREACHED
    assert done.resolution.state == ClockState.MET
    assert done.state == ClockState.BREACHED and done.due_at is None
    all_met = Cycle(started, first_response_at=msk(23, 10, 5), resolved_at=msk(23, 12))
    assert sla_clock(all_met, policy(), "vk", 70, now=msk(23, 13)).state == ClockState.MET


def test_platform_overrides_and_inheritance() -> None:
    p = policy(platform_first_response={"twitter": {"high": 15, "normal": 0, "low": 0}})
    assert p.targets("twitter", 90) == (15, 240)
    assert p.targets("twitter", 40) == (120, 960)
    assert p.targets("vk", 90) == (30, 240)


def _event(kind: str, at: datetime, **data) -> tuple[str, datetime, dict]:
    return (kind, at, data)


def test_cycle_from_events_restarts_on_reopen() -> None:
    events = [
        _event("opened", msk(23, 10)),
        _event("reply_queued", msk(23, 10, 5)),
        _event("replied", msk(23, 10, 6)),
        _event("status_changed", msk(23, 11), **{"from": "open", "to": "resolved"}),
        _event("customer_posted", msk(24, 12)),
        _event("reopened", msk(24, 12, 3)),
    ]
    cycle = cycle_from_events(events)
    assert cycle == Cycle(started_at=msk(24, 12))  # not credited to the old reply
    cycle = cycle_from_events([*events, _event("replied", msk(24, 12, 10))])
    assert cycle.first_response_at == msk(24, 12, 10)


def test_queued_or_failed_replies_are_not_a_first_response() -> None:
    events = [
        _event("opened", msk(23, 10)),
        _event("reply_queued", msk(23, 10, 5)),
        _event("reply_failed", msk(23, 10, 6)),
    ]
    assert cycle_from_events(events).first_response_at is None


def test_manual_reopen_starts_a_cycle_at_its_own_time() -> None:
    events = [
        _event("opened", msk(23, 10)),
        _event("status_changed", msk(23, 11), **{"from": "open", "to": "resolved"}),
        _event("status_changed", msk(23, 15), **{"from": "resolved", "to": "open"}),
    ]
    assert cycle_from_events(events) == Cycle(started_at=msk(23, 15))


def test_next_due_follows_the_running_target() -> None:
    p = policy()
    assert next_due(Cycle(msk(23, 10)), p, "vk", 10) == msk(23, 18)  # 480 min to closing
    # resolution, 2880 min: Mon 480 + Tue..Fri 4 x 540 + 240 on the next Monday
    assert next_due(Cycle(msk(23, 10), msk(23, 10, 1)), p, "vk", 10) == msk(30, 13)
    assert next_due(Cycle(msk(23, 10), msk(23, 11), msk(23, 12)), p, "vk", 10) is None


def test_the_at_risk_moment_matches_the_clock() -> None:
    p, cycle = policy(), Cycle(started_at=msk(27, 17, 50))  # high band, 30 min
    due, risk = due_and_risk(cycle, p, "vk", 90)
    assert (due, risk) == (msk(30, 9, 20), msk(30, 9, 12, 30))  # 25% = 7.5 min before due
    assert sla_clock(cycle, p, "vk", 90, risk - timedelta(seconds=1)).state == ClockState.OK
    assert sla_clock(cycle, p, "vk", 90, risk).state == ClockState.AT_RISK
    assert due_and_risk(Cycle(msk(23, 10), msk(23, 11), msk(23, 12)), p, "vk", 90) is None
