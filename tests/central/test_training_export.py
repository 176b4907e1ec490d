"""`smartgate central export-training`: what officers confirmed or corrected at a real central
(uvicorn, evidence uploaded over HTTP, verdicts and corrections through the API and the page
routes) becomes a labeled folder that `smartgate eval` reads; the crop itself is tested
directly."""

from __future__ import annotations

import csv
import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import cv2
import httpx
import numpy as np
import pytest

from central.db import make_engine, session_factory
from central.evidence import records
from central.evidence.retention import RetentionPolicy
from central.evidence.store import FilesystemEvidenceStore
from central.evidence.training import CropError, crop_plate, label_region
from smartgate.cli import main as cli_main
from smartgate.contract import Box, ImageRef, PlateRead
from tests.central.test_auth import fast_hashing  # noqa: F401
from tests.central.test_evidence import Central, central  # noqa: F401
from tests.test_contract import make_event
from tools.eval.evaluation import load_labels
from tools.synth.plates import render_scene_with_box

# --- the crop, directly -------------------------------------------------------------------


def test_crop_adds_a_margin_and_stays_inside_the_image() -> None:
    image = np.arange(200 * 300 * 3, dtype=np.uint32).astype(np.uint8).reshape(200, 300, 3)
    crop = crop_plate(image, Box(x1=100, y1=50, x2=200, y2=90), margin=0.1)
    assert crop.shape == (40 + 2 * 4, 100 + 2 * 10, 3)
    assert np.array_equal(crop, image[46:94, 90:210])
    edge = crop_plate(image, Box(x1=0, y1=180, x2=50, y2=199), margin=0.1)  # clipped
    assert edge.shape == (200 - 178, 50 + 5, 3)
    tiny = crop_plate(image, Box(x1=10, y1=10, x2=11, y2=11))
    assert tiny.shape[:2] == (5, 5)  # at least 2 px of margin
    for outside in (Box(x1=400, y1=10, x2=450, y2=30), Box(x1=10, y1=10, x2=10, y2=40)):
        with pytest.raises(CropError):
            crop_plate(image, outside)


@pytest.mark.parametrize(
    ("read_region", "text", "region"),
    [("vn", "51C10845", "vn"), ("cn", "桂A12345", "cn"), ("unknown", "桂A12345", "cn"),
     ("unknown", "29H12345", "vn"), ("us", "ABC1234", "us"), ("cn", "A12345", None),
     ("other", "XYZ", None)],
)  # fmt: skip
def test_label_region(read_region: str, text: str, region: str | None) -> None:
    assert label_region(read_region, text) == region


# --- the export from a real central -------------------------------------------------------


def _passage(gate: Central, plate: str, read: str, region: str, seed: int) -> str:
    """A passage whose front camera read `read` off a truck showing `plate`, stored with its
    evidence frame uploaded over HTTP; returns its event id."""
    scene, (x1, y1, x2, y2) = render_scene_with_box(plate, region, 1, seed, size=(960, 540))
    ok, jpeg = cv2.imencode(".jpg", scene, [cv2.IMWRITE_JPEG_QUALITY, 92])
    assert ok
    event = make_event(
        plate_front=PlateRead(text=read, region=region, confidence=0.9, camera="front",
                              box=Box(x1=x1, y1=y1, x2=x2, y2=y2), image_id="front1"),
        images=[ImageRef(image_id="front1", camera="front")],
    )
    gate.add(event, outcome="flagged")
    assert gate.put(event.event_id, "front1", jpeg.tobytes()).status_code == 201
    return event.event_id


def _approve(gate: Central, event_id: str, verdict: str = "approve") -> None:
    reply = httpx.post(f"{gate.url}/api/passages/{event_id}/decision",
                       json={"verdict": verdict, "note": "checked"},
                       headers={"Authorization": f"Bearer {gate.officer}"}, timeout=10)
    assert reply.status_code == 200, reply.text


def _correct(gate: Central, event_id: str, plate: str) -> None:
    reply = httpx.post(f"{gate.url}/passages/{event_id}/correction",
                       data={"plate": plate, "note": "misread"},
                       headers={"Authorization": f"Bearer {gate.officer}"}, timeout=10)
    assert reply.status_code == 303, reply.text


def _labels(folder: Path) -> dict[str, dict[str, str]]:
    with (folder / "labels.csv").open(encoding="utf-8", newline="") as fh:
        return {row["file"]: row for row in csv.DictReader(fh)}


