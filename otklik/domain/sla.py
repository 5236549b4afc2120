"""The SLA clock: pure functions from plain values and ``now`` to a clock state.

Nothing here touches the database or reads the wall clock, so every state can be
recomputed (and audited) from the stored event log.

* **Priority bands.** ``Conversation.priority`` (0..100, see ``otklik.domain.triage``) maps to
  a band: ``high`` at 60 or more, ``normal`` at 30 or more, ``low`` below.
* **Targets.** First response and resolution, in minutes of *business time*, per band, with
  optional per-platform overrides (see ``config.SlaSettings``).
* **Cycles.** A conversation's clock runs from its opening to its resolution. When a resolved
  conversation reopens (a new customer post, or a person reopening it), a new cycle starts at
  the customer's post: its first response is the first reply *sent on the platform* after that,
  so a reopened conversation's first response is never credited to an older reply.
* **States.** Each target is ``ok``, ``at_risk`` (less than ``at_risk_percent`` of the target
  left), ``breached`` (due time passed, or done late) or ``met`` (done in time). The clock's
  overall state is the worst of its two targets (breached > at_risk > ok > met).
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from config import SlaSettings, SlaTargets
from otklik.domain.events import CUSTOMER_KINDS, EventKind

BANDS = ("high", "normal", "low")
DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_MAX_DAYS = 3660  # a business-time walk never looks further than ten years ahead


def priority_band(priority: int) -> str:
    """``high`` (>= 60), ``normal`` (>= 30) or ``low``."""
    if priority >= 60:
        return "high"
    if priority >= 30:
        return "normal"
    return "low"


class SlaSpecError(ValueError):
    """A business-hours specification or time zone cannot be understood."""


@dataclass(frozen=True, slots=True)
class BusinessHours:
    """Working days (0 = Monday) and one daily window, in a time zone."""

    days: frozenset[int]
    start: time
    end: time
    tz: ZoneInfo

    @classmethod
    def parse(cls, spec: str, timezone: str) -> BusinessHours | None:
        """Parse ``"Mon-Fri 09:00-18:00"``; an empty spec means around the clock (None)."""
        spec = spec.strip()
        if not spec:
            return None
        match = re.fullmatch(r"([A-Za-z,\- ]+?)\s+(\d{1,2}:\d{2})\s*-\s*(\d{1,2}:\d{2})", spec)
        if not match:
            raise SlaSpecError(f"business hours {spec!r}: expected e.g. 'Mon-Fri 09:00-18:00'")
        try:
            tz = ZoneInfo(timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise SlaSpecError(f"time zone {timezone!r} is unknown") from None
        start, end = _parse_time(match.group(2), spec), _parse_time(match.group(3), spec)
        if start >= end:
            raise SlaSpecError(f"business hours {spec!r}: the day must end after it starts")
        return cls(_parse_days(match.group(1), spec), start, end, tz)

    def window(self, day: date) -> tuple[datetime, datetime] | None:
        """The working window of local ``day`` in UTC, or None on a day off."""
        if day.weekday() not in self.days:
            return None
        opens = datetime.combine(day, self.start, tzinfo=self.tz).astimezone(UTC)
        closes = datetime.combine(day, self.end, tzinfo=self.tz).astimezone(UTC)
        return opens, closes


def _parse_time(text: str, spec: str) -> time:
    hours, minutes = (int(part) for part in text.split(":"))
    if hours == 24 and minutes == 0:
        return time(23, 59, 59, 999999)
    if hours > 23 or minutes > 59:
        raise SlaSpecError(f"business hours {spec!r}: {text} is not a time of day")
    return time(hours, minutes)


def _parse_days(text: str, spec: str) -> frozenset[int]:
    days: set[int] = set()
    for part in (p.strip().lower() for p in text.split(",")):
        ends = [e.strip()[:3] for e in part.split("-")]
        if not all(e in DAYS for e in ends) or len(ends) > 2:
            raise SlaSpecError(f"business hours {spec!r}: {part!r} is not a day or day range")
        first, last = DAYS.index(ends[0]), DAYS.index(ends[-1])
        days.update((first + i) % 7 for i in range((last - first) % 7 + 1))
    return frozenset(days)


def add_business_time(start: datetime, minutes: float, hours: BusinessHours | None) -> datetime:
    """The moment ``minutes`` of business time after ``start`` (plain time without hours)."""
    if hours is None:
        return start + timedelta(minutes=minutes)
    left = timedelta(minutes=minutes)
    day = start.astimezone(hours.tz).date()
    for _ in range(_MAX_DAYS):
        window = hours.window(day)
        if window is not None:
            begin, end = max(window[0], start), window[1]
            if begin < end:
                if left <= end - begin:
                    return begin + left
                left -= end - begin
        day += timedelta(days=1)
    raise SlaSpecError("no business time within ten years")


def business_minutes(start: datetime, end: datetime, hours: BusinessHours | None) -> float:
    """Minutes of business time from ``start`` to ``end`` (negative if ``end`` is earlier)."""
    if end < start:
        return -business_minutes(end, start, hours)
    if hours is None:
        return (end - start).total_seconds() / 60
    total = timedelta()
    day = start.astimezone(hours.tz).date()
    last = end.astimezone(hours.tz).date()
    while day <= last:
        window = hours.window(day)
        if window is not None:
            begin, finish = max(window[0], start), min(window[1], end)
            if begin < finish:
                total += finish - begin
        day += timedelta(days=1)
    return total.total_seconds() / 60


@dataclass(frozen=True, slots=True)
class SlaPolicy:
    """Targets in business minutes per band, per-platform overrides, hours and risk margin."""

    first_response: Mapping[str, int]
    resolution: Mapping[str, int]
    hours: BusinessHours | None = None
    at_risk_percent: int = 25
    platform_first_response: Mapping[str, Mapping[str, int]] = field(default_factory=dict)
    platform_resolution: Mapping[str, Mapping[str, int]] = field(default_factory=dict)

    def targets(self, platform: str, priority: int) -> tuple[int, int]:
        """(first response, resolution) minutes for a conversation; a 0 override inherits."""
        band = priority_band(priority)
        first = (
            self.platform_first_response.get(platform, {}).get(band) or self.first_response[band]
        )
        resolution = self.platform_resolution.get(platform, {}).get(band) or self.resolution[band]
        return first, resolution


class ClockState(enum.StrEnum):
    """One target's (or the whole clock's) state."""

    MET = "met"
    OK = "ok"
    AT_RISK = "at_risk"
    BREACHED = "breached"


_SEVERITY = {ClockState.MET: 0, ClockState.OK: 1, ClockState.AT_RISK: 2, ClockState.BREACHED: 3}


@dataclass(frozen=True, slots=True)
class Cycle:
    """The current cycle of a conversation, as far as the SLA is concerned."""

    started_at: datetime
    first_response_at: datetime | None = None
    resolved_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class TargetClock:
    """One target (first response or resolution) at ``now``."""

    state: ClockState
    target_minutes: int
    due_at: datetime
    done_at: datetime | None
    remaining_minutes: float  # business minutes left (negative once breached); 0 when done


@dataclass(frozen=True, slots=True)
class SlaClock:
    """A conversation's SLA clock at ``now``."""

    state: ClockState
    band: str
    first_response: TargetClock
    resolution: TargetClock
    due_at: datetime | None  # the next due time of a running target; None when all are done
    remaining: timedelta | None  # wall-clock time until ``due_at`` (negative when breached)


