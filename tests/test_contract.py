"""The MQTT contract: topics and versioned schemas accept what they should and nothing else."""

from __future__ import annotations

import contextlib
import json
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from smartgate import contract
from smartgate.contract import (
    CommandAction,
    ContractError,
    LaneCommand,
    PassageEvent,
    PlateRead,
    parse_command,
    parse_passage,
)

T0 = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)


def make_event(**kw) -> PassageEvent:
    base = dict(
        event_id=contract.new_id(), site="huunghi", node_id="edge-1", lane="L1",
        started_at=T0, ended_at=T0 + timedelta(seconds=9),
        plate_front=PlateRead(text="29C12345", display_text="29C-123.45", region="vn",
                              confidence=0.93, candidates=[{"text": "29C12345", "confidence": 0.9}]),
        containers=[{"code": "CSQU3054383", "check_digit_ok": True, "confidence": 0.9}],
        weight={"gross_kg": 32150, "captured_at": T0},
    )
    base.update(kw)
    return PassageEvent(**base)


def test_passage_round_trip() -> None:
    event = make_event()
    assert parse_passage(event.to_json()) == event
    assert json.loads(event.to_json())["schema"] == "smartgate.passage"


def test_command_round_trip() -> None:
    cmd = LaneCommand(site="huunghi", lane="L1", action=CommandAction.OPEN_BARRIER,
                      passage_event_id="e" * 36, issued_by="rules:v1")
    assert parse_command(cmd.to_json()) == cmd


@pytest.mark.parametrize(
    ("mutate", "reason"),
    [
        (lambda d: d.pop("event_id"), "event_id"),
        (lambda d: d.update(version=2), "unsupported"),
        (lambda d: d.update(schema="smartgate.command"), "schema"),
        (lambda d: d.update(lane="L 1"), "lane"),
        (lambda d: d.update(ended_at="2020-01-01T00:00:00Z"), "ended_at"),
        (lambda d: d["plate_front"].update(confidence=1.5), "confidence"),
        (lambda d: d["weight"].update(gross_kg=-5), "gross_kg"),
        (lambda d: d.update(unexpected=1), "unexpected"),
    ],
)
def test_invalid_passages_are_rejected_with_reason(mutate, reason) -> None:
    data = json.loads(make_event().to_json())
    mutate(data)
    with pytest.raises(ContractError, match=reason):
        parse_passage(json.dumps(data).encode())


@pytest.mark.parametrize("payload", [b"", b"not json", b"[1,2]", b"\xff\xfe", b"{}", b"null"])
def test_garbage_is_a_contract_error(payload: bytes) -> None:
    with pytest.raises(ContractError):
        parse_passage(payload)


@given(st.binary(max_size=300))
def test_no_payload_crashes_the_parser(payload: bytes) -> None:
    with contextlib.suppress(ContractError):
        parse_passage(payload)


def test_topics_round_trip() -> None:
    assert contract.parse_topic(contract.passage_topic("huunghi", "L1")) == (
        "huunghi", "L1", "passage")
    assert contract.parse_topic(contract.command_ack_topic("s", "L2"))[2] == "command_ack"
    assert contract.parse_topic(contract.node_availability_topic("s", "n1")) == (
        "s", "n1", "node_available")
    assert contract.parse_topic(contract.receipt_topic("s", "L2")) == ("s", "L2", "receipt")
    with pytest.raises(ContractError):
        contract.passage_topic("huu nghi", "L1")
    with pytest.raises(ContractError):
        contract.parse_topic("other/v1/s/L1/passage")


def test_receipt_round_trip() -> None:
    event = make_event()
    receipt = contract.PassageReceipt(event_id=event.event_id, site=event.site, lane=event.lane,
                                      status="duplicate")
    payload = receipt.to_json()
    assert b'"schema":"smartgate.passage_receipt"' in payload
    assert contract.parse_receipt(payload) == receipt
    with pytest.raises(ContractError, match="status"):
        contract.parse_receipt(payload.replace(b'"duplicate"', b'"lost"'))
    with pytest.raises(ContractError, match="schema"):
        contract.parse_receipt(event.to_json())
    assert contract.receipt_topic("s", "L1") not in contract.central_subscriptions("s")


def test_shared_subscriptions() -> None:
    subs = contract.central_subscriptions(shared=True)
    assert all(s.startswith("$share/central/smartgate/v1/") for s in subs)


def test_json_schemas_are_exported() -> None:
    schemas = contract.json_schemas()
    assert "event_id" in schemas["PassageEvent"]["properties"]
    assert "action" in schemas["LaneCommand"]["properties"]
