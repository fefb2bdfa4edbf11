"""Flow definitions: the ``Flow`` class, ``this`` references and the ``Node`` base.

A flow class is a definition only: it can be created at import time without an app or a
database. Its nodes are resolved (``this.x`` and plain names) when the class is created,
so a bad name fails there, with the name in the message.
"""

from __future__ import annotations

import copy
import importlib
import re
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

from .exceptions import FlowRuntimeError

if TYPE_CHECKING:
    from .activation import Activation

N = TypeVar("N", bound="Node")


class NodeRef:
    """A reference to a node or method of the flow being defined, by name."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return f"this.{self.name}"


class This:
    """``this.approve`` refers to the node ``approve`` of the flow being defined."""

    def __getattr__(self, name: str) -> NodeRef:
        if name.startswith("__"):
            raise AttributeError(name)
        return NodeRef(name)


this = This()

Ref = Any  # NodeRef | str | Node | callable


class Node:
    """A node of a flow. Subclasses say which activation runs it and how it continues."""

    activation_class: ClassVar[type[Activation]]
    task_type: ClassVar[str] = "NODE"
    #: True for the node of a ``Split().Each``: each task is one item's branch.
    fan_out: bool = False
    #: attributes holding references to resolve when the flow class is created
    ref_attributes: ClassVar[tuple[str, ...]] = ()

    def __init__(self) -> None:
        self.name: str = ""
        # Set when the Flow class is created (None until then, and on a builder's copy).
        self.flow_class: type[Flow] = None  # type: ignore[assignment]
        self._next: list[Ref] = []
        self._next_overridden = False
        self.description: str = ""

    # -- builders --------------------------------------------------------------------

    def _writable(self: N) -> N:
        """Builders on a node of a finished flow class work on a copy (for subclasses)."""
        if self.flow_class is None:
            return self
        clone = copy.copy(self)
        clone.flow_class = None  # type: ignore[assignment]  # unbound until a class takes it
        clone._next = list(self._next)
        clone._next_overridden = True
        for attr in self.ref_attributes:
            value = getattr(self, attr)
            if isinstance(value, list):
                setattr(clone, attr, list(value))
        return clone

    def Next(self: N, node: Ref) -> N:
        """Continue with the node once this one is done."""
        self = self._writable()
        if self._next_overridden:
            # First .Next on an inherited node replaces the parent's outgoing edges.
            self._next = []
            self._next_overridden = False
        self._next.append(node)
        return self

    def attached_nodes(self) -> list[tuple[str, Node]]:
        """Further nodes (by name) that this node brings into its flow."""
        return []

    def Annotation(self: N, description: str) -> N:
        self = self._writable()
        self.description = description
        return self

    # -- resolution ------------------------------------------------------------------

    def resolve(self, flow_class: type[Flow]) -> None:
        """Replace references by the flow's nodes and methods."""
        self._next_nodes = [flow_class.resolve_node(ref, self) for ref in self._next]

    # -- running ---------------------------------------------------------------------

    def next_targets(self, activation: Activation) -> list[tuple[Node, str]]:
        """The nodes to activate after the task, each with the token it gets."""
        return [(node, activation.task.token) for node in self._next_nodes]

    def outgoing(self) -> list[tuple[Node, str]]:
        """Edges for the flow graph: (target node, label)."""
        return [(node, "") for node in self._next_nodes]

    # -- permissions -----------------------------------------------------------------

    def can_execute(self, user: Any, task: Any) -> bool:
        return False

    def can_assign(self, user: Any, task: Any) -> bool:
        return False

    def user_has_permission(self, user: Any) -> bool:
        """True when the user may work on tasks of this node (nodes people work on say who)."""
        return False

    # -- misc ------------------------------------------------------------------------

    def __copy__(self) -> Node:
        clone = object.__new__(type(self))
        clone.__dict__.update(self.__dict__)
        return clone

    @property
    def title(self) -> str:
        return self.name.replace("_", " ").capitalize()

    def __str__(self) -> str:
        return self.title

    def __repr__(self) -> str:
        owner = self.flow_class.__name__ if self.flow_class else "?"
        return f"<{type(self).__name__} {owner}.{self.name}>"


#: The lengths of the columns that store a flow's path and a node's name (core.models).
MAX_PATH = 255
MAX_NODE_NAME = 100

