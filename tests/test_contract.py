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


@pytest.mark.parametrize("topic", [
    f"{contract.TOPIC_ROOT}/{'s' * 65}/L1/passage",
    f"{contract.TOPIC_ROOT}/huunghi/{'L' * 300}/passage",
    f"{contract.TOPIC_ROOT}/huunghi/node/{'n' * 65}/status",
    f"{contract.TOPIC_ROOT}/hu unghi/L1/passage",
    f"{contract.TOPIC_ROOT}/huunghi/L1/sneaky",
    f"{contract.TOPIC_ROOT}/huunghi//passage",
    f"{contract.TOPIC_ROOT}/huunghi/L1/passage/extra",
    "smartgate/v2/huunghi/L1/passage",
])
def test_parse_topic_refuses_bad_segments_and_kinds(topic: str) -> None:
    with pytest.raises(ContractError) as err:
        contract.parse_topic(topic)
    assert err.value.reason is contract.RejectReason.BAD_TOPIC
    assert len(str(err.value)) < 200  # the sender's text is clipped


def test_parse_topic_kinds() -> None:
    root = f"{contract.TOPIC_ROOT}/huunghi"
    assert contract.parse_topic(f"{root}/L1/decision") == ("huunghi", "L1", "decision")
    assert contract.parse_topic(f"{root}/L1/command/ack") == ("huunghi", "L1", "command_ack")
    assert contract.parse_topic(f"{root}/node/edge-1/available") == (
        "huunghi", "edge-1", "node_available")


@pytest.mark.parametrize(("given", "normalized"), [
    ("29c-123.45", "29C12345"), (" 51D 678 90 ", "51D67890"), ("ＡＢ１２３", "AB123"),
    ("桂A·23456", "桂A23456"), ("29C/12345", "29C12345"),
])
def test_plate_text_is_normalized_in_the_contract(given: str, normalized: str) -> None:
    read = PlateRead(text=given, confidence=0.9)
    assert read.text == normalized
    payload = json.loads(make_event().to_json())
    payload["plate_front"]["text"] = given
    assert parse_passage(json.dumps(payload).encode()).plate_front.text == normalized  # type: ignore[union-attr]


def test_receipts_and_decisions() -> None:
    rejected = contract.PassageReceipt(event_id="e" * 8, site="huunghi", lane="L1",
                                       status="rejected", reason=contract.RejectReason.INVALID,
                                       detail="weight.gross_kg: too small")
    again = contract.parse_receipt(rejected.to_json())
    assert again.reason is contract.RejectReason.INVALID and again.status == "rejected"
    with pytest.raises(ValueError):
        contract.PassageReceipt(event_id="e" * 8, site="huunghi", lane="L1", status="rejected")
    with pytest.raises(ValueError):
        contract.PassageReceipt(event_id="e" * 8, site="huunghi", lane="L1", status="stored",
                                reason=contract.RejectReason.INVALID)
    decision = contract.PassageDecision(
        event_id="e" * 8, site="huunghi", lane="L1", outcome="cleared",
        action=CommandAction.OPEN_BARRIER, declaration_number="D-1",
        matched_containers=["CSQU3054383"], decided_by="rules:site-1")
    assert contract.parse_decision(decision.to_json()) == decision
    assert "PassageDecision" in contract.json_schemas()


def test_reject_reasons_name_the_failure() -> None:
    cases = {
        b"x" * (contract.MAX_PAYLOAD_BYTES + 1): contract.RejectReason.TOO_LARGE,
        b"[" * 100_000: contract.RejectReason.NOT_JSON,
        b"[]": contract.RejectReason.NOT_JSON,
        b'{"schema": "other", "version": 1}': contract.RejectReason.WRONG_SCHEMA,
        b'{"schema": "smartgate.passage", "version": 9}': contract.RejectReason.UNSUPPORTED_VERSION,
        b'{"schema": "smartgate.passage", "version": 1}': contract.RejectReason.INVALID,
    }
    for payload, reason in cases.items():
        with pytest.raises(ContractError) as err:
            parse_passage(payload)
        assert err.value.reason is reason, payload[:40]
    assert contract.event_id_of(b'{"event_id": "0123456789"}') == "0123456789"
    assert contract.event_id_of(b'{"event_id": "short"}') is None
    assert contract.event_id_of(b"[" * 100_000) is None
