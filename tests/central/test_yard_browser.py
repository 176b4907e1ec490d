"""The operator's Yard page in a real Chromium, against central on a real mosquitto: trucks
entering the yard appear live, 'call next' calls the head of the queue, the report adds up."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from smartgate import contract
from smartgate.contract import PassageEvent, PlateRead
from tests.central.test_web_browser import (  # noqa: F401  (fixtures)
    ARTIFACTS,
    SITE,
    Lane,
    browser,
    central_url,
    lane,
    sign_in,
)

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def checkpoint(plate: str, lane_id: str, role: str, minutes_ago: float) -> PassageEvent:
    start = datetime.now(UTC) - timedelta(minutes=minutes_ago)
    return PassageEvent(
        event_id=contract.new_id(), site=SITE, node_id="edge-yard", lane=lane_id, role=role,
        started_at=start, ended_at=start + timedelta(seconds=6),
        plate_front=PlateRead(text=plate, confidence=0.9),
    )  # fmt: skip


def test_yard_page_live_queue_call_next_and_report(browser, central_url: str, lane: Lane) -> None:  # noqa: F811
    ARTIFACTS.mkdir(exist_ok=True)
    send = lambda e: lane.publish(contract.passage_topic(SITE, e.lane), e.to_json())  # noqa: E731
    send(checkpoint("15C04321", "E1", "yard_entry", 50))
    send(checkpoint("15C0432I", "L3", "inspection", 20))  # a look-alike misread at the lane
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    sign_in(page, central_url, "oscar")
    page.goto(f"{central_url}/yard?lang=en")
    for _ in range(40):  # central may still be storing what was published before the load
        if "1 / 12" in page.inner_text(".zone[data-zone=inspection_area] h2"):
            break
        page.wait_for_timeout(250)
        page.reload()
    assert "1 / 12" in page.inner_text(".zone[data-zone=inspection_area] h2")
    page.wait_for_selector("#live.on")

    send(checkpoint("29C12345", "E1", "yard_entry", 12))
    send(checkpoint("51D67890", "E2", "yard_entry", 3))
    # live: refreshed on the passage events (at the latest by the 30 s refresh)
    page.wait_for_selector(".zone[data-zone=yard] h2:has-text('2 / 150')", timeout=35_000)
    assert page.locator("#yard-queue tr[data-journey]").count() == 2
    rows = page.inner_text("#yard-queue tbody")
    assert rows.index("29C12345") < rows.index("51D67890")  # by arrival
    assert page.inner_text("#queue-length") == "2"
    assert "min" in page.inner_text(".zone[data-zone=yard] .dwell")  # p50 / p90 of who is inside

    page.reload()  # the lane list now holds the inspection lane seen
    page.select_option("#call-lane", "L3")
    page.click("#call-next")
    page.wait_for_selector("#called")
    assert "29C12345" in page.inner_text("#called") and "L3" in page.inner_text("#called")
    first = page.inner_text("#yard-queue tbody tr:first-child")
    assert "29C12345" in first and "L3" in first
    page.screenshot(path=str(ARTIFACTS / "yard.png"), full_page=True)

    page.goto(f"{central_url}/yard?lang=vi")
    assert "Bãi chờ" in page.inner_text("h1")
    page.goto(f"{central_url}/yard/report?lang=en")
    assert page.inner_text(".vehicles-in") == "3"
    page.wait_for_selector("#hourly-chart svg rect")
    page.screenshot(path=str(ARTIFACTS / "yard-report.png"), full_page=True)

    # 12C123B5 at the lane could be 12C12385 or 12C12335: marked, and the operator resolves it
    send(checkpoint("12C12385", "E1", "yard_entry", 2))
    send(checkpoint("12C12335", "E2", "yard_entry", 2))
    send(checkpoint("12C123B5", "L3", "inspection", 1))
    page.goto(f"{central_url}/yard?lang=en")
    odd = "#yard-alerts li.ambiguous"
    for _ in range(40):
        if page.locator(odd).count():
            break
        page.wait_for_timeout(250)
        page.reload()
    assert "12C123B5" in page.inner_text(odd)
    page.click(f"{odd} form.merge:first-of-type button")
    page.wait_for_url("**/yard")
    assert page.locator(odd).count() == 0
