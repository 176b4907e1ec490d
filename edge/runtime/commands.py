"""Lane commands and triggers from MQTT: parsed, checked against this node's lanes, run in order
on one worker thread (barrier and display I/O never block the MQTT loop), acknowledged.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping
from functools import partial

from edge.assembly.triggers import TriggerError, parse_trigger_payload
from edge.runtime.lane import LaneRuntime
from smartgate import contract
from smartgate.contract import ContractError, LaneState

log = logging.getLogger(__name__)


class LaneCommands:
    """The node's command worker and its MQTT message handler."""

    def __init__(
        self, site: str, node_id: str, lanes: Mapping[str, LaneRuntime], counters: Counter[str],
        publish: Callable[[str, str], None],
        set_lane_state: Callable[[LaneRuntime, LaneState], None],
    ) -> None:
        self.site, self.node_id, self.lanes, self.counters = site, node_id, lanes, counters
        self.publish, self.set_lane_state = publish, set_lane_state
        self._work: queue.Queue[Callable[[], object] | None] = queue.Queue()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start the worker thread."""
        self._thread = threading.Thread(target=self._worker, name="lane-commands", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Let the worker finish what is queued, then end."""
        self._work.put(None)

    def run(self, work: Callable[[], object]) -> None:
        """Run device I/O on the worker, in order."""
        self._work.put(work)

    def _worker(self) -> None:
        while (work := self._work.get()) is not None:
            try:
                work()
            except Exception:
                log.exception("lane command work failed")

    def on_message(self, topic: str, payload: bytes) -> None:
        """A command or trigger message (on the MQTT thread; never raises)."""
        try:
            site, lane, kind = contract.parse_topic(topic)
        except ContractError as exc:
            self.counters["messages_rejected"] += 1
            log.warning("message on unexpected topic %s: %s", topic, exc)
            return
        rt = self.lanes.get(lane)
        if site != self.site or rt is None:
            self.counters["messages_rejected"] += 1
            log.warning("message for %s/%s, not a lane of this node", site, lane)
            return
        if kind == "trigger":
            try:
                rt.set_presence(parse_trigger_payload(payload), time.time())
            except TriggerError as exc:
                self.counters["triggers_rejected"] += 1
                log.warning("lane %s: %s", lane, exc)
            return
        if kind == "command":
            self.run(partial(self._command, rt, payload))

    def _command(self, rt: LaneRuntime, payload: bytes) -> None:
        try:
            command = contract.parse_command(payload)
        except ContractError as exc:
            self.counters["commands_rejected"] += 1
            log.warning("lane %s: malformed command rejected: %s", rt.cfg.lane, exc)
            command_id = _command_id(payload)
            if command_id is not None:
                self._ack(rt, command_id, False, f"malformed command: {exc}")
            return
        if rt.controller is None:
            self.counters["commands_refused"] += 1
            self._ack(rt, command.command_id, False, "lane has no barrier and display configured")
            return
        ack = rt.controller.handle(command)
        self.counters["commands_ok" if ack.ok else "commands_refused"] += 1
        self.publish(contract.command_ack_topic(self.site, rt.cfg.lane),
                                   ack.to_json())
        with rt.lock:
            if rt.controller.state.barrier_open:
                self.set_lane_state(rt, "barrier_open")
            elif rt.state == "barrier_open":
                self.set_lane_state(rt, "idle")

    def _ack(self, rt: LaneRuntime, command_id: str, ok: bool, detail: str) -> None:
        ack = contract.CommandAck(command_id=command_id, site=self.site,
                                  lane=rt.cfg.lane, node_id=self.node_id, ok=ok,
                                  detail=detail[:200])
        self.publish(contract.command_ack_topic(self.site, rt.cfg.lane),
                                   ack.to_json())


def _command_id(payload: bytes) -> str | None:
    """The command_id of a malformed command, when one can be read, to refuse it by id."""
    try:
        data = json.loads(payload)
    except (ValueError, UnicodeDecodeError):
        return None
    cid = data.get("command_id") if isinstance(data, dict) else None
    return cid if isinstance(cid, str) and 8 <= len(cid) <= 64 else None
