"""Dates for people: in the reader's time zone, relative ("in 2 days"), due badges.

The engine stores and compares aware UTC instants only. Pages show them in the reader's
zone: the user's own setting (the settings page), else the browser's IANA zone, which
``static/js/timezone.js`` stores (``Intl``) in the ``tz`` cookie; without either (the first
page, no JavaScript) or with an unknown zone, times are shown in UTC and say so.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any
from urllib.parse import unquote
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from flask import Flask, g, has_request_context, request
from flask_login import current_user
from markupsafe import Markup, escape

from .core.models import TIMER_TYPES
from .core.nodes.timer import aware_utc
from .core.status import FINISHED

TZ_COOKIE = "tz"


def zone_named(name: str | None) -> ZoneInfo | None:
    """The IANA zone of that name, or None for no name or a name that is no zone."""
    name = (name or "").strip()
    if not name or len(name) > 64 or ".." in name or "\0" in name or name.startswith("/"):
        return None
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        return None


def browser_zone() -> ZoneInfo | None:
    """The zone the browser reported (the ``tz`` cookie), if any."""
    return zone_named(unquote(request.cookies.get(TZ_COOKIE, ""))[:64]) if has_request_context() else None


def reader_zone() -> tzinfo:
    """The zone of the person reading the page: their own setting, else the browser's
    (the ``tz`` cookie), else UTC."""
    if not has_request_context():
        return UTC
    zone: tzinfo | None = g.get("reader_zone")  # once per request: a list asks per row
    if zone is None:
        own = getattr(current_user, "timezone", None) if current_user.is_authenticated else None
        zone = g.reader_zone = zone_named(own) or browser_zone() or UTC
    return zone


def local(stamp: datetime) -> datetime:
    """``stamp`` in the reader's zone (``in_zone``)."""
    return in_zone(stamp, reader_zone())


def in_zone(stamp: datetime, zone: tzinfo) -> datetime:
    """``stamp`` in ``zone``; in UTC when that zone would carry it past the first or last
    datetime (a due date of 9999-12-31 23:00 UTC read in Tokyo, the year 1 in New York: the
    engine stores such instants, and every page listing the task was a 500)."""
    value = aware_utc(stamp)
    try:
        return value.astimezone(zone)
    except OverflowError:
        return value


def exact(stamp: datetime, seconds: bool = False) -> str:
    """``2026-12-04 09:30 CET``: the time in the reader's zone, with the zone (and with
    ``seconds``, ``09:30:15``: the hover title, where two events of one minute differ)."""
    return written(local(stamp), seconds)


def exact_for(stamp: datetime, person: Any) -> str:
    """``exact`` for someone who is not reading a page (a mail): in the zone they set
    (Settings), else UTC."""
    return written(in_zone(stamp, zone_named(getattr(person, "timezone", None)) or UTC))


def written(value: datetime, seconds: bool = False) -> str:
    # isoformat, not strftime: %Y writes the year 1 as "1", not "0001"
    shown = value.replace(tzinfo=None).isoformat(" ", "seconds" if seconds else "minutes")
    return f"{shown} {value.tzname() or 'UTC'}"


def relative(stamp: datetime, now: datetime | None = None) -> str:
    """``in 2 days``, ``3 hours ago``, ``in 5 minutes``, ``now``: the largest unit, rounded."""
    delta = aware_utc(stamp) - (now or datetime.now(UTC))
    seconds = abs(delta.total_seconds())
    # A unit is used once the time rounds up to one of it (23 h 59 min is "in 1 day").
    for unit, size, smaller in (("day", 86400, 3600), ("hour", 3600, 60), ("minute", 60, 1)):
        if seconds + smaller / 2 >= size:
            count = int(seconds / size + 0.5)
            text = f"{count} {unit}{'s' if count != 1 else ''}"
            return f"in {text}" if delta > timedelta(0) else f"{text} ago"
    return "now"


