"""Matching engine: one case per reason, OCR-confusion plates, top-N, containers, fuzzing."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from central.domain.declarations import Declaration
from central.domain.matching import (
    DeclarationIndex,
    Outcome,
    check_containers,
    command_for,
    container_checker,
    container_evidence,
    decide,
    plate_evidence,
)
from central.domain.plate_similarity import (
    _bound_exceeds,
    _edit_distance,
    plate_distance,
    plate_distance_lower_bound,
    plate_similarity,
    similar_at_least,
    substitution_cost,
)
from central.domain.rules import DEFAULT_RULES, Reason, RuleSet, RuleSetError, Severity, parse_rules
from smartgate import iso6346
from smartgate.contract import (
    Candidate,
    CommandAction,
    ContainerRead,
    PassageEvent,
    PlateRead,
    Weight,
)

T0 = datetime(2025, 5, 8, 9, 0, tzinfo=UTC)
NOW = T0 + timedelta(minutes=1)
C1, C2, C3 = "CSQU3054383", "MSKU1234565", "TGHU9876542"  # valid check digits


def decl(**over: Any) -> Declaration:
    """A valid import declaration for truck 51C10845 with trailer 51R01234 and container C1."""
    data: dict[str, Any] = {
        "number": "100000000001",
        "direction": "import",
        "tractor_plate": "51C10845",
        "trailer_plate": "51R01234",
        "containers": [C1],
        "gross_weight_kg": 25_000,
        "window_start": T0 - timedelta(hours=2),
        "window_end": T0 + timedelta(hours=6),
        "gate": "huunghi",
        "lane_group": "cargo",
        "company": "Công ty CP Logistics Hữu Nghị",
    }
    data.update(over)
    return Declaration.model_validate(data)


def plate(
    text: str, confidence: float = 0.95, candidates: tuple[tuple[str, float], ...] = (), **kw: Any
) -> PlateRead:
    return PlateRead(
        text=text,
        confidence=confidence,
        candidates=[Candidate(text=t, confidence=c) for t, c in candidates],
        **kw,
    )


def container(
    code: str, ok: bool | None = None, confidence: float = 0.95, **kw: Any
) -> ContainerRead:
    from smartgate.iso6346 import is_valid

    return ContainerRead(
        code=code, check_digit_ok=is_valid(code) if ok is None else ok, confidence=confidence, **kw
    )


def passage(**over: Any) -> PassageEvent:
    """The passage that clears `decl()`: right plates, container, weight, time, lane."""
    data: dict[str, Any] = {
        "event_id": "evt-00000001",
        "site": "huunghi",
        "node_id": "edge1",
        "lane": "in1",
        "direction": "entry",
        "started_at": T0,
        "ended_at": T0 + timedelta(seconds=20),
        "plate_front": plate("51C10845"),
        "trailer_plate": plate("51R01234"),
        "containers": [container(C1)],
        "weight": Weight(gross_kg=25_100, captured_at=T0),
    }
    data.update(over)
    return PassageEvent(**data)


RULES = RuleSet(version="site-7", lane_groups={"cargo": ["in1", "in2"]})


def reasons_of(decision: Any) -> set[Reason]:
    return {f.reason for f in decision.reasons}


# --------------------------------------------------------------------------------------------
# One case per reason, and cleared
# --------------------------------------------------------------------------------------------

CASES: list[tuple[str, dict[str, Any], dict[str, Any], set[str], Outcome, Reason | None]] = [
    # id, passage overrides, declaration overrides, used, expected outcome, expected reason
    ("cleared", {}, {}, set(), Outcome.CLEARED, None),
    ("no_declaration", {"plate_front": plate("29H99999"), "containers": []}, {}, set(),
     Outcome.NO_DECLARATION, Reason.PLATE_NOT_DECLARED),
    ("plate_not_declared_found_by_container", {"plate_front": plate("29H99999")}, {}, set(),
     Outcome.FLAGGED, Reason.PLATE_NOT_DECLARED),
    ("trailer_mismatch", {"trailer_plate": plate("51R77777")}, {}, set(),
     Outcome.FLAGGED, Reason.TRAILER_MISMATCH),
    ("trailer_undeclared", {}, {"trailer_plate": None}, set(), Outcome.FLAGGED, Reason.TRAILER_MISMATCH),
    ("container_missing", {"containers": []}, {}, set(), Outcome.FLAGGED, Reason.CONTAINER_MISSING),
    ("container_undeclared", {"containers": [container(C1), container(C2)]}, {}, set(),
     Outcome.FLAGGED, Reason.CONTAINER_UNDECLARED),
    ("container_check_digit_invalid", {"containers": [container(C1), container("TGHU9876541")]},
     {}, set(), Outcome.FLAGGED, Reason.CONTAINER_CHECK_DIGIT_INVALID),
    ("weight_out_of_tolerance", {"weight": Weight(gross_kg=26_000, captured_at=T0)}, {}, set(),
     Outcome.FLAGGED, Reason.WEIGHT_OUT_OF_TOLERANCE),
    ("weight_missing_refused", {"weight": None, "weight_error": "captured 250000 kg refused"},
     {}, set(), Outcome.FLAGGED, Reason.WEIGHT_MISSING),
    ("weight_missing_on_a_weighbridge_lane", {"weight": None, "weighbridge_expected": True}, {},
     set(), Outcome.FLAGGED, Reason.WEIGHT_MISSING),
    ("no_weight_where_no_weighbridge", {"weight": None}, {}, set(), Outcome.CLEARED, None),
    ("outside_time_window", {"started_at": T0 + timedelta(hours=8),
                             "ended_at": T0 + timedelta(hours=8, seconds=20)}, {}, set(),
     Outcome.FLAGGED, Reason.OUTSIDE_TIME_WINDOW),
    ("declaration_already_used", {}, {}, {"100000000001"}, Outcome.FLAGGED,
     Reason.DECLARATION_ALREADY_USED),
    ("declaration_cancelled", {}, {"status": "cancelled"}, set(), Outcome.FLAGGED,
     Reason.DECLARATION_CANCELLED),
    ("low_read_confidence", {"plate_front": plate("51C10845", confidence=0.3)}, {}, set(),
     Outcome.FLAGGED, Reason.LOW_READ_CONFIDENCE),
    ("direction_mismatch", {"direction": "exit"}, {}, set(), Outcome.FLAGGED,
     Reason.DIRECTION_MISMATCH),
    ("wrong_gate_warns_only", {"lane": "out9"}, {}, set(), Outcome.CLEARED, Reason.WRONG_GATE),
]  # fmt: skip


@pytest.mark.parametrize(
    ("p_over", "d_over", "used", "outcome", "reason"),
    [c[1:] for c in CASES],
    ids=[c[0] for c in CASES],
)
def test_rules_table(
    p_over: dict[str, Any],
    d_over: dict[str, Any],
    used: set[str],
    outcome: Outcome,
    reason: Reason | None,
) -> None:
    decision = decide(passage(**p_over), [decl(**d_over)], RULES, used, NOW)
    assert decision.outcome is outcome, decision.reasons
    assert decision.rules_version == "site-7"
    assert decision.decided_at == NOW
    if reason is None:
        assert decision.reasons == ()
        assert decision.plate_score == 1.0
    else:
        assert reason in reasons_of(decision), decision.reasons
        assert reasons_of(decision) == {reason}, decision.reasons


@pytest.mark.parametrize(
    ("measured", "declared", "flagged"),
    [(10_300, 10_000, False), (10_301, 10_000, True), (9_700, 10_000, False), (5_200, 5_000, False),
     (5_201, 5_000, True), (4_799, 5_000, True)],
)  # fmt: skip
def test_weight_tolerance_is_max_of_absolute_and_percent(
    measured: float, declared: float, flagged: bool
) -> None:
    decision = decide(
        passage(weight=Weight(gross_kg=measured, captured_at=T0)),
        [decl(gross_weight_kg=declared)],
        RULES,
        set(),
        NOW,
    )
    assert (Reason.WEIGHT_OUT_OF_TOLERANCE in reasons_of(decision)) is flagged


def test_net_weight_basis_uses_tare() -> None:
    rules = RULES.model_copy(update={"weight_basis": "net"})
    weight = Weight(gross_kg=40_000, tare_kg=15_000, captured_at=T0)
    assert decide(passage(weight=weight), [decl()], rules, set(), NOW).outcome is Outcome.CLEARED
    weight = Weight(gross_kg=40_000, tare_kg=10_000, captured_at=T0)
    assert decide(passage(weight=weight), [decl()], rules, set(), NOW).outcome is Outcome.FLAGGED


def test_window_grace_applies() -> None:
    late = T0 + timedelta(hours=6, minutes=20)
    ok = passage(started_at=late, ended_at=late)
    assert decide(ok, [decl()], RULES, set(), NOW).outcome is Outcome.CLEARED
    strict = RULES.model_copy(update={"window_grace_minutes": 10})
    assert Reason.OUTSIDE_TIME_WINDOW in reasons_of(decide(ok, [decl()], strict, set(), NOW))


def test_severity_warn_and_ignore() -> None:
    heavy = passage(weight=Weight(gross_kg=30_000, captured_at=T0))
    warn = RULES.model_copy(
        update={"severity": {**RULES.severity, Reason.WEIGHT_OUT_OF_TOLERANCE: Severity.WARN}}
    )
    decision = decide(heavy, [decl()], warn, set(), NOW)
    assert decision.outcome is Outcome.CLEARED
    assert [f.severity for f in decision.reasons] == [Severity.WARN]
    ignore = RULES.model_copy(
        update={"severity": {**RULES.severity, Reason.WEIGHT_OUT_OF_TOLERANCE: Severity.IGNORE}}
    )
    decision = decide(heavy, [decl()], ignore, set(), NOW)
    assert decision.outcome is Outcome.CLEARED and decision.reasons == ()


# --------------------------------------------------------------------------------------------
# Plates: OCR confusions, top-N, layouts
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "read",
    [
        "51C10845",
        "51C-108.45",
        "51C1O845",
        "51C10B45",
        "5IC1O845",
        "51C1D845",
        "51C 1O8 4S",
        "５１C10845",
    ],
)
def test_ocr_confusions_still_clear(read: str) -> None:
    decision = decide(passage(plate_front=plate(read)), [decl()], RULES, set(), NOW)
    assert decision.outcome is Outcome.CLEARED, decision.reasons
    assert decision.declaration_number == "100000000001"


@pytest.mark.parametrize("read", ["51C10846", "51C10847", "51C1084", "51C108455"])
def test_one_real_error_is_not_cleared(read: str) -> None:
    decision = decide(passage(plate_front=plate(read)), [decl()], RULES, set(), NOW)
    assert decision.outcome is Outcome.FLAGGED
    assert Reason.LOW_READ_CONFIDENCE in reasons_of(decision)


def test_top_n_candidates_are_used() -> None:
    read = plate("51C10846", confidence=0.6, candidates=(("51C10846", 0.6), ("51C10845", 0.3)))
    decision = decide(passage(plate_front=read), [decl()], RULES, set(), NOW)
    assert decision.outcome is Outcome.CLEARED
    assert decision.plate_score == 1.0
    faint = plate("51C10846", confidence=0.6, candidates=(("51C10845", 0.01),))
    decision = decide(passage(plate_front=faint), [decl()], RULES, set(), NOW)
    assert decision.plate_score < 1.0


def test_rear_plate_counts_when_front_is_a_weak_misread() -> None:
    p = passage(plate_front=plate("99X00000", confidence=0.3), plate_rear=plate("51C10845", 0.8))
    assert decide(p, [decl()], RULES, set(), NOW).outcome is Outcome.CLEARED


def test_chinese_plate_without_province_character() -> None:
    d = decl(tractor_plate="桂F·A1234", trailer_plate="桂F1234挂")
    assert d.tractor_plate == "桂FA1234"
    p = passage(plate_front=plate("FA1234"), trailer_plate=plate("F1234挂"))
    decision = decide(p, [d], RULES, set(), NOW)
    assert decision.outcome is Outcome.CLEARED, decision.reasons


def test_two_row_plate_with_swapped_rows() -> None:
    read = plate("108455IC", rows=2, display_text="108.45 51C")
    assert decide(passage(plate_front=read), [decl()], RULES, set(), NOW).outcome is Outcome.CLEARED


def test_ambiguous_plate_is_flagged() -> None:
    a = decl()
    b = decl(number="100000000002", tractor_plate="51C10841")
    decision = decide(passage(plate_front=plate("51C1084")), [a, b], RULES, set(), NOW)
    assert decision.outcome is Outcome.FLAGGED
    assert any("ambiguous" in f.detail for f in decision.reasons)


# --------------------------------------------------------------------------------------------
# Containers
# --------------------------------------------------------------------------------------------


def test_container_check_digit_consistent_near_match() -> None:
    check = check_containers(container_evidence([container("CSQU3054388")], 0.05), [C1])
    assert check.matched == (C1,) and check.near == (("CSQU3054388", C1),)
    decision = decide(passage(containers=[container("CSQU3054388")]), [decl()], RULES, set(), NOW)
    assert decision.outcome is Outcome.CLEARED


def test_container_checker_agrees_with_check_containers() -> None:
    """`decide`'s per-candidate container check (disjoint declarations settled without pairing)
    gives what `check_containers` gives, for valid, corrected, near and unreadable reads."""
    rng = random.Random(7)
    codes = [iso6346.complete_code(f"{owner}U{n:06d}") for owner in ("CSQ", "MSK", "TGH")
             for n in rng.sample(range(10**6), 4)]

    def misread(code: str) -> str:
        k = rng.randrange(11)
        return code[:k] + rng.choice("0OS5B8Z2X") + code[k + 1:]

    for _ in range(3_000):
        reads = [rng.choice(codes) if rng.random() < 0.6 else misread(rng.choice(codes))
                 for _ in range(rng.randint(0, 3))]
        evidence = container_evidence([container(code) for code in reads], 0.05)
        check = container_checker(evidence)
        for _ in range(4):
            declared = rng.sample(codes, rng.randint(0, 3))
            assert check(declared) == check_containers(evidence, declared), (reads, declared)


def test_container_letter_digit_confusion_is_corrected() -> None:
    check = check_containers(container_evidence([container("C5QU3O54383")], 0.05), [C1])
    assert check.matched == (C1,) and check.near == ()


def test_valid_but_different_container_is_undeclared_not_near() -> None:
    other = "CSQU3054399"  # serial one digit off, with the check digit valid for it
    from smartgate.iso6346 import is_valid

    assert is_valid(other)
    check = check_containers(container_evidence([container(other)], 0.05), [C1])
    assert check.undeclared == (other,) and check.missing == (C1,)


def test_container_candidate_from_top_n() -> None:
    read = ContainerRead(
        code="CSQU3054303",
        check_digit_ok=False,
        confidence=0.6,
        candidates=[Candidate(text=C1, confidence=0.3)],
    )
    assert check_containers(container_evidence([read], 0.05), [C1]).matched == (C1,)


def test_two_containers_in_any_order() -> None:
    d = decl(containers=[C1, C2])
    p = passage(containers=[container(C2), container(C1)])
    decision = decide(p, [d], RULES, set(), NOW)
    assert decision.outcome is Outcome.CLEARED
    assert set(decision.matched_containers) == {C1, C2}


# --------------------------------------------------------------------------------------------
# Choosing among candidates
# --------------------------------------------------------------------------------------------


def test_containers_pick_the_right_declaration_of_the_same_truck() -> None:
    first = decl(number="100000000001", containers=[C1])
    second = decl(number="100000000002", containers=[C2])
    decision = decide(passage(containers=[container(C2)]), [first, second], RULES, set(), NOW)
    assert decision.declaration_number == "100000000002"
    assert decision.outcome is Outcome.CLEARED


def test_unused_valid_declaration_preferred() -> None:
    used = decl(number="100000000001")
    cancelled = decl(number="100000000002", status="cancelled")
    fresh = decl(number="100000000003")
    decision = decide(passage(), [used, cancelled, fresh], RULES, {"100000000001"}, NOW)
    assert decision.declaration_number == "100000000003"
    assert decision.outcome is Outcome.CLEARED


def test_declaration_that_fits_best_is_chosen() -> None:
    """Same truck, no containers, overlapping windows: the one the reads agree with wins."""
    export = decl(number="100000000001", containers=[], direction="export")
    heavy = decl(number="100000000002", containers=[], gross_weight_kg=40_000)
    fits = decl(number="100000000003", containers=[])
    decision = decide(passage(containers=[]), [export, heavy, fits], RULES, set(), NOW)
    assert decision.declaration_number == "100000000003"
    assert decision.outcome is Outcome.CLEARED


def test_unrelated_candidates_are_ignored() -> None:
    other = decl(number="100000000009", tractor_plate="29H55555", containers=[C3])
    decision = decide(passage(), [other], RULES, set(), NOW)
    assert decision.outcome is Outcome.NO_DECLARATION
    assert decision.declaration_number is None


# --------------------------------------------------------------------------------------------
# Safety: the wrong truck never clears (province swap, cloned plates, look-alike's declaration),
# and which plate each camera role shows (docs/matching.md)
# --------------------------------------------------------------------------------------------

CN_TRUCK = {"number": "200000000001", "tractor_plate": "桂A23456", "trailer_plate": None,
            "containers": [], "gross_weight_kg": None}
VN_RIGID = {"number": "300000000001", "tractor_plate": "29C45678", "trailer_plate": None,
            "containers": [], "gross_weight_kg": None}
OWN = {"number": "400000000001", "tractor_plate": "29C45638", "trailer_plate": None,
       "containers": [], "gross_weight_kg": None}
LOOKALIKE = {**OWN, "number": "400000000002", "tractor_plate": "29C45688"}  # 3 read as 8
SEMI = {"number": "500000000001", "tractor_plate": "29C45678", "trailer_plate": "29R01234",
        "containers": [], "gross_weight_kg": None}
CN_SEMI = {**CN_TRUCK, "number": "500000000002", "trailer_plate": "桂A1234挂"}
NO_EXTRAS = {"trailer_plate": None, "containers": [], "weight": None}

SAFETY: list[tuple[str, dict[str, Any], list[dict[str, Any]], set[str], Outcome, set[Reason],
                   str | None]] = [
    # id, passage overrides, declarations, used, outcome, reasons, declaration attached
    ("province_substituted", {"plate_front": plate("粤A23456", 0.93)}, [CN_TRUCK], set(),
     Outcome.NO_DECLARATION, {Reason.PLATE_NOT_DECLARED}, None),
    ("province_substituted_container_found", {"plate_front": plate("粤A23456", 0.93),
     "containers": [container(C1)]}, [{**CN_TRUCK, "containers": [C1]}], set(),
     Outcome.FLAGGED, {Reason.PLATE_NOT_DECLARED}, "200000000001"),
    ("province_substituted_candidate_declared", {"plate_front": plate(
     "粤A23456", 0.9, candidates=(("粤A23456", 0.9), ("桂A23456", 0.08)))}, [CN_TRUCK], set(),
     Outcome.NO_DECLARATION, {Reason.PLATE_NOT_DECLARED}, None),
    ("province_dropped_candidate_has_it", {"plate_front": plate(
     "A23456", 0.9, candidates=(("A23456", 0.9), ("桂A23456", 0.3)))}, [CN_TRUCK], set(),
     Outcome.CLEARED, set(), "200000000001"),
    ("province_dropped", {"plate_front": plate("A23456", 0.93)}, [CN_TRUCK], set(),
     Outcome.CLEARED, set(), "200000000001"),
    ("province_read_right", {"plate_front": plate("桂A23456", 0.93)}, [CN_TRUCK], set(),
     Outcome.CLEARED, set(), "200000000001"),
    ("front_rear_disagree", {"plate_front": plate("29C45678", 0.93),
     "plate_rear": plate("29C99812", 0.93)}, [VN_RIGID], set(),
     Outcome.FLAGGED, {Reason.PLATES_DISAGREE}, "300000000001"),
    ("front_rear_disagree_both_declared", {"plate_front": plate("29C45678", 0.93),
     "plate_rear": plate("29C99812", 0.93)},
     [VN_RIGID, {**VN_RIGID, "number": "300000000002", "tractor_plate": "29C99812"}], set(),
     Outcome.FLAGGED, {Reason.PLATES_DISAGREE, Reason.LOW_READ_CONFIDENCE}, "300000000001"),
    ("front_rear_disagree_undeclared", {"plate_front": plate("29C11111", 0.93),
     "plate_rear": plate("29C99812", 0.93)}, [VN_RIGID], set(),
     Outcome.NO_DECLARATION, {Reason.PLATE_NOT_DECLARED, Reason.PLATES_DISAGREE}, None),
    ("front_rear_agree_lookalike", {"plate_front": plate("29C45678", 0.93),
     "plate_rear": plate("29C4S67B", 0.93)}, [VN_RIGID], set(), Outcome.CLEARED, set(),
     "300000000001"),
    ("own_used_not_lookalike_open", {"plate_front": plate("29C45638", 0.95)}, [LOOKALIKE, OWN],
     {"400000000001"}, Outcome.FLAGGED, {Reason.DECLARATION_ALREADY_USED}, "400000000001"),
    ("lookalike_read_own_open", {"plate_front": plate("29C45688", 0.95)}, [LOOKALIKE, OWN],
     {"400000000001"}, Outcome.CLEARED, set(), "400000000002"),
    # camera roles: on a semi-trailer the rear camera sees the trailer's plate
    ("trailer_field", {"plate_front": plate("29C45678"), "trailer_plate": plate("29R01234")},
     [SEMI], set(), Outcome.CLEARED, set(), "500000000001"),
    ("rear_camera_sees_trailer", {"plate_front": plate("29C45678"),
     "plate_rear": plate("29R01234")}, [SEMI], set(), Outcome.CLEARED, set(), "500000000001"),
    ("rear_camera_sees_other_trailer", {"plate_front": plate("29C45678"),
     "plate_rear": plate("29R77777")}, [SEMI], set(), Outcome.FLAGGED, {Reason.TRAILER_MISMATCH},
     "500000000001"),
    ("rear_camera_sees_cn_trailer", {"plate_front": plate("桂A23456"),
     "plate_rear": plate("桂A1234挂")}, [CN_SEMI], set(), Outcome.CLEARED, set(), "500000000002"),
    ("trailer_province_substituted", {"plate_front": plate("桂A23456"),
     "trailer_plate": plate("粤A1234挂")}, [CN_SEMI], set(), Outcome.FLAGGED,
     {Reason.TRAILER_MISMATCH}, "500000000002"),
    ("rear_camera_trailer_none_declared", {"plate_front": plate("29C45678"),
     "plate_rear": plate("29R01234")}, [VN_RIGID], set(), Outcome.FLAGGED,
     {Reason.TRAILER_MISMATCH}, "300000000001"),
    ("rear_and_trailer_cameras_see_trailer", {"plate_front": plate("29C45678"),
     "plate_rear": plate("29R01234"), "trailer_plate": plate("29R01234")}, [SEMI], set(),
     Outcome.CLEARED, set(), "500000000001"),
    ("rigid_truck_rear_plate", {"plate_front": plate("29C45678"),
     "plate_rear": plate("29C45678", 0.8)}, [VN_RIGID], set(), Outcome.CLEARED, set(),
     "300000000001"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("p_over", "decls", "used", "outcome", "reasons", "number"),
    [c[1:] for c in SAFETY],
    ids=[c[0] for c in SAFETY],
)
def test_matching_safety_table(
    p_over: dict[str, Any],
    decls: list[dict[str, Any]],
    used: set[str],
    outcome: Outcome,
    reasons: set[Reason],
    number: str | None,
) -> None:
    p = passage(**{**NO_EXTRAS, **p_over})
    candidates = [decl(**d) for d in decls]
    decision = decide(p, candidates, RULES, used, NOW)
    assert (decision.outcome, reasons_of(decision)) == (outcome, reasons), decision.reasons
    assert decision.declaration_number == number
    # the same through the index: every declaration that matters is a candidate
    index = DeclarationIndex(candidates)
    assert decide(p, index.candidates(p, RULES), RULES, used, NOW) == decision


# --------------------------------------------------------------------------------------------
# Commands
# --------------------------------------------------------------------------------------------


def test_command_for_each_outcome() -> None:
    p = passage()
    cleared = command_for(decide(p, [decl()], RULES, set(), NOW), p)
    assert cleared.action is CommandAction.OPEN_BARRIER
    assert (cleared.site, cleared.lane, cleared.passage_event_id) == ("huunghi", "in1", p.event_id)
    assert cleared.issued_by == "rules:site-7" and cleared.issued_at == NOW

    flagged = command_for(decide(p, [decl(status="cancelled")], RULES, set(), NOW), p)
    assert flagged.action is CommandAction.SEND_TO_INSPECTION
    assert flagged.inspection_lane == "inspection"
    assert flagged.message is not None and "declaration_cancelled" in flagged.message

    hold = RULES.model_copy(update={"no_declaration_action": "close_barrier"})
    none = command_for(decide(p, [], hold, set(), NOW), p)
    assert none.action is CommandAction.CLOSE_BARRIER and none.inspection_lane is None
    assert (
        command_for(decide(p, [], RULES, set(), NOW), p).action is CommandAction.SEND_TO_INSPECTION
    )


def test_decision_to_dict_is_json_ready() -> None:
    import json

    decision = decide(passage(containers=[]), [decl()], RULES, set(), NOW)
    data = json.loads(json.dumps(decision.to_dict()))
    assert data["outcome"] == "flagged"
    assert data["reasons"][0]["reason"] == "container_missing"
    assert data["rules_version"] == "site-7"


# --------------------------------------------------------------------------------------------
# Rule sets
# --------------------------------------------------------------------------------------------


def test_rules_from_yaml_and_toml() -> None:
    rules = parse_rules(
        "version: lsn-2025-05\nweight_tolerance_kg: 300\nseverity:\n  wrong_gate: flag\n"
    )
    assert rules.version == "lsn-2025-05" and rules.weight_tolerance(5_000) == 300
    assert rules.severity[Reason.WRONG_GATE] is Severity.FLAG
    assert rules.severity[Reason.TRAILER_MISMATCH] is Severity.FLAG  # default kept
    toml = parse_rules('version = "t1"\ninspection_lane = "bay3"\n', fmt="toml")
    assert toml.inspection_lane == "bay3"


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ("version: x\nweight_tolerence_kg: 1\n", "weight_tolerence_kg"),
        ("version: x\nseverity:\n  plate_typo: flag\n", "severity.plate_typo.[key]"),
        ("version: x\nplate_min_score: 0.95\n", "document"),
        ("weight_tolerance_kg: 1\n", "version"),
        ("- a\n", "document"),
    ],
)
def test_bad_rules_name_the_key(text: str, where: str) -> None:
    with pytest.raises(RuleSetError) as err:
        parse_rules(text, source="site.yaml")
    assert err.value.where == where and "site.yaml" in str(err.value)


# --------------------------------------------------------------------------------------------
# Fuzzing: no passage crashes matching
# --------------------------------------------------------------------------------------------

_CHARS = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ-. 桂粤挂"
_texts = st.text(alphabet=_CHARS, max_size=16)
_confs = st.floats(min_value=0, max_value=1)
_plates = st.builds(
    PlateRead,
    text=_texts,
    display_text=st.text(alphabet=_CHARS, max_size=24),
    rows=st.sampled_from([1, 2]),
    confidence=_confs,
    candidates=st.lists(st.builds(Candidate, text=_texts, confidence=_confs), max_size=5),
)
_containers = st.builds(
    ContainerRead,
    code=st.one_of(st.text(alphabet=_CHARS, max_size=11), st.sampled_from([C1, C2, "CSQU3054388"])),
    check_digit_ok=st.booleans(),
    size_type=st.one_of(st.none(), st.sampled_from(["22G1", "45G1", "XXXX"])),
    confidence=_confs,
)
_times = st.datetimes(min_value=datetime(2025, 1, 1), max_value=datetime(2026, 1, 1), timezones=st.sampled_from([UTC, None]))  # fmt: skip
FUZZ_INDEX = DeclarationIndex(
    [
        decl(),
        decl(number="100000000002", tractor_plate="桂FA1234", trailer_plate=None, containers=[C2]),
    ]
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    front=st.one_of(st.none(), _plates),
    rear=st.one_of(st.none(), _plates),
    trailer=st.one_of(st.none(), _plates),
    containers=st.lists(_containers, max_size=4),
    weight=st.one_of(
        st.none(), st.builds(Weight, gross_kg=st.floats(0, 200_000), captured_at=_times)
    ),
    start=_times,
    direction=st.sampled_from(["entry", "exit", "unknown"]),
    used=st.sets(st.sampled_from(["100000000001", "100000000002"])),
)
def test_fuzzed_passages_never_crash(
    front: PlateRead | None,
    rear: PlateRead | None,
    trailer: PlateRead | None,
    containers: list[ContainerRead],
    weight: Weight | None,
    start: datetime,
    direction: str,
    used: set[str],
) -> None:
    p = passage(
        plate_front=front,
        plate_rear=rear,
        trailer_plate=trailer,
        containers=containers,
        weight=weight,
        started_at=start,
        ended_at=start,
        direction=direction,
    )
    candidates = FUZZ_INDEX.candidates(p, DEFAULT_RULES)
    decision = decide(p, candidates, DEFAULT_RULES, used, NOW)
    assert decision.outcome in set(Outcome)
    assert 0.0 <= decision.plate_score <= 1.0
    command = command_for(decision, p)
    assert command.lane == p.lane
    if decision.outcome is Outcome.CLEARED:
        assert decision.declaration_number is not None and not decision.flags
    if decision.plate_score >= DEFAULT_RULES.plate_min_score:  # never a worse-matching plate
        plates = plate_evidence(p, DEFAULT_RULES.candidate_min_confidence)
        assert all(plates.score(c.tractor_plate) <= decision.plate_score for c in candidates)


_PLATE_CHARS = "0123456789ABDGHKLOQSZ桂粤"


@settings(max_examples=400, deadline=None)
@given(st.text(_PLATE_CHARS, max_size=10), st.text(_PLATE_CHARS, max_size=10),
       st.sampled_from([0.0, 0.5, 0.75, 0.8, 0.85, 1.0]))
def test_bounded_similarity_agrees_with_the_full_score(read: str, declared: str, t: float) -> None:
    """The candidate filter's early-exit test keeps exactly what the full score keeps, and the
    character lower bound it starts with never exceeds the distance."""
    assert similar_at_least(read, declared, t) == (plate_similarity(read, declared) >= t)
    bound = plate_distance(read, declared, 1.0)
    full = plate_distance(read, declared)
    assert bound == full if full <= 1.0 else 1.0 < bound <= full
    assert plate_distance_lower_bound(read, declared) <= full + 1e-9
    if len(read) == len(declared):
        assert substitution_cost(read, declared) >= full - 1e-9
    assert full == _edit_distance(read, declared)  # the shortcut, to the last bit


def test_plate_distance_lower_bound_holds_and_rejects_look_alike_trucks() -> None:
    """On 60,000 random plate pairs (Latin, look-alike swaps, CJK provinces and trailers) the
    lower bound never exceeds the distance, substitutions alone never undercut it, and the
    filter's verdict equals the full score's;
    on other trucks' plates sharing two thirds of a read it rejects most without the distance."""
    rng = random.Random(11)
    lookalike = {"0": "O", "1": "I", "8": "B", "5": "S", "2": "Z", "6": "G", "A": "4", "D": "0"}

    def plate() -> str:
        head = rng.choice(["", "桂", "粤", "桂A", "29C", "12R", "51D"])
        body = "".join(rng.choice("0123456789ABCDGHLSZ") for _ in range(rng.randint(3, 7)))
        return head + body + rng.choice(["", "", "挂"])

    def variant(p: str) -> str:
        chars = list(p)
        for _ in range(rng.randint(0, 3)):
            i = rng.randrange(len(chars) + 1)
            op = rng.random()
            if op < 0.4 and i < len(chars):
                chars[i] = lookalike.get(chars[i], rng.choice("0123456789ABCDZ粤"))
            elif op < 0.7 and i < len(chars):
                del chars[i]
            else:
                chars.insert(i, rng.choice("0123456789ABZ桂"))
        return "".join(chars)

    rejected = other_trucks = 0
    for n in range(60_000):
        a = plate()
        b = variant(a) if n % 2 else plate()
        lower, full = plate_distance_lower_bound(a, b), plate_distance(a, b)
        assert lower <= full + 1e-9, (a, b, lower, full)
        for bound in (lower - 1e-9, lower, lower + 1e-9):  # the filter's one-sided test
            assert _bound_exceeds(a, b, bound) == (lower > bound), (a, b, bound)
        assert full == _edit_distance(a, b), (a, b)  # the substitution shortcut is exact
        assert len(a) != len(b) or substitution_cost(a, b) >= full - 1e-9, (a, b, full)
        t = (0.74, 0.5, 0.9)[n % 3]
        assert similar_at_least(a, b, t) == (plate_similarity(a, b) >= t), (a, b, t)
    for _ in range(2_000):  # 12C34567 against 12C34xxx: a look-alike truck of the filter
        a = "12C" + "".join(rng.choice("0123456789") for _ in range(5))
        b = a[:5] + "".join(rng.choice("0123456789") for _ in range(3))
        if plate_distance(a, b) > (1 - 0.74) * 8 + 1e-6:
            other_trucks += 1
            rejected += plate_distance_lower_bound(a, b) > (1 - 0.74) * 8 + 1e-6
    assert rejected > 0.5 * other_trucks
