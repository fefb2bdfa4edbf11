"""process.data and task.data: JSON that saves a change made anywhere inside it.

SQLAlchemy's ``MutableDict`` notices ``data["x"] = y`` but not ``data["order"]["total"] = 5``
or ``data["items"].append(x)``: the nested dict or list is a plain one, nothing tells the
row, and unless something else assigns the column the change is silently not saved. Users
and job functions write it the natural way, so here every dict and list inside the value
is a tracked one (``TrackedDict``, ``TrackedList``) that tells the containers holding it,
up to the root, which marks its rows changed the way ``MutableDict`` does.

Every container inside is wrapped when the value is loaded or assigned, and every value put
in later is wrapped as it goes in, so whatever path hands a nested value out (``dict(data)``,
``{**data}``, iteration, a slice) hands out a tracked one. A value put in is copied, as
``MutableDict`` copies a dict assigned to the column: change it through ``data`` afterwards.
A copy (``copy.deepcopy``, pickling) is made of plain dicts and lists."""

from __future__ import annotations

import json
import math
import weakref
from collections.abc import Iterable
from typing import Any, SupportsIndex

from sqlalchemy.ext.mutable import MutableDict

from .exceptions import InputRejected

#: What ``unstorable`` says of NaN or an infinity (a form tells those apart by it).
NOT_A_JSON_NUMBER = ", which is not a JSON number"


def unstorable(value: Any) -> str | None:
    """Why ``value`` cannot be stored as JSON the same way on both databases, or None:
    something that is not JSON (a datetime, a set, an object), a key that is not a string
    (JSON would hand it back as one), text that cannot be stored (``text_problem``), NaN or
    an infinity (not JSON; PostgreSQL refuses them). Tracked values inside were
    checked when they went in (or loaded as stored) and are not walked again."""
    if value is None or isinstance(value, bool | int | _Tracked | DataDict):
        return None
    if isinstance(value, str):
        return text_problem(value)
    if isinstance(value, float):
        return None if math.isfinite(value) else f"{value!r}{NOT_A_JSON_NUMBER}"
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                return f"the key {key!r}, which is not a string"
            why = unstorable(key) or unstorable(item)
            if why is not None:
                return f"{why} under {key[:40]!r}"
        return None
    if isinstance(value, list | tuple):
        for item in value:
            why = unstorable(item)
            if why is not None:
                return why
        return None
    return f"a {type(value).__name__}, which is not JSON (store a string, number, list or dict)"


def text_problem(text: str) -> str | None:
    """Why a string cannot be stored as text on both databases, or None: the NUL
    character (PostgreSQL refuses it), or a lone surrogate (no UTF-8 encoder takes it;
    bytes decoded with ``surrogateescape`` hold them)."""
    if "\x00" in text:
        return "the NUL character (\\x00)"
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        return f"a character that is not UTF-8 ({exc.object[exc.start:exc.end]!r})"
    return None


def check_storable(value: Any, where: str = "data") -> None:
    """Refuse, where it is written, a value the column could not store (InputRejected,
    nothing changed), rather than at a later flush far from the line that wrote it."""
    why = unstorable(value)
    if why is not None:
        raise InputRejected(f"{where} cannot hold {why}")


def _put(value: Any, owner: Any, key: Any = None) -> Any:
    """A value written into ``owner`` by code (under ``key`` in a dict): checked
    (``check_storable``, ``_holds``), then adopted."""
    check_storable(value if key is None else {key: value})
    if isinstance(owner, _Tracked) and isinstance(value, dict | list | tuple) and _holds(value, owner):
        raise InputRejected(f"data cannot hold a value that holds the dict or list it is put into"
                            f"{f' (under {key!r:.40})' if key is not None else ''}: JSON has no "
                            "cycles; put in a copy (copy.deepcopy)")
    return _adopt(value, owner)