def due_state(task: Any, now: datetime | None = None) -> str | None:
    """'overdue', 'today' (due later today, in the reader's zone) or None; for a timer, whose
    due date is when it fires: 'late' once that passed unfired, else None."""
    if task.due is None or task.status in FINISHED:
        return None
    now = now or datetime.now(UTC)
    due = aware_utc(task.due)
    if task.flow_task_type in TIMER_TYPES:
        return "late" if due <= now else None
    if due <= now:
        return "overdue"
    if local(due).date() == now.astimezone(reader_zone()).date():
        return "today"
    return None


def time_tag(stamp: datetime | None, relative_text: bool = True) -> Markup:
    """``<time datetime=... title="exact">in 2 days</time>``: relative, exact on hover."""
    if stamp is None:
        return Markup("")
    iso = aware_utc(stamp).isoformat()
    shown = relative(stamp) if relative_text else exact(stamp)
    title = exact(stamp, seconds=True)
    return Markup(f'<time datetime="{escape(iso)}" title="{escape(title)}">{escape(shown)}</time>')


def when(stamp: datetime | None, ago: bool = False) -> Markup:
    """``ui.when``: the time tag of ``stamp`` (``ago``: relative, as lists show it), or nothing."""
    return time_tag(stamp, relative_text=ago) if stamp else Markup("")


DUE_BADGES = {"overdue": Markup(' <span class="wf-badge wf-due-overdue">Overdue</span>'),
              "today": Markup(' <span class="wf-badge wf-due-today">Due today</span>'),
              "late": Markup(' <span class="wf-badge wf-due-overdue" title="Its time has passed and '
                             'nothing fired it yet: is a worker running?">Late</span>')}


def due_tag(task: Any) -> Markup:
    """``ui.due``: when the task is due, flagged when overdue or due today; a dash without a date."""
    if not task.due:
        return Markup('<span class="wf-muted">–</span>')
    return time_tag(task.due) + DUE_BADGES.get(due_state(task) or "", "")


def reader_zone_name() -> str:
    return str(reader_zone())


def local_input(stamp: datetime | None) -> str:
    """The value of a ``datetime-local`` input: the time in the reader's zone, no zone."""
    return local(stamp).replace(tzinfo=None).isoformat("T", "minutes") if stamp is not None else ""


def parse_local_input(text: str) -> datetime | None:
    """A ``datetime-local`` value read in the reader's zone, as UTC; "" is None.
    ValueError for anything else."""
    text = text.strip()
    if not text:
        return None
    if len(text) > 32 or "\0" in text:
        raise ValueError("not a date and time")
    value = datetime.fromisoformat(text)
    if value.tzinfo is None:
        value = value.replace(tzinfo=reader_zone())
    if not 2000 <= value.year <= 9998:
        raise ValueError("the year is out of range")
    return value.astimezone(UTC)


#: The instants a ``change_due`` or ``reschedule`` note holds (``core.timers._text``: isoformat).
_NOTED_INSTANT = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d(?::\d\d(?:\.\d+)?)?(?:[+-]\d\d:\d\d)?")


def due_change_note(comments: str) -> str:
    """A ``change_due`` / ``reschedule`` note for people: ``due 2031-01-15T14:30:00+00:00 ->
    none; priority 0 -> 7`` reads ``Due 2031-01-15 09:30 EST → none; priority 0 → 7``."""

    def shown(match: re.Match[str]) -> str:
        try:
            return exact(datetime.fromisoformat(match.group(0)))
        except ValueError:
            return match.group(0)

    text = _NOTED_INSTANT.sub(shown, comments).replace(" -> ", " → ")
    return text[:1].upper() + text[1:]


def register(app: Flask) -> None:
    app.add_template_global(due_change_note, "due_change_note")
    app.add_template_global(reader_zone_name, "reader_zone_name")
    app.add_template_global(local_input, "local_input")
    app.add_template_global(time_tag, "time_tag")
    app.add_template_global(due_state, "due_state")
    app.add_template_filter(exact, "exact_time")
    # _macros.html's ui.when and ui.due (Python: a list row draws them, see wording.py)
    app.add_template_global(when, "when_html")
    app.add_template_global(due_tag, "due_html")