_registry: dict[str, type[Flow]] = {}


def resolve_flow_class(path: str) -> type[Flow]:
    """The flow class stored under ``module.QualName`` (importing the module if needed)."""
    try:
        return _registry[path]
    except KeyError:
        pass
    module, _, name = path.rpartition(".")
    try:
        importlib.import_module(module)
        return _registry[path]
    except (ImportError, KeyError) as exc:
        raise FlowRuntimeError(f"unknown flow class {path!r}") from exc


def import_flow(spec: str | type[Flow]) -> type[Flow]:
    """A flow class from the class itself or a ``"module:ClassName"`` string."""
    if isinstance(spec, type):  # a class that is no flow failed later, as an AttributeError
        if spec is Flow:
            raise FlowRuntimeError(f"WEBFLOW_FLOWS: {spec!r} is Flow itself: name your subclass of it")
        if not issubclass(spec, Flow):
            raise FlowRuntimeError(f"WEBFLOW_FLOWS: {spec!r} is not a Flow subclass")
        return _served(spec)
    if not isinstance(spec, str):
        raise FlowRuntimeError(f"WEBFLOW_FLOWS: {spec!r:.80} is not a flow class or a "
                               "'module:ClassName' string")
    module, sep, name = spec.partition(":")
    if not sep:
        module, _, name = spec.rpartition(".")
    try:
        if not module or not name:
            raise ImportError("expected 'module:ClassName'")
        cls = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as exc:
        raise FlowRuntimeError(f"cannot import flow {spec!r}: {exc}") from exc
    if not (isinstance(cls, type) and issubclass(cls, Flow)) or cls is Flow:
        raise FlowRuntimeError(f"{spec!r} is not a Flow subclass")
    return _served(cls)


def _served(cls: type[Flow]) -> type[Flow]:
    if cls.is_base:
        raise FlowRuntimeError(f"WEBFLOW_FLOWS: {cls.__name__} declares no nodes: it is a base class for "
                               "other flows, not a flow to serve (list the flows that subclass it)")
    return cls


def _snake_case(name: str) -> str:
    """The class name without ``Flow`` in snake_case; an acronym is one word
    (``HTTPRequestFlow`` -> ``http_request``, ``MyHTTPFlow`` -> ``my_http``)."""
    name = re.sub(r"Flow$", "", name) or name
    name = re.sub(r"([A-Z]+)([A-Z][a-z])", r"\1_\2", name)  # HTTPRequest -> HTTP_Request
    name = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", name)     # HelloWorld -> Hello_World
    return name.lower()


class _InstanceDescriptor:
    """``FlowClass.instance``: the one instance on which node callbacks are bound."""

    def __get__(self, obj: Any, owner: type) -> Any:
        if owner.__dict__.get("_instance") is None:
            owner._instance = owner()  # type: ignore[attr-defined]
        return owner.__dict__["_instance"]