def _holds(value: Any, target: _Tracked) -> bool:
    """True when ``target`` is ``value`` or inside it. A tracked dict or list keeps the
    tracked ones put in it (it does not copy them), so putting ``data["a"]`` into itself, or
    into a dict inside it, made a cycle: telling its owners of a change recursed until
    RecursionError, after the cycle was in place, and the flush failed ("Circular reference
    detected") far from the line that wrote it. (The root is copied wherever it is put:
    ``data["copy"] = data`` makes no cycle.)"""
    stack, seen = [value], set()
    while stack:
        item = stack.pop()
        if item is target:
            return True
        if id(item) in seen:
            continue
        seen.add(id(item))
        stack.extend(child for child in (item.values() if isinstance(item, dict) else item)
                     if isinstance(child, dict | list | tuple))
    return False


def _adopt(value: Any, owner: Any) -> Any:
    """``value`` as it is kept inside ``owner``: dicts and lists tracked (a tracked one
    already is, with its whole inside: it only learns of one more owner)."""
    if isinstance(value, _Tracked):
        value._owners[id(owner)] = weakref.ref(owner)
        return value
    if isinstance(value, dict):
        tracked: _Tracked = TrackedDict(value)
    elif isinstance(value, list):
        tracked = TrackedList(value)
    else:
        return value
    tracked._owners[id(owner)] = weakref.ref(owner)
    return tracked


def dumps(value: Any) -> str:
    """``value`` as JSON text that both databases read back as the same value. PostgreSQL
    keeps a JSON number as a ``numeric``, which prints ``1e+16`` (Python's text for a float
    from 1e16 up) as ``10000000000000000``: read back as an int, where SQLite gave the
    float back. Such floats are written out with their point (``.0``), which ``numeric``
    keeps. (``numeric`` has no ``-0.0``: PostgreSQL reads it back as ``0.0``, equal to it.)"""
    text = json.dumps(value)
    if "e+" not in text:
        return text  # no float that needs care (a string that merely holds "e+" is rare)
    return _encode(value)


def _encode(value: Any) -> str:
    if isinstance(value, float):
        text = repr(value)
        return f"{int(value)}.0" if "e+" in text else text
    if isinstance(value, dict):
        return "{" + ", ".join(f"{json.dumps(key)}: {_encode(item)}" for key, item in value.items()) + "}"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_encode(item) for item in value) + "]"
    return json.dumps(value)


def same_json(a: Any, b: Any) -> bool:
    """True when ``a`` and ``b`` are the same JSON value. Python's ``==`` takes ``True`` for
    ``1`` and ``1.0`` for ``1``, which JSON (and both databases) store apart: a change from
    one to the other is a change."""
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same_json(a[key], b[key]) for key in a)
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return len(a) == len(b) and all(same_json(x, y) for x, y in zip(a, b, strict=True))
    return _number_kind(a) is _number_kind(b) and a == b


def _number_kind(value: Any) -> type | None:
    for kind in (bool, float, int):  # bool first: a bool is an int to isinstance
        if isinstance(value, kind):
            return kind
    return None


def plain(value: Any) -> Any:
    """A plain copy of a JSON value: dicts and lists all the way down."""
    if isinstance(value, dict):
        return {key: plain(item) for key, item in value.items()}
    if isinstance(value, list):
        return [plain(item) for item in value]
    return value


class _Tracked:
    """A dict or list inside a tracked value: a change tells whoever holds it. Held weakly
    (one value may sit in two containers, e.g. after ``data = {**data, ...}``); a root
    gone does not need telling. (By id: dicts and lists cannot be in a WeakSet.)"""

    _owners: dict[int, weakref.ref[Any]]

    def _changed(self) -> None:
        for ref in list(self._owners.values()):
            owner = ref()
            if owner is not None:
                owner._changed()

    def __deepcopy__(self, memo: dict[int, Any]) -> Any:
        return plain(self)


class _DictWrites:
    """The writes a tracked dict and the root make the same way: through ``__setitem__``
    and ``update``, which check, adopt and tell."""

    def setdefault(self, key: Any, default: Any = None) -> Any:
        if key not in self:  # type: ignore[operator]
            self[key] = default  # type: ignore[index]
        return self[key]  # type: ignore[index]

    def __ior__(self, other: Any) -> Any:
        self.update(other)  # type: ignore[attr-defined]
        return self


