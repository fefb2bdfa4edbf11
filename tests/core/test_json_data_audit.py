"""json_data: a value put into process.data that holds the dict or list it goes into (a
cycle) is refused on the line that writes it, nothing of it kept; copies and shared values
still work; what is stored reads back as the same JSON on both databases (``db_url``)."""

from __future__ import annotations

import copy
import math
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy.orm import Session

from webflow.core.exceptions import InputRejected
from webflow.core.json_data import same_json
from webflow.core.models import Process

CYCLES = {
    "itself in a dict": lambda data: data["a"].__setitem__("self", data["a"]),
    "itself in a list": lambda data: data["l"].append(data["l"]),
    "a dict holding it": lambda data: data["a"].__setitem__("up", {"x": data["a"]}),
    "a list holding its parent": lambda data: data["a"]["inner"].append([data["a"]]),
    "a tuple holding it": lambda data: data["l"].append((1, data["l"])),
    "through update": lambda data: data["a"].update(me=data["a"]),
    "through setdefault": lambda data: data["a"].setdefault("me", [data["a"]]),
    "through a slice": lambda data: data["l"].__setitem__(slice(0, 1), [data["l"]]),
    "through insert": lambda data: data["l"].insert(0, {"l": data["l"]}),
}


def saved_process(session: Session) -> Process:
    process = Process(flow_class_path="tests.core.test_json_data_audit.NoFlow",
                      data={"a": {"b": 1, "inner": []}, "l": [1]})
    session.add(process)
    session.commit()
    return process


@pytest.mark.parametrize("how", CYCLES)
def test_a_value_holding_its_own_container_is_refused_and_nothing_kept(session: Session, how: str) -> None:
    """It was kept, then telling its owners of the change recursed (RecursionError), and
    the flush failed with "Circular reference detected" far from the line."""
    process = saved_process(session)
    with pytest.raises(InputRejected, match="holds the dict or list it is put into"):
        CYCLES[how](process.data)
    assert same_json(dict(process.data), {"a": {"b": 1, "inner": []}, "l": [1]})
    process.data["a"]["b"] = 2              # the data works on, and the flush stores it
    session.commit()
    session.expire_all()
    assert process.data == {"a": {"b": 2, "inner": []}, "l": [1]}


def test_copies_and_shared_values_are_no_cycle(session: Session) -> None:
    process = saved_process(session)
    data = process.data
    data["a"]["copy"] = copy.deepcopy(data["a"])     # a plain copy
    data["twice"] = data["a"]["inner"]               # one list under two keys: shared, as in Python
    data["twice"].append(5)
    data["snapshot"] = data                          # the root is copied where it is put
    session.commit()
    session.expire_all()
    stored = process.data
    assert stored["a"] == {"b": 1, "inner": [5], "copy": {"b": 1, "inner": []}}
    assert stored["twice"] == [5]
    assert stored["snapshot"]["a"] == stored["a"] and "snapshot" not in stored["snapshot"]


TEXT = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"))
JSON = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False) | TEXT,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(TEXT, inner, max_size=4),
    max_leaves=12)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(value=JSON)
def test_what_is_stored_reads_back_as_the_same_json(session: Session, value: Any) -> None:
    """ints beyond 2^63, floats from 1e16 up and -0.0, text of any plane: the same JSON value
    (int stays int, float stays float) on both databases."""
    process = Process(flow_class_path="tests.core.test_json_data_audit.NoFlow", data={"v": value})
    session.add(process)
    session.commit()
    process_id = process.id
    session.expunge_all()
    back = session.scalar(sa.select(Process).where(Process.id == process_id))
    assert back is not None
    stored = back.data["v"]
    assert same_json(stored, value) or _only_negative_zero_differs(stored, value)
    session.delete(back)
    session.commit()


def _only_negative_zero_differs(a: Any, b: Any) -> bool:
    """PostgreSQL's numeric has no -0.0 (the README says so): 0.0 reads back for it."""
    if isinstance(a, float) and isinstance(b, float):
        return a == b and math.copysign(1, a) != math.copysign(1, b)
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        return all(same_json(x, y) or _only_negative_zero_differs(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict) and isinstance(b, dict) and a.keys() == b.keys():
        return all(same_json(a[k], b[k]) or _only_negative_zero_differs(a[k], b[k]) for k in a)
    return False
