"""Audit of the developer's API: flows defined wrong fail when the class is created, with
the flow and node named; calls from code given wrong arguments raise a clear exception and
store nothing."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session

from webflow import STATUS, Flow, FlowRuntimeError, flow, this
from webflow.models import Process, User

Snapshot = dict[str, list[tuple[Any, ...]]]


def define(name: str, _base: type[Flow] = Flow, **nodes: Any) -> type[Flow]:
    """A flow class made as a ``class`` statement makes it (checker warnings muted)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return type(name, (_base,), {"__module__": __name__, **nodes})


def count(session: Session, model: type) -> int:
    return int(session.scalar(sa.select(sa.func.count()).select_from(model)) or 0)


class UserArgFlow(Flow):
    start = flow.Start().Permission(auto_create=True).Next(this.work)
    begin = flow.StartFunction().Next(this.work)
    work = flow.View().Permission(auto_create=True).Next(this.end)
    end = flow.End()


# -- a user that is not stored -----------------------------------------------------------


@pytest.mark.parametrize("call", ["start", "assign", "reassign"])
def test_a_user_that_is_not_stored_is_refused_and_not_created(
        session: Session, users: dict[str, User], stored: Callable[[], Snapshot], call: str) -> None:
    """A ``User(...)`` built but never added was stored by the call as a side effect (a
    superuser made by ``assign``); it is refused, and nothing is written."""
    ghost = User(username="ghost", is_superuser=True)
    if call == "start":
        before = stored()
        with pytest.raises(FlowRuntimeError, match="'ghost' is not stored"):
            UserArgFlow.start.run(data={}, user=ghost)
    else:
        process = UserArgFlow.begin.run()
        task = process.get_task(UserArgFlow.work)
        if call == "reassign":
            task.activate().assign(users["ann"])
        before = stored()
        with pytest.raises(FlowRuntimeError, match="'ghost' is not stored"):
            getattr(task.activate(), call)(ghost)
    session.rollback()
    assert stored() == before
    assert session.scalar(sa.select(User).where(User.username == "ghost")) is None


@pytest.mark.parametrize("user", ["ann", 7])
def test_start_run_with_a_user_that_is_not_a_user_says_so(session: Session, users: dict[str, User],
                                                          user: Any) -> None:
    """``Start.run(user="ann")`` failed with AttributeError: 'str' object has no attribute
    'is_superuser'."""
    with pytest.raises(FlowRuntimeError, match=r"prepare\(\) needs a user .*, not (.ann.|7)"):
        UserArgFlow.start.run(data={}, user=user)
    assert count(session, Process) == 0


def test_a_user_added_to_the_session_by_the_caller_is_taken(session: Session) -> None:
    """A user the caller added (pending) is stored with the call, as before."""
    newcomer = User(username="newcomer", is_superuser=True)
    session.add(newcomer)
    process = UserArgFlow.start.run(data={}, user=newcomer)
    assert process.created_by is newcomer and newcomer.id is not None


# -- flows defined wrong fail when the class is created ----------------------------------


def _shared_node() -> dict[str, Any]:
    shared = flow.View().Next(this.end)
    return {"start": flow.StartFunction().Next(this.first), "first": shared, "second": shared,
            "end": flow.End()}


def _form_class() -> type:
    from flask_wtf import FlaskForm
    from wtforms import StringField

    return type("NoteForm", (FlaskForm,), {"note": StringField("Note")})


def _plain(**nodes: Any) -> dict[str, Any]:
    """start -> work (or the given nodes) -> end."""
    return {"start": flow.StartFunction().Next(this.work), "work": flow.View().Next(this.end),
            "end": flow.End(), **nodes}


