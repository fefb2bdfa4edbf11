"""The flow checker reports, when the class is created, what can strand a process."""

from __future__ import annotations

import warnings

import pytest

from webflow import Flow, FlowRuntimeError, flow, this
from webflow.core.checks import FlowCheckWarning, Level, check_flow


def define(name: str, **nodes: object) -> type[Flow]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        cls = type(name, (Flow,), {"__module__": __name__, **nodes})
    cls.caught = [str(w.message) for w in caught if issubclass(w.category, FlowCheckWarning)]
    return cls


def findings(cls: type[Flow]) -> list[tuple[str, str]]:
    return [(f.level.value, f.node) for f in check_flow(cls)]


def test_a_sound_flow_has_no_findings():
    cls = define("SoundFlow", start=flow.StartFunction().Next(this.split),
                 split=flow.Split().Next(this.a).Next(this.b), a=flow.View().Next(this.join),
                 b=flow.Handler(lambda act: None).Next(this.join), join=flow.Join().Next(this.end),
                 end=flow.End())
    assert check_flow(cls) == [] and cls.caught == []


def test_a_join_no_split_leads_to_is_an_error_and_warned_at_class_creation():
    cls = define("LonelyJoinFlow", start=flow.StartFunction().Next(this.work),
                 work=flow.View().Next(this.join), join=flow.Join().Next(this.end), end=flow.End())
    assert findings(cls) == [("error", "join")]
    assert cls.caught == ["LonelyJoinFlow: error: join: no branch of a Split leads to this Join: it has "
                          "nothing to wait for"]


def test_unreachable_nodes_dead_ends_and_a_missing_end():
    cls = define("ShapelessFlow", start=flow.StartFunction().Next(this.work), work=flow.View(),
                 orphan=flow.View().Next(this.end), end=flow.End())
    assert findings(cls) == [("error", ""), ("warning", "work"), ("warning", "orphan"), ("warning", "end")]
    messages = [str(f) for f in check_flow(cls)]
    assert messages[0].startswith("error: no End can be reached")
    assert "no .Next()" in messages[1] and "nothing leads to" in messages[2]


def test_a_switch_without_default_is_a_warning():
    cls = define("SwitchyFlow", start=flow.StartFunction().Next(this.pick),
                 pick=flow.Switch().Case(this.end, lambda act: True), end=flow.End())
    assert findings(cls) == [("warning", "pick")]
    assert check_flow(cls)[0].level is Level.WARNING


def test_an_if_without_else_is_refused_when_the_class_is_created():
    with pytest.raises(FlowRuntimeError, match=r"If needs \.Then\(\) and \.Else\(\)"):
        define("HalfIfFlow", start=flow.StartFunction().Next(this.check),
               check=flow.If(lambda act: True).Then(this.end), end=flow.End())


def test_the_demo_flows_are_sound():
    from webflow.demo.helloworld import HelloWorldFlow
    from webflow.demo.shipment import ShipmentFlow

    assert check_flow(HelloWorldFlow) == [] and check_flow(ShipmentFlow) == []


@pytest.mark.parametrize("name", ["shown", "start_token", "csrf_token"])
def test_a_form_field_named_like_the_pages_own_hidden_fields_is_an_error(name: str) -> None:
    """The task page adds ``shown`` and the start page ``start_token`` to the node's form:
    a field of the same name was sent twice and one value silently lost."""
    from flask_wtf import FlaskForm
    from wtforms import StringField

    form = type("ClashForm", (FlaskForm,), {name: StringField(name), "note": StringField("Note")})
    cls = define(f"Clash{name.title().replace('_', '')}Flow",
                 start=flow.Start(form=form).Next(this.work), work=flow.View(form=form).Next(this.end),
                 end=flow.End())
    assert findings(cls) == [("error", "start"), ("error", "work")]
    assert f"the form's field '{name}' has a name the page uses" in cls.caught[0]
    fine = type("FineForm", (FlaskForm,), {"note": StringField("Note")})
    assert check_flow(define("NoClashFlow", start=flow.Start(form=fine).Next(this.work),
                             work=flow.View(form=fine).Next(this.end), end=flow.End())) == []