class FlowMeta(type):
    def __init__(cls, name: str, bases: tuple[type, ...], attrs: dict[str, Any]) -> None:
        super().__init__(name, bases, attrs)
        if not any(isinstance(base, FlowMeta) for base in bases):
            return  # Flow itself
        flow_cls: type[Flow] = cls  # type: ignore[assignment]
        nodes: dict[str, Node] = {}
        for klass in reversed(cls.__mro__):
            for attr, value in vars(klass).items():
                if isinstance(value, Node):
                    nodes.pop(attr, None)  # keep definition order, subclass position wins
                    nodes[attr] = value
        if not nodes:
            # A base of shared methods and settings for flows that subclass it: nothing to
            # check, label or register; WEBFLOW_FLOWS refuses it (import_flow).
            flow_cls._nodes, flow_cls.is_base = {}, True
            return
        flow_cls.is_base = False
        for attr, value in attrs.items():
            inherited = nodes.get(attr)
            if inherited is not None and not isinstance(value, Node):
                # It was overwritten by a copy of the parent's node without a word.
                owner = inherited.flow_class.__name__ if inherited.flow_class else "a base class"
                raise FlowRuntimeError(f"{name}.{attr}: the node {attr!r} of {owner} cannot be replaced by "
                                       "something that is not a node (give it another name)")
        fresh: dict[int, str] = {}
        for attr, node in nodes.items():
            if attr in _FLOW_ATTRIBUTES:
                raise FlowRuntimeError(f"{name}.{attr}: a node cannot be named {attr!r}: Flow uses that "
                                       "name (rename the node)")
            if node.flow_class is None:  # made in this class body: one attribute each
                if id(node) in fresh:
                    raise FlowRuntimeError(
                        f"{name}.{attr}: the node of {fresh[id(node)]!r} is used again as {attr!r}: "
                        "a node is one step of the flow, make a node for each name")
                fresh[id(node)] = attr
        for attr, node in list(nodes.items()):
            if node.flow_class is not None and node.flow_class is not cls:
                node = node._writable()  # inherited: this class gets its own copy
                node._next_overridden = False
                setattr(cls, attr, node)
                nodes[attr] = node
            node.name = attr
            node.flow_class = flow_cls
        for node in list(nodes.values()):
            # Nodes a builder adds beside its node (View.OnTimeout's boundary timers).
            for attr, extra in node.attached_nodes():
                if attr in nodes:
                    raise FlowRuntimeError(f"flow {name}: {node.name} adds a node {attr!r}, "
                                           "which is already a node of the flow")
                extra.name, extra.flow_class = attr, flow_cls
                nodes[attr] = extra
        flow_cls._nodes = nodes
        if "flow_label" not in attrs:
            flow_cls.flow_label = _snake_case(name)
        label = flow_cls.flow_label
        if not isinstance(label, str) or not re.fullmatch(r"[\w-]+", label):
            raise FlowRuntimeError(f"{name}: flow_label {label!r} is not a label: it goes into URLs "
                                   "and permission names, so use letters, digits, _ and - only")
        doc = (attrs.get("__doc__") or "").strip()
        first, _, rest = doc.partition("\n")
        flow_cls.process_title = attrs.get("process_title") or first.strip() or name
        flow_cls.process_description = attrs.get("process_description") or rest.strip()
        flow_cls._instance = None
        for node in nodes.values():
            # Two .Next() on a plain node ran both targets on one token, outside any split:
            # a Join after them found no split and fired at the first arrival.
            if type(node).Next is Node.Next and len(node._next) > 1:
                raise FlowRuntimeError(
                    f"{name}.{node.name}: .Next() is given {len(node._next)} times; a node continues to "
                    "one node (to run several at once, lead to a flow.Split() and .Next() each from it)")
            node.resolve(flow_cls)
        for node in nodes.values():
            for target, _ in node.outgoing():
                if target.task_type == "START":
                    raise FlowRuntimeError(
                        f"{name}.{node.name} leads to {target.name!r}, a start node: a start node "
                        "begins a process and cannot be a step after another (its task would wait "
                        "for ever)")
        if not any(n.task_type == "START" for n in nodes.values()):
            raise FlowRuntimeError(f"flow {name} has no start node (a base class of shared methods for "
                                   "other flows declares no nodes at all)")
        # Stored with each process and task: PostgreSQL refused a longer one at the first
        # INSERT (DataError), SQLite stored it (the columns of core.models).
        if len(flow_cls.path()) > MAX_PATH:
            raise FlowRuntimeError(f"{name}: the flow's path {flow_cls.path()!r} is {len(flow_cls.path())} "
                                   f"characters long: it is stored with each process, at most {MAX_PATH}")
        for attr in nodes:
            if len(attr) > MAX_NODE_NAME:
                raise FlowRuntimeError(f"{name}.{attr}: a node's name is at most {MAX_NODE_NAME} characters "
                                       f"(it is stored with each task), this one has {len(attr)}")
        from .checks import warn_findings

        flow_cls.check_findings = warn_findings(flow_cls)
        _registry[flow_cls.path()] = flow_cls


