"""The benchmark's two flows written for viewflow 2.4, from its documented node API."""

from viewflow import this
from viewflow.workflow import flow, lock


def no_page(request, **kwargs):  # the harness never serves pages
    raise NotImplementedError


class HumanFlow(flow.Flow):
    """StartHandle -> View -> End."""

    lock_impl = lock.select_for_update_lock  # the process lock, as webflow takes it

    start = flow.StartHandle().Next(this.work)
    work = flow.View(no_page).Next(this.end)
    end = flow.End()


class AutoFlow(flow.Flow):
    """StartHandle -> Split -> 2 Functions -> Join -> If -> Function -> End."""

    lock_impl = lock.select_for_update_lock

    start = flow.StartHandle().Next(this.split)
    split = flow.Split().Next(this.left).Next(this.right)
    left = flow.Function(this.touch).Next(this.join)
    right = flow.Function(this.touch).Next(this.join)
    join = flow.Join().Next(this.check)
    check = (flow.If(lambda activation: activation.process.data.get("left", False))
             .Then(this.last).Else(this.end))
    last = flow.Function(this.touch).Next(this.end)
    end = flow.End()

    def touch(self, activation):
        """What a small real handler does: write to process.data."""
        activation.process.data = {**activation.process.data, activation.flow_task.name: True}
        activation.process.save()
