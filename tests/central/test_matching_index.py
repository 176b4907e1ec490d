"""DeclarationIndex: candidate recall against brute force, containers, updates, DB-style keys."""

from __future__ import annotations

import random
from collections import defaultdict

import pytest

from central.domain.matching import (
    CandidateFilter,
    DeclarationIndex,
    Outcome,
    decide,
    declaration_keys,
    passage_keys,
)
from central.domain.plate_similarity import fold
from central.domain.rules import DEFAULT_RULES
from tests.central.test_matching import C2, NOW, container, decl, passage, plate
from tests.central.test_storage import misread_container
from tools.synth.declarations import bench_matching, generate_declarations, passage_for

DECLS = list(generate_declarations(4000, seed=3, vehicles=1500))
INDEX = DeclarationIndex(DECLS)
CONFUSE = {"0": "O", "1": "I", "8": "B", "5": "S", "2": "Z", "6": "G"}


def _levenshtein(a: str, b: str) -> int:
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i]
        for j, cb in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb)))
        prev = cur
    return prev[-1]


def _garble(rng: random.Random, text: str) -> str:
    """Drop CJK, confuse look-alikes, then make one arbitrary edit."""
    chars = [CONFUSE.get(c, c) if rng.random() < 0.5 else c for c in text if c.isascii()]
    i = rng.randrange(len(chars))
    edit = rng.choice(("sub", "ins", "del"))
    if edit == "sub":
        chars[i] = rng.choice("0123456789ABCDEFGHKLMNPRSTUVXYZ")
    elif edit == "ins":
        chars.insert(i, rng.choice("0123456789"))
    else:
        del chars[i]
    return "".join(chars)


def test_lookup_finds_every_plate_within_one_edit_after_folding() -> None:
    rng = random.Random(7)
    plates = sorted({d.tractor_plate for d in DECLS})
    by_plate = defaultdict(set)
    for d in DECLS:
        by_plate[d.tractor_plate].add(d.number)
    for target in rng.sample(plates, 60):
        read = _garble(rng, target)
        got = {
            d.number
            for d in INDEX.candidates(
                passage(plate_front=plate(read), containers=[]), DEFAULT_RULES
            )
        }
        expected = {
            n for p in plates if _levenshtein(fold(read), fold(p)) <= 1 for n in by_plate[p]
        }
        assert by_plate[target] <= got, (target, read)
        assert expected <= got, (read, expected - got)


def test_exact_plate_lookup_and_decision_through_the_index() -> None:
    d = next(x for x in DECLS if x.containers and x.status == "valid")
    p = passage(
        plate_front=plate(d.tractor_plate),
        trailer_plate=plate(d.trailer_plate) if d.trailer_plate else None,
        containers=[container(c) for c in d.containers],
        weight=None,
        started_at=d.window_start,
        ended_at=d.window_start,
        direction="entry" if d.direction == "import" else "exit",
    )
    candidates = INDEX.candidates(p, DEFAULT_RULES)
    assert d in candidates
    assert len(candidates) < 50
    decision = decide(p, candidates, DEFAULT_RULES, set(), NOW)
    assert decision.declaration_number == d.number
    assert decision.outcome is Outcome.CLEARED, decision.reasons


def test_container_finds_declaration_when_plate_unreadable() -> None:
    d = next(x for x in DECLS if x.containers)
    p = passage(plate_front=None, trailer_plate=None, containers=[container(d.containers[0])])
    assert [c.number for c in INDEX.candidates(p, DEFAULT_RULES)] == [d.number]


def test_container_found_by_corrected_read() -> None:
    d = next(x for x in DECLS if x.containers)
    code = d.containers[0]
    garbled = code[:4] + code[4:].replace("0", "O").replace("1", "I")
    if garbled == code:
        pytest.skip("no confusable digit in this code")
    p = passage(plate_front=None, trailer_plate=None, containers=[container(garbled, ok=False)])
    assert d.number in {c.number for c in INDEX.candidates(p, DEFAULT_RULES)}


def test_add_replace_remove() -> None:
    first, other = decl(), decl(number="100000000002", tractor_plate="29H55555", containers=[C2])
    index = DeclarationIndex([first, other])
    assert len(index) == 2 and first.number in index and index.get(first.number) == first
    old = passage(plate_front=plate("51C10845"), containers=[])
    new = passage(plate_front=plate("29H12345"), containers=[])
    assert index.candidates(old, DEFAULT_RULES) == [first]
    amended = first.model_copy(update={"tractor_plate": "29H12345", "containers": ()})
    index.add(amended)
    assert len(index) == 2 and index.get(first.number) == amended
    assert index.candidates(old, DEFAULT_RULES) == []
    assert amended in index.candidates(new, DEFAULT_RULES)
    assert index.remove(first.number) == amended
    assert index.remove(first.number) is None
    assert index.candidates(new, DEFAULT_RULES) == []
    assert index.remove(other.number) == other and len(index) == 0


def test_key_functions_support_a_database_backed_index() -> None:
    """The same candidates come from a (key, number) table as from the in-memory index."""
    table: dict[str, set[str]] = defaultdict(set)
    for d in DECLS:
        for key in declaration_keys(d):
            table[key].add(d.number)
    rng = random.Random(11)
    for d in rng.sample(DECLS, 100):
        p = passage(
            plate_front=plate(_garble(rng, d.tractor_plate)),
            containers=[container(c) for c in d.containers],
        )
        from_table = {
            n
            for k in passage_keys(p, DEFAULT_RULES.candidate_min_confidence)
            for n in table.get(k, ())
        }
        assert from_table == {c.number for c in INDEX.candidates(p, DEFAULT_RULES)}