class TrackedDict(_DictWrites, _Tracked, dict):  # type: ignore[type-arg]
    def __init__(self, value: Any = (), /) -> None:
        dict.__init__(self, value)
        self._owners = {}
        for key, item in dict.items(self):
            if isinstance(item, dict | list):
                dict.__setitem__(self, key, _adopt(item, self))

    def __reduce__(self) -> Any:
        return dict, (plain(self),)

    def __setitem__(self, key: Any, value: Any) -> None:
        dict.__setitem__(self, key, _put(value, self, key))
        self._changed()

    def __delitem__(self, key: Any) -> None:
        dict.__delitem__(self, key)
        self._changed()

    def update(self, *args: Any, **kwargs: Any) -> None:
        for key, value in dict(*args, **kwargs).items():
            dict.__setitem__(self, key, _put(value, self, key))
        self._changed()

    def pop(self, *args: Any) -> Any:
        result = dict.pop(self, *args)
        self._changed()
        return result

    def popitem(self) -> tuple[Any, Any]:
        result = dict.popitem(self)
        self._changed()
        return result

    def clear(self) -> None:
        dict.clear(self)
        self._changed()


class TrackedList(_Tracked, list):  # type: ignore[type-arg]
    def __init__(self, value: Iterable[Any] = (), /) -> None:
        list.__init__(self, value)
        self._owners = {}
        for index, item in enumerate(list.__iter__(self)):
            if isinstance(item, dict | list):
                list.__setitem__(self, index, _adopt(item, self))

    def __reduce__(self) -> Any:
        return list, (plain(self),)

    def __setitem__(self, index: Any, value: Any) -> None:
        if isinstance(index, slice):
            value = [_put(item, self) for item in value]
        else:
            value = _put(value, self)
        list.__setitem__(self, index, value)
        self._changed()

    def __delitem__(self, index: Any) -> None:
        list.__delitem__(self, index)
        self._changed()

    def __iadd__(self, other: Iterable[Any]) -> TrackedList:  # type: ignore[override,misc]
        self.extend(other)
        return self

    def __imul__(self, count: SupportsIndex) -> TrackedList:  # type: ignore[misc]
        list.__imul__(self, count)
        self._changed()
        return self

    def append(self, value: Any) -> None:
        list.append(self, _put(value, self))
        self._changed()

    def extend(self, values: Iterable[Any]) -> None:
        list.extend(self, [_put(value, self) for value in values])
        self._changed()

    def insert(self, index: SupportsIndex, value: Any) -> None:
        list.insert(self, index, _put(value, self))
        self._changed()

    def pop(self, index: SupportsIndex = -1) -> Any:
        result = list.pop(self, index)
        self._changed()
        return result

    def remove(self, value: Any) -> None:
        list.remove(self, value)
        self._changed()

    def clear(self) -> None:
        list.clear(self)
        self._changed()

    def sort(self, *args: Any, **kwargs: Any) -> None:
        list.sort(self, *args, **kwargs)
        self._changed()

    def reverse(self) -> None:
        list.reverse(self)
        self._changed()


class DataDict(_DictWrites, MutableDict[str, Any]):  # type: ignore[misc]
    """The column's value: ``MutableDict`` (a change of a key marks the row changed) whose
    dicts and lists inside are tracked too."""

    def __init__(self, value: Any = (), /, **kwargs: Any) -> None:
        super().__init__(value, **kwargs)
        for key, item in dict.items(self):
            if isinstance(item, dict | list):
                dict.__setitem__(self, key, _adopt(item, self))

    def _changed(self) -> None:
        self.changed()

    def __setitem__(self, key: str, value: Any) -> None:
        super().__setitem__(key, _put(value, self, key))

    def update(self, *args: Any, **kwargs: Any) -> None:
        super().update({key: _put(value, self, key) for key, value in dict(*args, **kwargs).items()})

    def __deepcopy__(self, memo: dict[int, Any]) -> Any:
        return plain(self)

    @classmethod
    def coerce(cls, key: str, value: Any) -> DataDict | None:
        if isinstance(value, cls):
            return value
        if isinstance(value, dict):
            return cls(value)
        # None was stored as JSON null (then every data["x"] failed), a list failed with
        # SQLAlchemy's ValueError: the column holds a dict, as SPEC says.
        raise InputRejected(f"process.data and task.data: data holds a JSON dict: assign a dict, "
                            f"not {value!r:.80}")