WRONG: dict[str, tuple[Callable[[], dict[str, Any]], str]] = {
    # One node object under two names: tasks of 'first' were stored as 'second'.
    "SharedNodeFlow": (_shared_node, r"SharedNodeFlow\.second: the node of 'first' is used again "
                                     r"as 'second'"),
    # A start node as a target: its task waited for ever (no transition could move it).
    "NextToStartFlow": (lambda: _plain(work=flow.View().Next(this.start)),
                        r"NextToStartFlow\.work leads to 'start', a start node"),
    "ThenToStartFlow": (lambda: _plain(work=flow.If(lambda act: True).Then(this.again).Else(this.end),
                                       again=flow.StartFunction().Next(this.end)),
                        r"ThenToStartFlow\.work leads to 'again', a start node"),
    # A node of another flow was taken by its name: the task went to this flow's 'end'.
    "ForeignNextFlow": (lambda: _plain(work=flow.View().Next(UserArgFlow.end)),
                        r"ForeignNextFlow\.work: <End UserArgFlow\.end> is a node of UserArgFlow, another "
                        r"flow: refer to this flow's nodes as this\.<name>"),
    # .Next on a node that does not take it was dropped without a word.
    "IfNextFlow": (lambda: _plain(work=flow.If(lambda act: True).Then(this.end).Else(this.end)
                                  .Next(this.other), other=flow.View().Next(this.end)),
                   r"IfNextFlow\.work: an If continues with \.Then\(\) and \.Else\(\), not \.Next\(\)"),
    "SwitchNextFlow": (lambda: _plain(work=flow.Switch().Case(this.end, lambda act: True)
                                      .Default(this.end).Next(this.end)),
                       r"SwitchNextFlow\.work: a Switch continues with \.Case\(\) and \.Default\(\), "
                       r"not \.Next\(\)"),
    # A Switch with nowhere to go: every process failed there ("no case matched").
    "EmptySwitchFlow": (lambda: _plain(work=flow.Switch()),
                        r"EmptySwitchFlow\.work: a Switch needs \.Case\(\) or \.Default\(\)"),
    # Two .Next() on a plain node ran both on one token, outside a split: a Join after
    # them found no split and fired at the first arrival.
    "ForkedViewFlow": (lambda: _plain(work=flow.View().Next(this.end).Next(this.other),
                                      other=flow.View().Next(this.end)),
                       r"ForkedViewFlow\.work: \.Next\(\) is given 2 times; a node continues to one node "
                       r"\(to run several at once, lead to a flow\.Split\(\) and \.Next\(\) each from it\)"),
    "ForkedStartFlow": (lambda: _plain(start=flow.StartFunction().Next(this.work).Next(this.end)),
                        r"ForkedStartFlow\.start: \.Next\(\) is given 2 times"),
    "EndNextFlow": (lambda: _plain(end=flow.End().Next(this.work)),
                    r"EndNextFlow\.end: an End has no \.Next\(\)"),
    # Callables that are not callable failed when the first task was created or shown.
    "AssignTextFlow": (lambda: _plain(work=flow.View().Assign("ann").Next(this.end)),
                       r"AssignTextFlow\.work: Assign\(\) takes a callable\(activation\), not 'ann' "
                       r"\(for a username write \.Assign\(username='ann'\)\)"),
    "OnCreateFlow": (lambda: _plain(work=flow.View().onCreate("notify").Next(this.end)),
                     r"OnCreateFlow\.work: onCreate\(\) takes a callable\(activation\), not 'notify'"),
    "AvailableFlow": (lambda: _plain(start=flow.Start().Available(True).Next(this.work)),
                      r"AvailableFlow\.start: Available\(\) takes a callable\(user\), not True"),
    "PermissionNumberFlow": (lambda: _plain(work=flow.View().Permission(3).Next(this.end)),
                             r"PermissionNumberFlow\.work: Permission\(\) takes a permission name"),
    # A form that is not a form class: a 500 on the task page.
    "FormTextFlow": (lambda: _plain(work=flow.View(form="ExpenseForm").Next(this.end)),
                     r"FormTextFlow\.work: form= takes a Flask-WTF form class \(a FlaskForm "
                     r"subclass\), not 'ExpenseForm'"),
    "FormFunctionFlow": (lambda: _plain(start=flow.Start(form=lambda request: None).Next(this.work)),
                         r"FormFunctionFlow\.start: form= takes a Flask-WTF form class"),
    # A node named like an attribute of Flow hid it ('path': TypeError: 'View' object is not
    # callable; 'summary': every list of the flow failed).
    "PathNodeFlow": (lambda: _plain(work=flow.View().Next(this.path), path=flow.View().Next(this.end)),
                     r"PathNodeFlow\.path: a node cannot be named 'path': Flow uses that name"),
    "SummaryNodeFlow": (lambda: _plain(work=flow.View().Next(this.summary),
                                       summary=flow.View().Next(this.end)),
                        r"SummaryNodeFlow\.summary: a node cannot be named 'summary'"),
    # A Start (a form people fill in) as a subprocess: the engine started the child without
    # its form, so the child's data lacked every field of it.
    "FormChildFlow": (lambda: _plain(work=flow.Subprocess(UserArgFlow.start).Next(this.end)),
                      r"FormChildFlow\.work: Subprocess needs another flow's StartFunction "
                      r"\(OtherFlow\.start\), got <Start UserArgFlow\.start>, a start form"),
    # Job settings the worker compared and slept on: TypeError inside the worker.
    "JobRetriesFlow": (lambda: _plain(work=flow.Job(print, retries="3").Next(this.end)),
                       r"JobRetriesFlow\.work: Job\(\) retries= takes a whole number of 0 or more, "
                       r"not '3'"),
    "JobTimeoutFlow": (lambda: _plain(work=flow.Job(print, timeout=0).Next(this.end)),
                       r"JobTimeoutFlow\.work: Job\(\) timeout= takes a whole number of seconds above 0, "
                       r"not 0"),
    "JobBackoffFlow": (lambda: _plain(work=flow.Job(print, backoff=-1).Next(this.end)),
                       r"JobBackoffFlow\.work: Job\(\) backoff= takes seconds, 0 or more, not -1"),
    "JobQueueFlow": (lambda: _plain(work=flow.Job(print, queue="").Next(this.end)),
                     r"JobQueueFlow\.work: Job\(\) queue= takes a queue name, not ''"),
    # Names longer than their columns: PostgreSQL refused the first task's INSERT (DataError),
    # SQLite stored them.
    "LongNodeFlow": (lambda: _plain(work=flow.View().Next(this.end), **{"n" * 101: flow.View().Next(this.end)}),
                     r"LongNodeFlow\.n{101}: a node's name is at most 100 characters \(it is stored with "
                     r"each task\), this one has 101"),
    "L" * 250 + "Flow": (lambda: _plain(), r"L{250}Flow: the flow's path '[\w.]+\.L+Flow' is \d+ "
                                           r"characters long: it is stored with each process, at most 255"),
    # Labels that no URL can carry.
    "SlashLabelFlow": (lambda: _plain(flow_label="sales/expense"),
                       r"SlashLabelFlow: flow_label 'sales/expense' is not a label"),
    "NumberLabelFlow": (lambda: _plain(flow_label=7), r"NumberLabelFlow: flow_label 7 is not a label"),
    "EmptyLabelFlow": (lambda: _plain(flow_label=""), r"EmptyLabelFlow: flow_label '' is not a label"),
}