class Flow(metaclass=FlowMeta):
    """Base class of flows: subclass it and declare nodes as class attributes."""

    flow_label: ClassVar[str]
    process_title: ClassVar[str]
    process_description: ClassVar[str]
    _nodes: ClassVar[dict[str, Node]]
    _instance: ClassVar[Flow | None]
    #: What the flow checker found when the class was created (see ``checks``).
    check_findings: ClassVar[list[Any]]
    #: True for a subclass that declares no nodes: a base of shared methods for other flows.
    is_base: ClassVar[bool] = True

    @classmethod
    def path(cls) -> str:
        return f"{cls.__module__}.{cls.__qualname__}"

    instance: ClassVar[Any] = _InstanceDescriptor()

    @classmethod
    def nodes(cls) -> Iterator[Node]:
        return iter(cls._nodes.values())

    @classmethod
    def node(cls, name: str) -> Node:
        try:
            return cls._nodes[name]
        except KeyError:
            raise FlowRuntimeError(f"flow {cls.__name__} has no node {name!r}") from None

    @classmethod
    def start_nodes(cls) -> list[Node]:
        return [n for n in cls._nodes.values() if n.task_type == "START"]

    @classmethod
    def resolve_node(cls, ref: Ref, referrer: Node) -> Node:
        """The node a reference names; an unknown name fails with the name in the message."""
        target = cls._resolve(ref, referrer)
        if not isinstance(target, Node):
            raise FlowRuntimeError(
                f"{cls.__name__}.{referrer.name}: {ref!r} is not a node of the flow"
            )
        return target

    @classmethod
    def resolve_callable(cls, ref: Ref, referrer: Node) -> Callable[..., Any]:
        """A callable given directly, or a method of the flow named by ``this.x``."""
        if isinstance(ref, NodeRef | str):
            name = ref.name if isinstance(ref, NodeRef) else ref
            if name in cls._nodes or not callable(getattr(cls, name, None)):
                raise FlowRuntimeError(
                    f"{cls.__name__}.{referrer.name}: {name!r} is not a method of the flow"
                )
            return lambda *a, **kw: getattr(cls.instance, name)(*a, **kw)
        if not callable(ref):
            raise FlowRuntimeError(f"{cls.__name__}.{referrer.name}: {ref!r} is not callable")
        return ref  # type: ignore[no-any-return]

    @classmethod
    def _resolve(cls, ref: Ref, referrer: Node) -> Any:
        if isinstance(ref, Node):
            if ref.flow_class is None and ref.name == "":
                raise FlowRuntimeError(
                    f"{cls.__name__}.{referrer.name}: the target node must be an attribute "
                    "of the flow; refer to it as this.<name>"
                )
            if ref.flow_class is not None and not issubclass(cls, ref.flow_class):
                # It was taken by its name: the task went to this flow's node of that name.
                raise FlowRuntimeError(
                    f"{cls.__name__}.{referrer.name}: {ref!r} is a node of {ref.flow_class.__name__}, "
                    "another flow: refer to this flow's nodes as this.<name>")
            ref = ref.name
        name = ref.name if isinstance(ref, NodeRef) else ref
        if not isinstance(name, str):
            raise FlowRuntimeError(f"{cls.__name__}.{referrer.name}: bad reference {ref!r}")
        if name not in cls._nodes:
            raise FlowRuntimeError(
                f"{cls.__name__}.{referrer.name} refers to unknown node {name!r}"
            )
        return cls._nodes[name]

    # -- permissions -------------------------------------------------------------------

    @classmethod
    def view_permission(cls) -> str:
        return f"{cls.flow_label}.view"

    @classmethod
    def manage_permission(cls) -> str:
        return f"{cls.flow_label}.manage"

    @classmethod
    def permissions(cls) -> list[str]:
        """Every permission the flow uses."""
        names = [cls.view_permission(), cls.manage_permission()]
        for node in cls.nodes():
            perm = getattr(node, "permission_name", None)
            if perm and perm not in names:
                names.append(perm)
        return names

    @classmethod
    def can_view(cls, user: Any) -> bool:
        return bool(user is not None and (user.has_perm(cls.view_permission())
                                          or user.has_perm(cls.manage_permission())))

    @classmethod
    def can_manage(cls, user: Any) -> bool:
        return bool(user is not None and user.has_perm(cls.manage_permission()))

    def summary(self, process: Any) -> str:
        """One line about a process for lists and search (override for your own)."""
        parts = [f"{k}: {v}" for k, v in list((process.data or {}).items())[:4]
                 if not isinstance(v, dict | list)]
        return "; ".join(parts)  # cut to the column's length where it is stored


#: What a node must not be named: Flow's own attributes (a node named ``path`` or
#: ``summary`` hid the method the engine and the pages call).
_FLOW_ATTRIBUTES = frozenset(
    {attr for attr in vars(Flow) if not attr.startswith("__")}
    | {"flow_label", "process_title", "process_description", "check_findings", "_nodes", "_instance"})
