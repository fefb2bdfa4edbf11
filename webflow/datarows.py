"""Process data as people read it: the flow's form labels and formatted values.

``process.data`` is keyed by form field names ("courier", "insured"); a page shows the label
of the field that wrote each key ("Carrier", "Insure the shipment") and its value formatted
as the form offered it (Yes/No, the choice's label, a date), never the raw key or ``True``.
Keys no form of the flow wrote (a handler's own) keep their name, made readable.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, time
from functools import cache
from typing import Any

from wtforms import (
    BooleanField,
    DateField,
    DateTimeField,
    FieldList,
    FormField,
    MonthField,
    SelectField,
    SelectMultipleField,
    TimeField,
)
from wtforms.fields.core import UnboundField

from .core.flow import Flow


@dataclass(frozen=True)
class FieldInfo:
    label: str
    field_class: type
    choices: dict[str, str]
    #: The fields of the form a FormField (or a FieldList of them) holds, by name.
    inner: dict[str, FieldInfo] | None = None


@dataclass(frozen=True)
class DataRow:
    key: str
    label: str
    value: str
    #: Text of several lines (shown with its line breaks).
    multiline: bool


@cache
def form_fields(flow_class: type[Flow]) -> dict[str, FieldInfo]:
    """The fields of every form of the flow's nodes, by name (the first form that has it)."""
    fields: dict[str, FieldInfo] = {}
    for node in flow_class.nodes():
        form_class = getattr(node, "form", None)
        if form_class is not None:
            fields = {**_fields_of(form_class), **fields}
    return fields


def _fields_of(form_class: type, depth: int = 0) -> dict[str, FieldInfo]:
    """The fields of one form class, by name (the forms inside it too, a few levels deep)."""
    fields: dict[str, FieldInfo] = {}
    for name in dir(form_class):
        unbound = getattr(form_class, name, None)
        if not isinstance(unbound, UnboundField) or name == "csrf_token":
            continue
        label = unbound.kwargs.get("label") or (unbound.args[0] if unbound.args else None)
        if isinstance(label, UnboundField | type):
            # A FieldList's first argument is its entries' field, a FormField's its form class:
            # no label (shown as "<UnboundField(FormField, ...)>" on the data card before).
            label = None
        inner = _inner_form(unbound)
        fields[name] = FieldInfo(str(label or readable(name)),
                                 unbound.field_class, _choices(unbound.kwargs.get("choices")),
                                 _fields_of(inner, depth + 1) if inner is not None and depth < 4 else None)
    return fields


def _inner_form(unbound: UnboundField) -> type | None:
    """The form class a FormField, or a FieldList of FormFields, holds."""
    if (issubclass(unbound.field_class, FieldList) and unbound.args
            and isinstance(unbound.args[0], UnboundField)):
        unbound = unbound.args[0]
    if not issubclass(unbound.field_class, FormField):
        return None
    form_class = unbound.args[0] if unbound.args else unbound.kwargs.get("form_class")
    return form_class if isinstance(form_class, type) else None


def _choices(choices: Any) -> dict[str, str]:
    """A SelectField's choices as value -> label (pairs, SelectChoice or plain values; a
    dict is of option groups, each a list of those: their labels were not shown before)."""
    found: dict[str, str] = {}
    if not choices or callable(choices):
        return found
    if isinstance(choices, dict):
        for group in choices.values():
            found.update(_choices(group))
        return found
    for choice in choices:
        if isinstance(choice, str):
            found[choice] = choice
        elif hasattr(choice, "value"):  # SelectChoice
            found[str(choice.value)] = str(choice.label)
        elif isinstance(choice, list | tuple) and len(choice) >= 2:
            found[str(choice[0])] = str(choice[1])
    return found


def readable(key: str) -> str:
    """``approved_by`` -> ``Approved by``."""
    text = key.replace("_", " ").strip()
    return text[:1].upper() + text[1:] if text else key


def formatted(value: Any, info: FieldInfo | None) -> str:
    """The value as the form showed it: Yes/No, a choice's label, a date; "–" for nothing."""
    if value is None or value == "":
        return "–"
    if isinstance(value, bool) or (info is not None and issubclass(info.field_class, BooleanField)):
        return "Yes" if value else "No"
    if info is not None and info.choices:
        if isinstance(value, list) or issubclass(info.field_class, SelectMultipleField):
            return ", ".join(info.choices.get(str(v), str(v)) for v in (value or []))
        if issubclass(info.field_class, SelectField):
            return info.choices.get(str(value), str(value))
    if isinstance(value, str) and info is not None and issubclass(info.field_class, DateTimeField):
        return _moment(value, info.field_class)
    inner = info.inner if info is not None else None
    if isinstance(value, list) and any(isinstance(v, dict) for v in value):
        # The entries of a FieldList of FormFields, one a line ("Item: pen, Qty: 3" for
        # each): run together with commas, nobody could tell where one ended.
        entry = FieldInfo(info.label, FormField, {}, inner) if info is not None else None
        return "\n".join(formatted(v, entry) for v in value)
    if isinstance(value, list):
        return ", ".join(formatted(v, None) for v in value)
    if isinstance(value, dict):
        # A FormField's values under its fields' labels, formatted as those fields offered them.
        return ", ".join(f"{inner[str(k)].label if inner and str(k) in inner else readable(str(k))}: "
                         f"{formatted(v, inner.get(str(k)) if inner else None)}" for k, v in value.items())
    return str(value)


def _moment(value: str, field_class: type) -> str:
    """A date, time or month as its field asked for it: ISO text (``0999-01-01``: strftime's
    ``%Y`` gave ``999``), to the minute, without the midnight a date field never asked for.
    (WTForms' DateField, TimeField and MonthField are DateTimeFields: a date was shown
    "2026-03-04 00:00".) Text that is not such a value is shown as it is."""
    try:
        if issubclass(field_class, TimeField):
            moment: time = time.fromisoformat(value)
            return moment.isoformat("minutes" if moment.second == moment.microsecond == 0 else "seconds")
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return value
    if issubclass(field_class, MonthField):
        return parsed.date().isoformat()[:7]
    if issubclass(field_class, DateField):
        return parsed.date().isoformat()
    return parsed.isoformat(" ", "minutes" if parsed.second == parsed.microsecond == 0 else "seconds")


def data_rows(flow_class: type[Flow] | None, data: dict[str, Any] | None) -> list[DataRow]:
    """The rows of a data table for ``data`` written by ``flow_class``'s forms."""
    fields = form_fields(flow_class) if flow_class is not None else {}
    rows = []
    for key, value in (data or {}).items():
        info = fields.get(key)
        text = formatted(value, info)
        rows.append(DataRow(key, info.label if info else readable(key), text, "\n" in text))
    return rows
