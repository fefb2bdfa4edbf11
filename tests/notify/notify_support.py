"""Helpers of the notification tests: a real SMTP server's inbox, the app that mails to it.

A module of its own name (not ``conftest``), so test modules import it unambiguously."""

from __future__ import annotations

import socket
import sys
import threading
import time
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from flask import Flask

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "web"))  # web_support

from app_support import make_test_app  # noqa: E402
from notify_flows import FLOWS  # noqa: E402

from webflow import db  # noqa: E402
from webflow.models import User  # noqa: E402

PASSWORD = "secret"
USERS = {
    "alice": ["notice.can_start"],                                  # starts, comments
    "bob": ["notice.can_review", "auto_assign.can_approve", "broken_after_assign.can_approve"],
    "carol": ["notice.can_review"],                                 # has no email address
    "mona": ["notice.manage", "notice.can_review"],                 # a manager
}
EMAILS = {"alice": "alice@example.com", "bob": "bob@example.com", "mona": "mona@example.com"}
BASE_URL = "https://flow.example.com/app"


class SMTPInbox:
    """The messages a real SMTP server received, parsed."""

    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []
        self.lock = threading.Lock()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        message = message_from_bytes(envelope.content, policy=policy.default)
        message["X-Envelope-To"] = ", ".join(envelope.rcpt_tos)
        with self.lock:
            self.messages.append(message)  # type: ignore[arg-type]
        return "250 Message accepted for delivery"

    def to(self, address: str) -> list[EmailMessage]:
        with self.lock:
            return [m for m in self.messages if m["X-Envelope-To"] == address]

    def wait_for(self, count: int, timeout: float = 30) -> list[EmailMessage]:
        """Poll until ``count`` messages arrived (bounded); then a moment more for extras."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if len(self.messages) >= count:
                    break
            time.sleep(0.05)
        with self.lock:
            return list(self.messages)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def body_of(message: EmailMessage, kind: str = "plain") -> str:
    part = message.get_body(preferencelist=(kind,))
    assert part is not None, f"no text/{kind} part"
    return str(part.get_content()).replace("\r\n", "\n")


def notify_app(db_url: str, port: int | None, **config: Any) -> Flask:
    """The app on a fresh database with the test users and their addresses; mail to
    ``port`` (None: mail not configured)."""
    mail = {"MAIL_SERVER": "127.0.0.1", "MAIL_PORT": port} if port is not None else {"MAIL_SERVER": None}
    app = make_test_app(db_url, FLOWS, USERS, PASSWORD, WEBFLOW_BASE_URL=BASE_URL, **mail, **config)
    with app.app_context():
        for name, address in EMAILS.items():
            db.session.execute(db.update(User).where(User.username == name).values(email=address))
        db.session.commit()
        db.session.remove()
    return app
