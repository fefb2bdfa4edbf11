"""Join(wait_all=False): the first branch continues, later ones end at the join."""

from webflow import STATUS, Flow, flow, this


def finish(activation):  # type: ignore[no-untyped-def]
    activation.prepare()
    activation.done()


class DiscriminatorFlow(Flow):
    """Discriminator"""

    start = flow.StartFunction(this.begin).Next(this.split)
    split = flow.Split().Next(this.fast).Next(this.slow)
    fast = flow.Handler(lambda activation: None).Next(this.join)
    slow = flow.Function(finish).Next(this.join)
    join = flow.Join(wait_all=False).Next(this.end)
    end = flow.End()

    def begin(self, activation, **data):  # type: ignore[no-untyped-def]
        activation.prepare(data=data)
        activation.done()
        return ("started", activation.process)


def test_the_first_branch_fires_the_join_once_and_the_last_one_finishes_the_process(session):
    label, process = DiscriminatorFlow.start.run(n=1)
    assert label == "started"  # a StartFunction given as this.method, its value returned
    assert process.status == STATUS.NEW  # ended, but the slow branch is still open
    assert [t.status for t in process.tasks if t.node_name == "end"] == [STATUS.DONE]

    DiscriminatorFlow.slow.run(process.get_task(DiscriminatorFlow.slow))
    session.expire_all()
    assert process.status == STATUS.DONE
    joins = [t for t in process.tasks if t.node_name == "join"]
    assert len(joins) == 1 and len(joins[0].previous) == 2
    assert [t.node_name for t in process.tasks].count("end") == 1
