"""Run ``fire_due_timers`` in a process of its own (the two-process overdue test).

Usage: python fire_in_process.py DATABASE_URL SMTP_PORT NOW_ISO GO_FILE
Builds the app as a worker would, says it is ready (GO_FILE.ready-<pid>), waits until
GO_FILE exists (so that both processes start noticing at the same moment), fires, and
prints how many timers fired."""

from __future__ import annotations

import os
import sys
import time
from datetime import datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from notify_flows import FLOWS  # noqa: E402

from webflow import create_app, fire_due_timers  # noqa: E402


def main(db_url: str, port: str, now: str, go: str) -> None:
    app = create_app({"TESTING": True, "SQLALCHEMY_DATABASE_URI": db_url, "WEBFLOW_FLOWS": FLOWS,
                      "WEBFLOW_INLINE_JOBS": "inline", "SECRET_KEY": "test",
                      "MAIL_SERVER": "127.0.0.1", "MAIL_PORT": int(port)})
    with app.app_context():
        Path(f"{go}.ready-{os.getpid()}").write_text("ready")
        deadline = time.monotonic() + 30
        while not Path(go).exists() and time.monotonic() < deadline:
            time.sleep(0.01)
        print(fire_due_timers(now=datetime.fromisoformat(now)))


if __name__ == "__main__":
    main(*sys.argv[1:5])
