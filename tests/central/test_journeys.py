"""The pure journey core: linking (misreads, swaps, ambiguity), zones, stages, forecast, site."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from central.domain import journeys as core
from central.domain.queueing import expected_wait, forecast, lane_rate, naive_wait
from central.domain.site import DEFAULT_SITE, SiteConfigError, load_site_config

T0 = datetime(2026, 11, 23, 6, 0, tzinfo=UTC)


def sighting(plate: str | None, role: str = "inspection", minutes: float = 60,
             alts: tuple[str, ...] = ()) -> core.Sighting:
    return core.Sighting("e-" + (plate or "none"), "L3", role, T0 + timedelta(minutes=minutes),
                         plate, alts, 0.9)


def journey(jid: int, *plates: str, role: str = "yard_entry", minutes: float = 0,
            alts: tuple[str, ...] = ()) -> core.OpenJourney:
    return core.OpenJourney(jid, plates, role, T0 + timedelta(minutes=minutes), alts)


YARD = [journey(1, "29C12345"), journey(2, "51D67890"), journey(3, "桂A12345"),
        journey(4, "15C04321")]


@pytest.mark.parametrize(
    ("name", "read", "alts", "journeys", "kind", "linked"),
    [
        ("exact read", "29C12345", (), YARD, "linked", 1),
        ("look-alike misread 0/D, 5/S", "51067B90", (), YARD, "linked", 2),
        ("province character dropped", "A12345", (), YARD, "linked", 3),
        ("misread with the truth among the alternatives", "15C04821", ("15C04321",), YARD,
         "linked", 4),
        ("nothing like it in the yard: a new journey", "99H55555", (), YARD, "new", None),
        # 29C123B5 could be 29C12385 (B/8) or 29C12335 (B/3): not guessed
        ("misread as close to two trucks' plates", "29C123B5", (),
         [journey(1, "29C12385"), journey(5, "29C12335")], "ambiguous", None),
        ("one look-alike closer than one arbitrary edit", "29C1234S", (),
         [journey(1, "29C12345"), journey(5, "29C12845")], "linked", 1),
        ("two open journeys of one plate", "51D67890", (),
         [journey(2, "51D67890"), journey(6, "51D67890", minutes=5)], "ambiguous", None),
        ("journey already past this checkpoint is not eligible", "29C12345", (),
         [journey(1, "29C12345", role="inspection"), journey(7, "29C12346")], "linked", 7),
        ("no read: a journey of its own", None, (), YARD, "new", None),
    ],
)
def test_link_table(name, read, alts, journeys, kind, linked) -> None:  # type: ignore[no-untyped-def]
    got = core.link(sighting(read, alts=alts), journeys, DEFAULT_SITE)
    assert (got.kind.value, got.journey_id) == (kind, linked), name
    if kind == "ambiguous":
        assert len(got.rivals) >= 2


def test_entry_always_starts_a_journey_and_times_must_fit() -> None:
    assert core.link(sighting("29C12345", "yard_entry"), YARD, DEFAULT_SITE).kind == "new"
    before_entry = sighting("29C12345", minutes=-30)  # long before the truck entered
    assert core.link(before_entry, YARD, DEFAULT_SITE).kind == "new"
    days_later = sighting("29C12345", minutes=5 * 24 * 60)
    assert core.link(days_later, YARD, DEFAULT_SITE).kind == "new"


def test_a_passage_sent_late_fits_where_it_belongs() -> None:
    """An edge that was offline sends its passages late: they still join the right journey."""
    cp = core.Checkpoint
    orphan = core.OpenJourney(8, ("29C12345",), "inspection", T0 + timedelta(minutes=60),
                              checkpoints=(cp("inspection", T0 + timedelta(minutes=60)),))
    late_entry = sighting("29C12345", "yard_entry", minutes=10)
    assert core.link(late_entry, [orphan], DEFAULT_SITE).journey_id == 8
    done = core.OpenJourney(9, ("51D67890",), "border_exit", T0 + timedelta(minutes=90),
                            checkpoints=(cp("yard_entry", T0), cp("border_exit",
                                                                 T0 + timedelta(minutes=90))))
    assert core.link(sighting("51D67890", minutes=40), [done], DEFAULT_SITE).journey_id == 9
    # but never a second inspection, nor an entry after the journey began
    twice = core.OpenJourney(9, ("51D67890",), "inspection", T0,
                             checkpoints=(cp("yard_entry", T0), cp("inspection", T0)))
    assert core.link(sighting("51D67890", minutes=40), [twice], DEFAULT_SITE).kind == "new"
    assert core.link(sighting("51D67890", "yard_entry", 40), [done], DEFAULT_SITE).kind == "new"


def test_declared_for_different_trucks_never_links() -> None:
    """29LD94567's entry is still held back by an offline edge; 29LD94767 waits in the yard.
    One arbitrary edit apart, but their declarations name different tractors: a new journey."""
    waiting = core.OpenJourney(1, ("29LD94767",), "yard_entry", T0, declared_plate="29LD94767")
    s = core.Sighting("e", "L3", "inspection", T0 + timedelta(minutes=30), "29LD94567",
                      declared_plate="29LD94567")
    assert core.link(s, [waiting], DEFAULT_SITE).kind == "new"
    undeclared = core.Sighting("e", "L3", "inspection", T0 + timedelta(minutes=30), "29LD94567")
    assert core.link(undeclared, [waiting], DEFAULT_SITE).journey_id == 1
    misread = core.Sighting("e", "L3", "inspection", T0 + timedelta(minutes=30), "29LD9A767",
                            declared_plate="29LD94767")
    assert core.link(misread, [waiting], DEFAULT_SITE).journey_id == 1


def test_replay_gives_zone_and_completion_in_any_order() -> None:
    cp, m = core.Checkpoint, timedelta(minutes=1)
    entry, insp = cp("yard_entry", T0, T0 + m), cp("inspection", T0 + 30 * m, T0 + 35 * m)
    assert core.replay([insp, entry], DEFAULT_SITE) == core.Where(
        "inspection_area", T0 + 35 * m, False, None)
    assert core.replay([entry], DEFAULT_SITE).zone == "yard"
    out = cp("border_exit", T0 + 50 * m, T0 + 51 * m)
    assert core.replay([out, entry, insp], DEFAULT_SITE) == core.Where(None, None, True, T0 + 51 * m)


def test_misread_at_one_checkpoint_neither_splits_nor_swaps() -> None:
    """Two trucks with close plates go yard → inspection → border; one is misread once."""
    site = DEFAULT_SITE
    trucks = {"A": "29C12345", "B": "29C18345"}
    reads = [  # (truck, role, minute, what the reader saw)
        ("A", "yard_entry", 0, "29C12345"), ("B", "yard_entry", 1, "29C18345"),
        ("A", "inspection", 30, "29C1234S"), ("B", "inspection", 31, "29CI8345"),
        ("A", "border_exit", 50, "29C12345"), ("B", "border_exit", 52, "2PC18345"),
    ]
    open_: dict[int, core.OpenJourney] = {}
    truth: dict[int, str] = {}
    for n, (truck, role, minute, text) in enumerate(reads):
        s = core.Sighting(f"e{n}", "L", role, T0 + timedelta(minutes=minute), text)
        got = core.link(s, list(open_.values()), site)
        if got.kind == "new":
            jid = len(truth) + 1
            truth[jid] = truck
            open_[jid] = core.OpenJourney(jid, (text,), role, s.at)
        else:
            assert got.kind == "linked", (truck, role, got)
            assert truth[got.journey_id] == truck
            j = open_[got.journey_id]
            open_[j.journey_id] = core.OpenJourney(j.journey_id, (*j.plates, text), role, s.at)
    assert sorted(truth.values()) == sorted(trucks)


def test_zones_stages_and_levels() -> None:
    site = DEFAULT_SITE
    assert core.zone_after("yard_entry", None, site) == "yard"
    assert core.zone_after("inspection", "yard", site) == "inspection_area"
    assert core.zone_after("border_exit", "inspection_area", site) is None
    assert core.zone_after("yard_exit", "yard", site) is None
    assert core.zone_after("checkpoint", "yard", site) == "yard"
    marks = [core.Checkpoint("yard_entry", T0), core.Checkpoint("inspection", T0 + timedelta(hours=2)),
             core.Checkpoint("border_exit", T0 + timedelta(hours=2, minutes=25))]
    assert core.stages(marks) == core.Stages(7200.0, 1500.0, 8700.0)
    assert core.stages(marks[:1]) == core.Stages(None, None, None)
    assert core.crossed_levels(79, 80, 100, [0.8, 0.95]) == [0.8]
    assert core.crossed_levels(80, 81, 100, [0.8, 0.95]) == []
    assert core.crossed_levels(70, 100, 100, [0.8, 0.95]) == [0.8, 0.95]
    inside = [core.Inside(1, "A", "yard", T0), core.Inside(2, "B", "yard", T0 + timedelta(1), True)]
    assert [t.journey_id for t in core.queue_order(inside)] == [2, 1]
    assert core.percentile([1, 2, 3, 4, 5], 0.5) == 3 and core.percentile([], 0.5) is None


def test_forecast_model() -> None:
    # a lane serving one truck every 10 minutes while busy; a 2-hour gap is idle time
    times = [T0 + timedelta(minutes=10 * k) for k in range(7)] + [T0 + timedelta(hours=3)]
    rate = lane_rate("L3", times, busy_gap_s=900)
    assert rate.served == 8 and rate.mean_service_s == pytest.approx(600)
    two = [rate, lane_rate("L4", times, 900)]
    # 10 trucks not yet served, 2 on the lanes: wait for 10 - 2 + 1 = 9 departures at 2/600 s
    assert expected_wait(10, two) == pytest.approx(9 * 300)
    assert expected_wait(1, two) == 0.0
    assert naive_wait(10, two) == pytest.approx(6000)
    assert expected_wait(3, []) is None and expected_wait(0, []) == 0.0
    # perishable trucks arriving at 1 per 1200 s go first: 9 departures at 2/600 - 1/1200 s
    assert expected_wait(10, two, priority_rate_per_s=1 / 1200) == pytest.approx(9 * 400)
    assert expected_wait(10, two, priority_rate_per_s=1) == pytest.approx(9 * 600)  # capped
    f = forecast(10, {"L3": times, "L4": times})
    assert f.expected_wait_s == pytest.approx(2700) and f.naive_wait_s == pytest.approx(6000)


def test_site_file_errors_name_the_key(tmp_path: Path) -> None:
    good = tmp_path / "site.yaml"
    good.write_text("site: lsn\nzones:\n  - {name: yard, capacity: 40, enter: [yard_entry], "
                    "leave: [inspection], queue_for: [L3, L4]}\nlanes: {L9: yard_entry}\n")
    site = load_site_config(good)
    assert site.zone("yard").capacity == 40 and site.queue_zone_of("L4").name == "yard"
    bad = tmp_path / "bad.yaml"
    bad.write_text("zones:\n  - {name: yard, capacity: 0, enter: [yard_entry], leave: [x]}\n")
    with pytest.raises(SiteConfigError, match="zones.0.capacity"):
        load_site_config(bad)
    typo = tmp_path / "typo.yaml"
    typo.write_text("zone: []\n")
    with pytest.raises(SiteConfigError, match="zone"):
        load_site_config(typo)
    twice = tmp_path / "twice.yaml"
    twice.write_text("zones:\n  - {name: a, capacity: 1, enter: [yard_entry], leave: [inspection]}"
                     "\n  - {name: b, capacity: 1, enter: [yard_entry], leave: [inspection]}\n")
    with pytest.raises(SiteConfigError, match="at most one zone"):
        load_site_config(twice)