@pytest.mark.parametrize("name", list(WRONG))
def test_a_flow_defined_wrong_fails_when_the_class_is_created(name: str) -> None:
    nodes, message = WRONG[name]
    with pytest.raises(FlowRuntimeError, match=message):
        define(name, **nodes())


def test_what_the_class_checks_still_lets_through() -> None:
    """A form class, a method of the flow, callables, labels with hyphens, a node reused
    by a subclass and a parent's node under a second name in a subclass are all fine."""
    form = _form_class()

    def pick(act: Any) -> None:
        return None

    parent = define("GoodParentFlow", flow_label="good-parent_1",
                    start=flow.Start(form=form).Permission(auto_create=True).Available(lambda user: True)
                    .Next(this.work),
                    work=flow.View(form=form).Permission("good.can_work").Assign(pick).onCreate(pick)
                    .Next(this.check),
                    check=flow.If(lambda act: True).Then(this.end).Else(this.end), end=flow.End())
    child = define("GoodChildFlow", parent, again=parent.work, work=parent.work.Next(parent.end))
    assert child.node("again") is not child.node("work") and child.node("again").name == "again"
    assert [target for target, _ in child.node("work").outgoing()] == [child.node("end")]
    assert parent.node("work").name == "work" and parent.flow_label == "good-parent_1"


