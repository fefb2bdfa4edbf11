"""One-time tokens of forms that must not act twice: the start form and the comment forms.

A rendered form carries a fresh token; the row it made keeps it (``Process.start_token``,
``Comment.post_token``), so the same form sent again (Back and send, a double click, a
retry after a lost answer) finds that row instead of making a second."""

from __future__ import annotations

import re
import secrets

_SHAPE = re.compile(r"[0-9a-f]{32}")


def new_form_token() -> str:
    """A fresh token for a form being drawn."""
    return secrets.token_hex(16)


def is_form_token(text: str) -> bool:
    """True when ``text`` has the shape ``new_form_token`` gives (anything else was damaged)."""
    return _SHAPE.fullmatch(text) is not None
