"""Fixtures of the notification tests: a real SMTP server (aiosmtpd) and the app mailing to it."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from flask import Flask

sys.path.insert(0, str(Path(__file__).resolve().parent))

from app_support import in_app_context  # noqa: E402
from notify_support import SMTPInbox, free_port, notify_app  # noqa: E402

from webflow import db  # noqa: E402
from webflow.models import User  # noqa: E402


@pytest.fixture
def smtp() -> Iterator[tuple[SMTPInbox, int]]:
    inbox = SMTPInbox()
    port = free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield inbox, port
    finally:
        controller.stop()


@pytest.fixture
def smtp_app(db_url: str, smtp: tuple[SMTPInbox, int]) -> Iterator[Flask]:
    with in_app_context(notify_app(db_url, smtp[1])) as app:
        yield app


@pytest.fixture
def inbox(smtp: tuple[SMTPInbox, int]) -> SMTPInbox:
    return smtp[0]


@pytest.fixture
def user() -> Callable[[str], User]:
    def find(name: str) -> User:
        return db.session.scalar(db.select(User).where(User.username == name))

    return find