# -- running from code with wrong arguments ----------------------------------------------


def test_the_default_start_function_refuses_positional_arguments(session: Session) -> None:
    """``Flow.begin.run({"amount": 5})`` started a process with empty data: the dict was
    dropped without a word."""
    with pytest.raises(FlowRuntimeError, match=r"UserArgFlow\.begin\.run\(\) takes keyword arguments "
                                               r"only .*got 1 positional"):
        UserArgFlow.begin.run({"amount": 5})
    assert count(session, Process) == 0
    assert UserArgFlow.begin.run(amount=5).data == {"amount": 5}


@pytest.mark.parametrize("data", [["amount", 5], "amount", 5])
def test_start_run_with_data_that_is_not_a_dict_says_so(session: Session, users: dict[str, User],
                                                        data: Any) -> None:
    """``Start.run(data=[...])`` failed with TypeError: cannot convert dictionary update
    sequence element #0 to a sequence (a View's prepare already said what it wanted)."""
    with pytest.raises(FlowRuntimeError, match=r"prepare\(\) takes the start data as a dict, not"):
        UserArgFlow.start.run(data=data, user=users["root"])
    assert count(session, Process) == 0


@pytest.mark.parametrize("value", [None, [1, 2], "text"])
@pytest.mark.parametrize("column", ["process", "task"])
def test_data_is_a_dict_and_assigning_anything_else_is_refused(session: Session, column: str,
                                                               value: Any) -> None:
    """``process.data = None`` was taken and stored as JSON null, after which every
    ``process.data["x"]`` (conditions, pages) failed with TypeError; a list failed with
    SQLAlchemy's ValueError. Both are refused on the line, the data unchanged."""
    from webflow.core.exceptions import InputRejected

    process = UserArgFlow.begin.run(amount=5)
    row = process if column == "process" else process.get_task(UserArgFlow.begin)
    before = dict(row.data)
    with pytest.raises(InputRejected, match=r"data holds a JSON dict: assign a dict, not"):
        row.data = value
    assert row.data == before
    session.commit()
    session.expire_all()
    assert row.data == before


class OtherFlow(Flow):
    begin = flow.StartFunction().Next(this.work)
    work = flow.View().Next(this.end)
    end = flow.End()


def test_get_task_refuses_a_node_of_another_flow_or_a_name(session: Session) -> None:
    """``process.get_task(OtherFlow.work)`` on a UserArgFlow process handed back
    UserArgFlow's ``work`` task (the nodes share a name); a name failed with
    AttributeError: 'str' object has no attribute 'name'."""
    process = UserArgFlow.begin.run()
    with pytest.raises(FlowRuntimeError, match=r"<View OtherFlow\.work> is not a node of "
                                               r"UserArgFlow, the flow of process \d+"):
        process.get_task(OtherFlow.work)
    with pytest.raises(FlowRuntimeError, match=r"get_task\(\) takes a node of the flow "
                                               r"\(UserArgFlow\.work\), not 'work'"):
        process.get_task("work")  # type: ignore[arg-type]
    assert process.get_task(UserArgFlow.work).node_name == "work"


# -- app start: the flows an app serves ---------------------------------------------------


def _app(tmp_path: Any, flows: Any) -> Any:
    from webflow import create_app

    return create_app({"TESTING": True, "SECRET_KEY": "t", "WEBFLOW_FLOWS": flows,
                       "SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path / 'app.sqlite'}"})


def test_two_flows_of_one_class_name_in_two_modules_stop_the_app_naming_both(tmp_path: Any) -> None:
    """Same class name, same label, same permissions: served together they would share
    URLs and permissions, so the app refuses to start and names both classes."""
    first = type("TwinFlow", (Flow,), {"__module__": "sales.flows", **_plain()})
    second = type("TwinFlow", (Flow,), {"__module__": "hr.flows", **_plain()})
    with pytest.raises(ValueError, match=r"two flows share the label 'twin': sales\.flows\.TwinFlow "
                                         r"and hr\.flows\.TwinFlow"):
        _app(tmp_path, [first, second])


