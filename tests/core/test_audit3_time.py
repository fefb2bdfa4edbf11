"""Third time audit, engine side: boundary timers with an ``after`` no datetime can reach."""

from __future__ import annotations

from datetime import timedelta

import pytest

from webflow import FlowRuntimeError, flow, this


@pytest.mark.parametrize("after", [timedelta.max, timedelta(days=999_999_999), timedelta(days=366 * 8000)])
def test_an_on_timeout_after_past_the_last_datetime_is_refused_with_the_flow(after):
    """``OnTimeout(node, after=timedelta.max)`` (meant as "never") was accepted, and every
    task of the view then failed to be created with a bare OverflowError out of the engine
    (the task before it could not be finished). Now the flow class is refused, like a
    negative ``after``."""
    with pytest.raises(FlowRuntimeError, match=r"after=.* reaches past the year 9999"):
        flow.View().OnTimeout(this.end, after=after)
    flow.View().OnTimeout(this.end, after=timedelta(days=365 * 100))  # a century is fine