def test_export_confirmed_and_corrected_plates_for_eval(
    central: Central, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,  # noqa: F811
    capsys: pytest.CaptureFixture[str],
) -> None:
    settings = central.settings
    monkeypatch.setenv("SMARTGATE_CENTRAL_DATA_DIR", str(settings.data_dir))
    monkeypatch.setenv("SMARTGATE_CENTRAL_SECRET_KEY", settings.secret_key.get_secret_value())
    approved = _passage(central, "51C10845", "51C10845", "vn", seed=3)
    corrected = _passage(central, "29H12345", "29H12845", "vn", seed=5)  # misread 3 as 8
    unreviewed = _passage(central, "30A11122", "30A11122", "vn", seed=7)
    held = _passage(central, "15C22233", "15C22233", "vn", seed=9)
    _approve(central, approved)
    _approve(central, held, "hold")  # a hold confirms nothing
    time.sleep(0.05)
    between = datetime.now(UTC)
    time.sleep(0.05)
    _correct(central, corrected, "29H-123.45")
    _approve(central, corrected, "inspect")

    out = tmp_path / "site-export"
    command = ["central", "export-training", str(out), "--database-url", settings.database_url]
    assert cli_main(command) == 0
    assert "2 crops added, 0 labels updated, 0 unchanged" in capsys.readouterr().out
    labels = _labels(out)
    assert {name.split("_")[0]: row["text"] for name, row in labels.items()} == {
        approved: "51C10845", corrected: "29H12345"}  # the officer's text, not the read
    assert unreviewed not in str(labels) and held not in str(labels)
    assert all(row["region"] == "vn" and row["rows"] == "1" and row["x1"] == ""
               for row in labels.values())
    rows = load_labels(out)  # what smartgate eval and models adapt read
    assert sorted(r.text for r in rows) == ["29H12345", "51C10845"]
    assert all(r.box is None for r in rows)
    for name in labels:
        crop = cv2.imread(str(out / "images" / name))
        assert crop is not None and 20 <= crop.shape[1] <= 400 and crop.shape[0] >= 10

    # idempotent: a second run adds nothing; a later correction updates the label in place
    assert cli_main(command) == 0
    assert "0 crops added, 0 labels updated, 2 unchanged" in capsys.readouterr().out
    _correct(central, approved, "51C10846")
    assert cli_main(command) == 0
    assert "0 crops added, 1 labels updated, 1 unchanged" in capsys.readouterr().out
    assert len(_labels(out)) == 2
    assert _labels(out)[f"{approved}_front1.jpg"]["text"] == "51C10846"

    # --since: only what officers decided or corrected since then
    since = tmp_path / "since"
    assert cli_main([*command[:2], str(since), "--since", between.isoformat(),
                     "--database-url", settings.database_url]) == 0
    assert {n.split("_")[0] for n in _labels(since)} == {corrected, approved}  # approved: re-corrected
    later = tmp_path / "later"
    assert cli_main([*command[:2], str(later), "--since",
                     (datetime.now(UTC) + timedelta(hours=1)).isoformat(),
                     "--database-url", settings.database_url]) == 0
    assert _labels(later) == {}

    # smartgate eval reads the folder
    capsys.readouterr()
    assert cli_main(["eval", str(out), "--limit", "2", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["images"] == 2 and summary["unreadable_images"] == []

    # a purged passage (retention) has no images and is left out; the open ones are kept (the
    # re-corrected one was decided again by the rules: no declaration, waiting for an officer)
    engine = make_engine(settings.database_url)
    report = records.purge(session_factory(engine), FilesystemEvidenceStore(
        settings.data_dir / "evidence"), RetentionPolicy(cleared_days=1, reviewed_days=1),
        datetime.now(UTC) + timedelta(days=30))
    engine.dispose()
    assert report.purged == 1  # the one sent to inspection: closed
    fresh = tmp_path / "after-purge"
    assert cli_main([*command[:2], str(fresh), "--database-url", settings.database_url]) == 0
    assert {n.split("_")[0] for n in _labels(fresh)} == {approved}


def test_a_labels_file_in_another_format_is_refused(
    central: Central, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,  # noqa: F811
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("SMARTGATE_CENTRAL_DATA_DIR", str(central.settings.data_dir))
    monkeypatch.setenv("SMARTGATE_CENTRAL_SECRET_KEY",
                       central.settings.secret_key.get_secret_value())
    out = tmp_path / "other"
    out.mkdir()
    (out / "labels.csv").write_text("file,text\na.jpg,X\n", encoding="utf-8")
    assert cli_main(["central", "export-training", str(out), "--database-url",
                     central.settings.database_url]) == 2
    assert "columns" in capsys.readouterr().err
    assert (out / "labels.csv").read_text(encoding="utf-8") == "file,text\na.jpg,X\n"