@pytest.mark.parametrize(("flows", "message"), [
    ([dict], r"WEBFLOW_FLOWS: <class 'dict'> is not a Flow subclass"),
    ([Flow], r"WEBFLOW_FLOWS: <class 'webflow\.core\.flow\.Flow'> is Flow itself"),
    ([UserArgFlow()], r"WEBFLOW_FLOWS: .* is not a flow class"),
    (f"{__name__}:UserArgFlow", r"WEBFLOW_FLOWS is a list of flow classes or 'module:ClassName' "
                                r"strings, not the string"),
])
def test_a_flows_setting_that_names_no_flow_stops_the_app_with_one_line(tmp_path: Any, flows: Any,
                                                                        message: str) -> None:
    """``WEBFLOW_FLOWS: [dict]`` or ``[Flow]`` failed with AttributeError: type object has no
    attribute 'flow_label'; a single string was read letter by letter ("cannot import flow 't'")."""
    with pytest.raises(FlowRuntimeError, match=message):
        _app(tmp_path, flows)


@pytest.mark.parametrize("actor", ["ann", 3])
def test_a_context_user_that_is_a_name_or_an_id_is_refused_where_it_is_given(actor: Any) -> None:
    """``with Context(user="ann"): activation.assign(ann)`` failed inside the permission
    check with AttributeError: 'str' object has no attribute 'id'."""
    from webflow import Context

    with pytest.raises(FlowRuntimeError, match=r"Context\(user=\.\.\.\) takes a User \(or None\), not"):
        Context(user=actor)


def test_a_form_class_that_is_not_a_flask_wtf_form_is_a_checker_warning() -> None:
    """A class that is no form (a stand-in) is let through, and the checker says what the
    pages will make of it."""
    from webflow.core.checks import FlowCheckWarning

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        type("StandInFormFlow", (Flow,), {"__module__": __name__, **_plain(work=flow.View(form=dict)
                                                                            .Next(this.end))})
    assert [str(w.message) for w in caught if issubclass(w.category, FlowCheckWarning)] == [
        "StandInFormFlow: warning: work: form= dict is not a Flask-WTF form class (a FlaskForm subclass): "
        "the built-in page cannot show or check it"]


# -- users and groups ----------------------------------------------------------------------


@pytest.mark.parametrize("model", [User, "Group"])
@pytest.mark.parametrize("value", ["expense.can_approve", [3], ("expense.can_approve", None)])
def test_permissions_are_a_list_of_names_and_a_string_is_refused(model: Any, value: Any) -> None:
    """``Group(permissions="expense.can_approve")`` was taken as the set of its letters: the
    group's users lacked the permission without a word (and held 'e', 'x', ...)."""
    from webflow.models import Group

    cls = Group if model == "Group" else User
    with pytest.raises(FlowRuntimeError, match=r"permissions is a list of permission names"):
        cls(name="approvers", permissions=value) if cls is Group else cls(username="x", permissions=value)
    row = cls(name="ok") if cls is Group else cls(username="ok")
    with pytest.raises(FlowRuntimeError, match=r"permissions is a list of permission names"):
        row.permissions = value
    row.permissions = ["expense.can_approve", "expense.view"]
    assert row.permissions == ["expense.can_approve", "expense.view"]


# -- activations: what SPEC names behaves as it says ---------------------------------------


class GateFlow(Flow):
    start = flow.StartFunction().Next(this.check)
    check = flow.If(lambda act: act.process.data.get("ok")).Then(this.split).Else(this.end)
    split = flow.Split().Next(this.a).Each(this.b, items=lambda act: ["x", "y"])
    a = flow.View().Permission(auto_create=True).Next(this.join)
    b = flow.View().Permission(auto_create=True).Next(this.join)
    join = flow.Join().Next(this.end)
    end = flow.End()