def next_cycle(
    cycle: Cycle | None,
    kind: str,
    at: datetime,
    data: Mapping[str, object],
    last_customer_at: datetime | None,
) -> Cycle | None:
    """The SLA cycle after one event: THE cycle rule, replayed by every reader of the journal.

    ``opened`` starts the first cycle; ``reopened`` (by a customer) starts a new one at the
    customer's newest post (``last_customer_at``), a manual ``status_changed`` out of
    ``resolved`` at its own time; the first ``replied`` (a reply sent on the platform) at or
    after the start is the first response; ``status_changed`` to ``resolved`` ends it.
    """
    if kind in CUSTOMER_KINDS:
        return cycle if cycle is not None else Cycle(at)
    if kind == EventKind.REOPENED:
        return Cycle(last_customer_at or at)
    if kind == EventKind.STATUS_CHANGED and data.get("from") == "resolved":
        return Cycle(at) if cycle is not None and cycle.resolved_at is not None else cycle
    if cycle is None:
        return None
    if kind == EventKind.REPLIED and cycle.first_response_at is None and at >= cycle.started_at:
        return replace(cycle, first_response_at=at)
    if kind == EventKind.STATUS_CHANGED and data.get("to") == "resolved":
        return replace(cycle, resolved_at=at)
    return cycle


