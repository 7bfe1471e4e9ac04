"""An alert whose condition ends is cleared on cooling.alerts.v1 (issue 10/11: the jobs twin un-flags the jobs
under it at once): a CDU loop lost -> throttle alerts on its racks; repaired -> one clear per rack and kind,
``cleared`` set, deterministic ids; an alert still in force (at another severity) is not cleared."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from twin.cooling.adapters.repository import InMemoryCoolingStore
from twin.cooling.adapters.stream import CoolingPipeline
from twin.cooling.domain.events import EquipmentEvent
from twin.cooling.live import CoolingLive
from twin.cooling.site import build_cooling_site
from twin.cooling.v1 import cooling_pb2 as pb
from twin.core import topics
from twin.core.facility import load_facility_spec


class Producer:
    def __init__(self) -> None:
        self.sent: list[tuple[str, str, object]] = []

    async def enqueue(self, topic, key, message, **_):
        self.sent.append((topic.name, key, message))
        fut = asyncio.get_running_loop().create_future()
        fut.set_result(None)
        return fut

    def alerts(self) -> list[pb.CoolingAlert]:
        out = [m for t, _, m in self.sent if t == topics.COOLING_ALERTS.name]
        self.sent.clear()
        return out


@pytest.fixture(scope="module")
def hall():
    return build_cooling_site(load_facility_spec("gb200-nvl72-hall"))


def test_a_repaired_loop_clears_its_racks_throttle_alerts(hall):
    net = hall.network
    live = CoolingLive(hall)
    prod = Producer()
    pipe = CoolingPipeline(live, prod, InMemoryCoolingStore(), topics.COOLING_STATE, topics.COOLING_ALERTS)
    live.apply_power([(r, 0.0, 120e3) for r in range(net.n_racks)])

    async def run():
        await pipe._evaluate(1.0)
        assert not [a for a in prod.alerts() if a.kind == pb.ALERT_KIND_THROTTLE_PREDICTED]
        loop_a = [net.cdu_ids[i] for i in np.flatnonzero(net.cdu_loop == 0)]
        for cdu in loop_a:
            live.apply_event(EquipmentEvent("cdu_failure", cdu, 2.0))
        await pipe._evaluate(3.0)
        raised = [a for a in prod.alerts() if a.kind == pb.ALERT_KIND_THROTTLE_PREDICTED]
        racks = {net.rack_ids[r] for r in np.flatnonzero(net.rack_loop == 0)}
        assert {a.entity_id for a in raised} == racks and not any(a.cleared for a in raised)
        await pipe._evaluate(4.0)  # still in force: neither raised again nor cleared
        assert not [a for a in prod.alerts() if a.kind == pb.ALERT_KIND_THROTTLE_PREDICTED]
        for cdu in loop_a:
            live.apply_event(EquipmentEvent("cdu_repair", cdu, 5.0))
        await pipe._evaluate(6.0)
        out = prod.alerts()
        clears = [a for a in out if a.kind == pb.ALERT_KIND_THROTTLE_PREDICTED]
        assert {a.entity_id for a in clears} == racks and all(a.cleared for a in clears)
        assert len(clears) == len(racks)                        # one per rack and kind
        assert all(a.alert_time.ToSeconds() == 6 and "cleared" in a.message for a in clears)
        assert len({a.alert_id for a in out}) == len(out)
        assert not {a.alert_id for a in clears} & {a.alert_id for a in raised}
        loop_alerts = [a for a in out if a.entity_id == net.loop_ids[0]]
        assert loop_alerts and all(a.cleared for a in loop_alerts)  # capacity / redundancy of the loop too
        await pipe._evaluate(7.0)
        assert prod.alerts() == []                              # a clear is sent once

    asyncio.run(run())


def test_severity_changes_follow_the_kits_rule(hall):
    """Through ``alert_state.transitions``: warning -> critical is raised again and clears nothing; critical
    dropping while the warning stays clears nothing; the rack's condition ending clears it once, at the most
    severe key it held; a duplicate of an alert in one evaluation is sent once."""
    from types import SimpleNamespace

    from twin.cooling.domain.alerts import CoolingAlert

    net = hall.network
    live = CoolingLive(hall)
    pipe = CoolingPipeline(live, Producer(), InMemoryCoolingStore(), topics.COOLING_STATE, topics.COOLING_ALERTS)
    ev = SimpleNamespace(sensor_values={})
    rack, other = net.rack_ids[0], net.rack_ids[1]

    def alert(entity, severity):
        return CoolingAlert("throttle_predicted", severity, entity, f"{entity} {severity}", 120.0, (0, 1))

    def step(alerts, t):
        out, pipe.active = pipe._new_alerts(alerts, ev, t)
        return [(m.entity_id, m.severity, m.cleared) for m in out]

    W, C = pb.SEVERITY_WARNING, pb.SEVERITY_CRITICAL
    assert step([alert(rack, "warning"), alert(rack, "warning")], 1.0) == [(rack, W, False)]
    assert step([alert(rack, "warning"), alert(rack, "critical"), alert(other, "warning")], 2.0) == [
        (rack, C, False), (other, W, False)]
    assert step([alert(rack, "warning"), alert(other, "warning")], 3.0) == []     # critical dropped, warning stays
    assert step([alert(rack, "critical"), alert(rack, "warning"), alert(other, "warning")], 4.0) == [(rack, C, False)]
    assert step([alert(other, "warning")], 5.0) == [(rack, C, True)]             # one clear, the critical key
    assert step([], 6.0) == [(other, W, True)]
    assert step([], 7.0) == []