def finish(task: Any, user: User) -> None:
    activation = task.activate()
    activation.assign(user)
    activation.prepare(data={}, user=user)
    activation.done()


def test_gates_calculate_next_and_joins_is_done_answer_as_spec_says(session: Session,
                                                                     users: dict[str, User]) -> None:
    """``calculate_next()`` is the list of (node, token) of every gate: a Split's was
    (node, token, branch data) triples, so ``for node, token in ...`` failed with ValueError;
    ``is_done()`` tells whether the join's region is finished; ``has_perm``, ``set_status``."""
    root, ann = users["root"], users["ann"]
    process = GateFlow.start.run(ok=True)
    check = process.get_task(GateFlow.check).activate()
    assert [(node.name, token) for node, token in check.calculate_next()] == [("split", "start")]
    split = process.get_task(GateFlow.split)
    assert [(node.name, token) for node, token in split.activate().calculate_next()] == [
        ("a", f"start/{split.id}_1"), ("b", f"start/{split.id}_2"), ("b", f"start/{split.id}_3")]
    finish(process.get_task(GateFlow.a), root)
    join = process.get_task(GateFlow.join).activate()
    assert join.get_status() == STATUS.STARTED and join.is_done() is False
    branches = [t for t in process.tasks if t.node_name == "b"]
    assert branches[0].activate().has_perm(root) and not branches[0].activate().has_perm(ann)
    for task in branches:
        finish(task, root)
    session.expire_all()
    join = process.get_task(GateFlow.join).activate()
    assert join.get_status() == STATUS.DONE and join.is_done() is True
    assert process.status == STATUS.DONE
    end = process.get_task(GateFlow.end).activate()
    end.set_status("DONE")
    assert end.get_status() is STATUS.DONE


class OpenFlow(Flow):
    start = flow.Start().Next(this.work)
    work = flow.View().Next(this.end)
    end = flow.End()


def test_nodes_without_permission_settings_are_for_the_flows_viewers(session: Session) -> None:
    """A Start or View without ``.Permission()`` is open to whoever may see the flow
    (``<label>.view`` or ``.manage``), not to everyone and not to no one."""
    from webflow.core import PermissionDenied

    viewer = User(username="viewer", permissions=["open.view"])
    stranger = User(username="stranger", permissions=["other.view"])
    session.add_all([viewer, stranger])
    session.commit()
    assert OpenFlow.start.can_execute(viewer) and not OpenFlow.start.can_execute(stranger)
    with pytest.raises(PermissionDenied):
        OpenFlow.start.run(data={}, user=stranger)
    process = OpenFlow.start.run(data={}, user=viewer)
    task = process.get_task(OpenFlow.work)
    assert task.owner_permission is None
    assert task.activate().has_perm(viewer) and not task.activate().has_perm(stranger)


def test_the_name_limits_are_the_columns_lengths() -> None:
    from webflow.core.flow import MAX_NODE_NAME, MAX_PATH
    from webflow.models import Task

    assert MAX_PATH == Process.__table__.c.flow_class.type.length == Task.__table__.c.flow_class.type.length
    assert MAX_NODE_NAME == Task.__table__.c.flow_task.type.length


@pytest.mark.parametrize("value", [None, "method"])
def test_a_subclass_that_shadows_a_parents_node_with_a_non_node_is_refused(value: str | None) -> None:
    """``class Child(Parent): notify = None`` (meant to drop the node) or a method named like
    the parent's node was overwritten by a copy of the parent's node without a word."""
    parent = define("ShadowParentFlow", **_plain())

    def work(self: Any, activation: Any) -> None:
        return None

    with pytest.raises(FlowRuntimeError, match=r"ShadowChildFlow\.work: the node 'work' of ShadowParentFlow "
                                               r"cannot be replaced by something that is not a node"):
        define("ShadowChildFlow", parent, work=work if value == "method" else None)


# -- a base class of shared methods ------------------------------------------------------


class StampingBase(Flow):
    """Methods and settings shared by the flows below; it declares no nodes."""

    stamp_name = "base"

    def stamp(self, activation: Any) -> None:
        activation.process.data["stamped_by"] = f"{self.stamp_name}:{type(self).__name__}"


