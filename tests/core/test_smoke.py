"""The core works without Flask, on both databases."""

import subprocess
import sys

from webflow import STATUS, Flow, flow, this
from webflow.models import User


class TinyFlow(Flow):
    """Tiny"""

    start = flow.StartFunction().Next(this.approve)
    approve = flow.View().Permission(auto_create=True).Next(this.end)
    end = flow.End()


def test_importing_the_core_does_not_import_flask():
    code = "import sys, webflow.core, webflow.models; print('flask' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_a_process_runs_to_the_end(session):
    user = User(username="ann")
    session.add(user)
    session.commit()
    process = TinyFlow.start.run(amount=3)
    assert process.data == {"amount": 3}
    task = process.get_task(TinyFlow.approve)
    activation = task.activate()
    activation.assign(user)
    activation.prepare(data={"ok": True}, user=user)
    activation.done()
    session.expire_all()
    assert process.status == STATUS.DONE
    assert process.data == {"amount": 3, "ok": True}
    assert [t.node_name for t in process.tasks] == ["start", "approve", "end"]