def cycle_from_events(events: Iterable[tuple[str, datetime, Mapping[str, object]]]) -> Cycle:
    """The current cycle from (kind, at, data) events in the order they happened."""
    cycle: Cycle | None = None
    last_customer: datetime | None = None
    for kind, at, data in events:
        if kind in CUSTOMER_KINDS:
            last_customer = at
        cycle = next_cycle(cycle, kind, at, data, last_customer)
    if cycle is None:
        raise ValueError("the events have no 'opened' event")
    return cycle


def sla_clock(
    cycle: Cycle, policy: SlaPolicy, platform: str, priority: int, now: datetime
) -> SlaClock:
    """The clock of a conversation in ``cycle`` at ``now`` under ``policy``."""
    first_minutes, resolution_minutes = policy.targets(platform, priority)
    first = _target(cycle.started_at, first_minutes, cycle.first_response_at, policy, now)
    resolution = _target(cycle.started_at, resolution_minutes, cycle.resolved_at, policy, now)
    running = [t.due_at for t in (first, resolution) if t.done_at is None]
    state = max((first.state, resolution.state), key=_SEVERITY.__getitem__)
    return SlaClock(
        state=state,
        band=priority_band(priority),
        first_response=first,
        resolution=resolution,
        due_at=min(running) if running else None,
        remaining=min(running) - now if running else None,
    )


def _target(
    started: datetime, minutes: int, done: datetime | None, policy: SlaPolicy, now: datetime
) -> TargetClock:
    due = add_business_time(started, minutes, policy.hours)
    if done is not None:
        state = ClockState.MET if done <= due else ClockState.BREACHED
        return TargetClock(state, minutes, due, done, 0.0)
    left = business_minutes(now, due, policy.hours)
    if now >= due:
        state = ClockState.BREACHED
    elif left <= minutes * policy.at_risk_percent / 100:
        state = ClockState.AT_RISK
    else:
        state = ClockState.OK
    return TargetClock(state, minutes, due, None, left)


def next_due(cycle: Cycle, policy: SlaPolicy, platform: str, priority: int) -> datetime | None:
    """The due time the inbox sorts on: first response while unanswered, then resolution."""
    found = due_and_risk(cycle, policy, platform, priority)
    return None if found is None else found[0]


def due_and_risk(
    cycle: Cycle, policy: SlaPolicy, platform: str, priority: int
) -> tuple[datetime, datetime] | None:
    """(due, at-risk-from) of the running target; None once resolved.

    The at-risk moment is when ``at_risk_percent`` of the target is left, in business time,
    the same rule as :func:`sla_clock`, so the "breaching soon" view matches the colours.
    """
    if cycle.resolved_at is not None:
        return None
    first_minutes, resolution_minutes = policy.targets(platform, priority)
    minutes = first_minutes if cycle.first_response_at is None else resolution_minutes
    due = add_business_time(cycle.started_at, minutes, policy.hours)
    risk = add_business_time(
        cycle.started_at, minutes * (100 - policy.at_risk_percent) / 100, policy.hours
    )
    return due, risk


def policy_from_settings(sla: SlaSettings) -> SlaPolicy | None:
    """The policy for the ``[sla]`` settings (None when the SLA is disabled)."""
    if not sla.enabled:
        return None

    def bands(targets: SlaTargets) -> dict[str, int]:
        return {band: int(getattr(targets, band)) for band in BANDS}

    return SlaPolicy(
        first_response=bands(sla.first_response_minutes),
        resolution=bands(sla.resolution_minutes),
        hours=BusinessHours.parse(sla.business_hours, sla.timezone),
        at_risk_percent=int(sla.at_risk_percent),
        platform_first_response={
            o.platform: bands(o.first_response_minutes) for o in sla.platforms
        },
        platform_resolution={o.platform: bands(o.resolution_minutes) for o in sla.platforms},
    )