class FirstStampFlow(StampingBase):
    stamp_name = "first"
    start = flow.StartFunction().Next(this.mark)
    mark = flow.Handler(this.stamp).Next(this.end)
    end = flow.End()


class SecondStampFlow(StampingBase):
    start = flow.StartFunction().Next(this.mark)
    mark = flow.Handler(this.stamp).Next(this.end)
    end = flow.End()


def test_a_base_class_of_shared_methods_serves_the_flows_that_subclass_it(session: Session,
                                                                           tmp_path: Any) -> None:
    """``class StampingBase(Flow)`` with methods and no nodes failed when the class was
    created ("flow StampingBase has no start node"), so flows could not share callbacks
    through a base class. Each subclass runs the base's method on its own instance."""
    first, second = FirstStampFlow.start.run(), SecondStampFlow.start.run()
    session.commit()
    assert (first.status, first.data) == (STATUS.DONE, {"stamped_by": "first:FirstStampFlow"})
    assert (second.status, second.data) == (STATUS.DONE, {"stamped_by": "base:SecondStampFlow"})
    assert [FirstStampFlow.flow_label, SecondStampFlow.flow_label] == ["first_stamp", "second_stamp"]
    from webflow.blueprints.lookups import all_flows

    with _app(tmp_path, [FirstStampFlow, f"{__name__}:SecondStampFlow"]).app_context():
        assert all_flows() == {"first_stamp": FirstStampFlow, "second_stamp": SecondStampFlow}


@pytest.mark.parametrize("spec", [StampingBase, f"{__name__}:StampingBase"])
def test_serving_a_base_class_that_declares_no_nodes_is_refused(tmp_path: Any, spec: Any) -> None:
    with pytest.raises(FlowRuntimeError, match=r"WEBFLOW_FLOWS: StampingBase declares no nodes: it is "
                                               r"a base class for other flows, not a flow to serve"):
        _app(tmp_path, [FirstStampFlow, spec])


def test_a_class_with_nodes_but_no_start_says_how_to_write_a_base() -> None:
    with pytest.raises(FlowRuntimeError, match=r"flow HalfBaseFlow has no start node \(a base class of "
                                               r"shared methods for other flows declares no nodes at all\)"):
        define("HalfBaseFlow", end=flow.End())


# -- exception_guard on a task with no way out of ERROR ------------------------------------


@pytest.mark.parametrize("node", ["work", "end"])
def test_exception_guard_from_code_never_strands_a_task_in_an_error_it_cannot_leave(
        session: Session, users: dict[str, User], node: str) -> None:
    """A View (or an End) has no transition out of ERROR: ``exception_guard()`` called on
    its activation from code, under the web policy, stored ERROR all the same, and the task
    could then be neither done, undone nor canceled. The failure is now an ``error`` row of
    the audit trail with the traceback, what the block did is undone, and the task keeps
    its status and its transitions."""
    from webflow import Context
    from webflow.models import Task, TaskEvent

    process = UserArgFlow.begin.run()
    session.commit()
    task = session.scalars(sa.select(Task).where(Task.process_id == process.id,
                                                 Task.node_name == "work")).one()
    if node == "end":
        task = Task(process=process, flow_class_path=task.flow_class_path, node_name="end",
                    flow_task_type="END", token=task.token)
        session.add(task)
        session.commit()
    activation = task.activate()
    before = activation.get_status()
    with Context(propagate_exception=False, user=users["root"]):
        with activation.exception_guard():
            process.data = {"half": "done"}
            raise RuntimeError("the callback failed")
    session.commit()
    session.expire_all()
    assert task.status == before and task.comments is None
    assert process.data == {}
    event = session.scalars(sa.select(TaskEvent).where(TaskEvent.task_id == task.id)
                            .order_by(TaskEvent.id.desc())).first()
    assert event is not None and event.transition == "error" and event.to_status == before
    assert "RuntimeError: the callback failed" in (event.comments or "")
    assert {t.name for t in task.activate().get_available_transitions()} >= {"cancel"}