def test_simulated_passages_clear_their_declaration() -> None:
    rng = random.Random(5)
    for d in rng.sample([x for x in DECLS if x.status == "valid"], 50):
        p = passage_for(d, rng, plate_errors=2)
        decision = decide(p, INDEX.candidates(p, DEFAULT_RULES), DEFAULT_RULES, set(), NOW)
        assert decision.outcome is Outcome.CLEARED, (d, decision.reasons)


def test_bench_matching_reports_numbers() -> None:
    result = bench_matching(2000, seed=1, passages=100)
    assert result.declarations == 2000 and result.passages == 100
    assert result.right_declaration >= 0.95
    assert 0 < result.median_candidates <= result.max_candidates


def test_candidate_filter_drops_only_what_decide_drops() -> None:
    """Rows skipped by `CandidateFilter` before they are built change no decision."""
    rng = random.Random(17)
    used = {d.number for d in DECLS[::7]}
    kept = total = 0
    for k in range(300):
        target = DECLS[rng.randrange(len(DECLS))]
        p = passage_for(target, rng, plate_errors=k % 3)
        if k % 5 == 0:  # containers misread too, or no plate at all
            p = p.model_copy(update={"plate_front": None})
        if k % 5 in (1, 2):  # a wrong check digit (a near match), another truck's plate read
            p = misread_container(p, other_plate=k % 5 == 2)
        candidates = INDEX.candidates(p, DEFAULT_RULES)
        keep = CandidateFilter(p, DEFAULT_RULES)
        filtered = [d for d in candidates if keep(d.tractor_plate, d.containers)]
        # what the read-ahead skips by plate is kept, if at all, through a container key
        keys = passage_keys(p, DEFAULT_RULES.candidate_min_confidence)
        assert all(keep.may_keep_plate(d.tractor_plate)
                   or any(f"c:{c}" in keys for c in d.containers) for d in filtered)
        kept, total = kept + len(filtered), total + len(candidates)
        assert decide(p, filtered, DEFAULT_RULES, used, NOW) == decide(
            p, candidates, DEFAULT_RULES, used, NOW
        )
    assert kept < total  # look-alike trucks decide drops were skipped


def _fully_sorted(p, candidates, rules, used):  # type: ignore[no-untyped-def]
    """The chosen declaration and named ambiguity rival of sorting every candidate with all its
    checks run (what `decide` did before it ran them only where the evidence ties)."""
    from central.domain import matching as m

    plates = m.plate_evidence(p, rules.candidate_min_confidence)
    evidence = m.container_evidence(p.containers, rules.candidate_min_confidence)
    scored = []
    for d in candidates:
        score = plates.score(d.tractor_plate)
        front = plates.score(d.tractor_plate, front_only=True) if plates.rear else score
        check = m.check_containers(evidence, d.containers)
        if score >= rules.plate_min_score or check.matched:
            scored.append(m._Scored(d, score, check, front))
    if not scored:
        return None, None
    checked = sorted(scored, key=lambda s: m._rank(s, m._checks(p, plates, s, rules, used), rules),
                     reverse=True)
    best = checked[0]
    rival = next((r for r in checked[1:] if r.decl.tractor_plate != best.decl.tractor_plate
                  and r.plate_score >= rules.plate_min_score
                  and r.plate_score >= best.plate_score - rules.ambiguity_margin
                  and len(r.containers.matched) == len(best.containers.matched)), None)
    return best.decl.number, None if rival is None else rival.decl.tractor_plate


def test_decide_picks_as_a_full_sort_of_every_checked_candidate() -> None:
    """`decide` runs the checks only of candidates the plate and container evidence leaves
    tied; the declaration it picks and the ambiguity rival it names are still those of sorting
    every candidate fully checked (look-alike trucks, used declarations, a loose rule set)."""
    from central.domain.rules import RuleSet

    rng = random.Random(29)
    loose = RuleSet(version="loose", plate_min_score=0.6, ambiguity_margin=0.15)
    targets = DECLS[:600]
    twins = [  # a look-alike truck for each: one character of the plate another
        d.model_copy(update={"number": d.number + "T", "tractor_plate": d.tractor_plate[:-1]
                             + str((int(d.tractor_plate[-1]) + 1) % 10)})
        for d in targets if d.tractor_plate[-1].isdigit()
    ]  # fmt: skip
    index = DeclarationIndex(DECLS + twins)
    ambiguous = 0
    for k in range(400):
        p = passage_for(targets[rng.randrange(len(targets))], rng, plate_errors=k % 4)
        rules = loose if k % 2 else DEFAULT_RULES
        used = {d.number for d in rng.sample(DECLS + twins, 800)}
        candidates = index.candidates(p, rules)
        decision = decide(p, candidates, rules, used, NOW)
        number, rival = _fully_sorted(p, candidates, rules, used)
        assert decision.declaration_number == number
        named = [f.detail for f in decision.reasons if f.detail.startswith("ambiguous plate")]
        assert named == ([] if rival is None else [named[0]])
        assert rival is None or named[0].split(" vs ")[1].startswith(rival)
        ambiguous += rival is not None
    assert ambiguous >= 50
