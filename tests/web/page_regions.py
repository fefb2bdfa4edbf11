"""A page as a tree of elements, to apply an HTMX answer's swaps to it and read its text.

Just enough HTML for the app's own (well-formed) pages: elements by id, outerHTML swaps
(the target and every ``hx-swap-oob`` element) and the text a person sees."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from html.parser import HTMLParser

VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}
UNSEEN = {"head", "script", "style", "template", "title"}


@dataclass
class Element:
    tag: str
    attrs: dict[str, str]
    children: list[Element | str] = field(default_factory=list)

    def find(self, element_id: str) -> tuple[Element, int] | None:
        """(parent, index) of the element with that id below this one."""
        for index, child in enumerate(self.children):
            if isinstance(child, Element):
                if child.attrs.get("id") == element_id:
                    return self, index
                found = child.find(element_id)
                if found:
                    return found
        return None

    def with_ids(self) -> list[Element]:
        """The outermost elements that have an id (what a fragment swaps)."""
        found: list[Element] = []
        for child in self.children:
            if isinstance(child, Element):
                found += [child] if "id" in child.attrs else child.with_ids()
        return found

    def text(self, skip: set[str]) -> str:
        if self.tag in UNSEEN or self.attrs.get("id") in skip:
            return ""
        parts = [c if isinstance(c, str) else c.text(skip) for c in self.children]
        return " ".join(parts)


class _Builder(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.root = Element("#root", {})
        self.stack = [self.root]

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        element = Element(tag, {k: v or "" for k, v in attrs})
        self.stack[-1].children.append(element)
        if tag not in VOID:
            self.stack.append(element)

    def handle_endtag(self, tag: str) -> None:
        for depth in range(len(self.stack) - 1, 0, -1):
            if self.stack[depth].tag == tag:
                del self.stack[depth:]
                return

    def handle_data(self, data: str) -> None:
        self.stack[-1].children.append(data)


def parse(html: str) -> Element:
    builder = _Builder()
    builder.feed(html)
    builder.close()
    return builder.root


def apply_swaps(page: Element, fragment_html: str, target: str) -> list[str]:
    """Swap the answer's elements into the page (outerHTML, by id); the ids swapped."""
    swapped = []
    for element in parse(fragment_html).with_ids():
        element_id = element.attrs["id"]
        if "hx-swap-oob" not in element.attrs and element_id != target:
            continue
        place = page.find(element_id)
        assert place is not None, f"#{element_id} is not on the page"
        parent, index = place
        parent.children[index] = element
        swapped.append(element_id)
    return swapped


def visible_text(page: Element, skip: set[str] = frozenset({"messages"})) -> str:  # type: ignore[assignment]
    """What a person reads on the page (messages aside: they are news, not state)."""
    return re.sub(r"\s+", " ", page.text(set(skip))).strip()
