"""Lane commands over real mosquitto with the hardware simulators: acks, refusals, malformed
commands, MQTT trigger, lane status, and central lost → barrier closed."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import numpy as np
import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from edge.app import EdgeNode
from edge.config import EdgeConfig
from edge.recognition.province_prior import ProvincePrior
from edge.runtime.sources import SimulatedCamera
from hardware.lane_sim import LaneSimulators
from smartgate import contract
from tests.conftest import wait_until


@pytest.fixture
def lane_sims():  # type: ignore[no-untyped-def]
    sims = LaneSimulators.start()
    yield sims
    sims.stop()


def test_commands_triggers_and_central_lost(tmp_path: Path, mosquitto, lane_sims) -> None:
    config = EdgeConfig.model_validate({
        "site": "huunghi", "node_id": "edge-1", "data_dir": str(tmp_path / "edge"),
        "mqtt": {"host": mosquitto.host, "port": mosquitto.port, "keepalive_s": 5},
        "lanes": [{
            "lane": "L1",
            "cameras": [{"name": "front", "source": "sim", "fps": 2}],
            "trigger": {"type": "mqtt"},
            "barrier": lane_sims.barrier_config().model_dump(),
            "display": lane_sims.display_config().model_dump(),
        }],
    })
    camera = SimulatedCamera(np.zeros((120, 160, 3), np.uint8))
    learned = ProvincePrior()  # what an earlier run of this node learned of its provinces
    learned.observe([("桂A12345", 0.9)] * 30)
    config.data_dir.mkdir(parents=True)
    learned.save(config.data_dir / "province_prior.json")
    node = EdgeNode(config, simulated={"L1/front": camera})
    assert node.readers.plates.province_prior.reads == pytest.approx(learned.reads)
    acks: list[contract.CommandAck] = []
    states: list[str] = []
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="central-test")

    def on_message(_c, _u, msg) -> None:  # type: ignore[no-untyped-def]
        if msg.topic.endswith("/ack"):
            acks.append(contract.parse_command_ack(msg.payload))
        elif msg.topic.endswith("/status"):
            states.append(contract.parse_lane_status(msg.payload).state)

    client.on_message = on_message
    client.connect(mosquitto.host, mosquitto.port)
    client.subscribe([(contract.command_ack_topic("huunghi", "L1"), 1),
                      (contract.lane_status_topic("huunghi", "L1"), 1)])
    client.loop_start()
    node.start()
    try:
        assert node.publisher.connected.wait(10)
        time.sleep(0.3)  # subscriptions of the node in place
        topic = contract.command_topic("huunghi", "L1")

        def send(payload: bytes) -> None:
            client.publish(topic, payload, qos=1).wait_for_publish(5)

        send(b"\x00not json")
        bad = contract.LaneCommand(site="huunghi", lane="L1", action="open_barrier",
                                   issued_by="test")
        data = json.loads(bad.to_json())
        data["action"] = "launch_rocket"
        send(json.dumps(data).encode())
        send(bad.to_json())  # valid, but no passage is waiting
        assert wait_until(lambda: len(acks) == 2, 10)
        assert [a.ok for a in acks] == [False, False]
        assert acks[0].command_id == bad.command_id and "malformed" in acks[0].detail
        assert "no passage" in acks[1].detail
        assert node.counters["commands_rejected"] == 2
        assert not lane_sims.barrier_outputs.barrier_open

        trigger = contract.trigger_topic("huunghi", "L1")
        client.publish(trigger, b"on", qos=1).wait_for_publish(5)
        assert wait_until(lambda: "vehicle_present" in states, 10)
        client.publish(trigger, b"bogus", qos=1).wait_for_publish(5)
        client.publish(trigger, b"off", qos=1).wait_for_publish(5)
        assert wait_until(lambda: states[-1:] == ["idle"], 10)  # nothing read: no passage
        assert node.counters["triggers_rejected"] == 1

        controller = node.lanes["L1"].controller
        assert controller is not None
        node.run_command_work(lambda: controller.set_passage("passage-0001"))
        opened = contract.LaneCommand(site="huunghi", lane="L1", action="open_barrier",
                                      passage_event_id="passage-0001", issued_by="officer-7")
        send(opened.to_json())
        assert wait_until(lambda: len(acks) == 3, 10)
        assert acks[2].ok and acks[2].command_id == opened.command_id
        assert wait_until(lambda: lane_sims.barrier_outputs.barrier_open, 10)
        assert wait_until(lambda: "barrier_open" in states, 10)
        assert lane_sims.display_message.text == "PROCEED"

        mosquitto.stop()  # central unreachable: the barrier must close
        assert wait_until(lambda: not lane_sims.barrier_outputs.barrier_open, 10)
        assert wait_until(lambda: "OFFLINE" in lane_sims.display_message.text, 10)
    finally:
        client.loop_stop()
        node.stop()
    assert threading.active_count() < 60
    kept = ProvincePrior()  # saved again on stop
    assert kept.restore(config.data_dir / "province_prior.json")
    assert kept.reads == pytest.approx(learned.reads)
