"""What officers confirmed or corrected, exported as a labeled folder a site trains on.

`smartgate central export-training DIR [--since DATE]` writes `DIR/images/<event>_<image>.jpg`
(the plate crop, cut from the stored evidence frame by the read's box with a small margin) and
`DIR/labels.csv` (`file,text,region,rows,x1,y1,x2,y2`, boxes blank: every row is a crop), the
format `smartgate eval DIR` and `smartgate models adapt --data DIR` read (docs/plates.md).

Which plates get a label (`store.officer_reviews`):

* the officer corrected the tractor plate: the corrected text labels the front and rear reads
  (both cameras see the tractor's own plate);
* otherwise an officer approved, rejected or sent the passage to inspection without correcting
  its plate: the read is confirmed and labels the best read (and the other tractor read when it
  says the same). Trailer plates are never labeled: no officer action confirms them.

Only Vietnamese, Chinese and Latin (us, eu, br) plates are exported, only from evidence that is
at central and still hashes right; purged passages (retention) have no images and are left out,
passages on legal hold are exported like any other. Re-running into the same folder is
idempotent: a crop is named after its event and image id, a known file is not cut again, and a
label an officer changed since is updated in place.
"""

from __future__ import annotations

import csv
import io
import logging
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import cv2
import numpy as np
from pydantic import ValidationError
from sqlalchemy.orm import Session, sessionmaker

from central import store
from central.domain.plate_similarity import is_cjk
from central.evidence import records
from central.evidence.store import (
    EvidenceStore,
    EvidenceStoreError,
    sha256_hex,
    write_atomic,
)
from smartgate.contract import Box, PassageEvent, PlateRead, normalize_plate_text

log = logging.getLogger(__name__)

COLUMNS = ("file", "text", "region", "rows", "x1", "y1", "x2", "y2")
LATIN_REGIONS = ("vn", "us", "eu", "br")  # kept as read; cn is told by its glyphs
_VN_PLATE = re.compile(r"^\d{2}[A-Z]{1,2}\d{4,6}$")
MARGIN = 0.12  # of the box's width and height, on each side
JPEG_QUALITY = 95


class TrainingExportError(ValueError):
    """The folder cannot take an export (a labels.csv in another format)."""


class CropError(ValueError):
    """A plate box that cuts nothing usable out of its image."""


def crop_plate(image: np.ndarray, box: Box, margin: float = MARGIN) -> np.ndarray:
    """The plate cut out of `image` by its `box`, widened by `margin` of the box's size on each
    side (at least 2 pixels) and clipped to the image; CropError when the box lies outside the
    image or leaves less than 2x2 pixels."""
    height, width = image.shape[:2]
    dx = max(2, round((box.x2 - box.x1) * margin))
    dy = max(2, round((box.y2 - box.y1) * margin))
    x1, y1 = max(0, box.x1 - dx), max(0, box.y1 - dy)
    x2, y2 = min(width, box.x2 + dx), min(height, box.y2 + dy)
    if x2 - x1 < 2 or y2 - y1 < 2 or box.x2 - box.x1 < 1 or box.y2 - box.y1 < 1:
        raise CropError(f"box {box.x1},{box.y1},{box.x2},{box.y2} cuts nothing out of a "
                        f"{width}x{height} image")
    return image[y1:y2, x1:x2].copy()


def label_region(read_region: str, text: str) -> str | None:
    """The labels.csv region of a plate text read as `read_region`: `cn` when it carries Chinese
    glyphs, a Latin region as read, `vn` for a Vietnamese-shaped text read without a region;
    None for anything else (not exported: a Chinese read whose label has no glyph, other)."""
    if any(is_cjk(ch) for ch in text):
        return "cn"
    if read_region in LATIN_REGIONS:
        return read_region
    if read_region in ("unknown", "other") and _VN_PLATE.match(text):
        return "vn"
    return None


@dataclass(frozen=True)
class Label:
    """One labels.csv row: a crop of a read, what it says."""

    file: str
    text: str
    region: str
    rows: int
    event_id: str
    read: PlateRead


def labels_of(review: store.OfficerReview) -> tuple[list[Label], Counter[str]]:
    """The labeled plate reads of one reviewed passage, and why others were left out."""
    skipped: Counter[str] = Counter()
    try:
        event = PassageEvent.model_validate(review.passage.payload)
    except ValidationError:
        log.warning("passage %s: stored payload no longer validates", review.passage.event_id)
        skipped["payload invalid"] += 1
        return [], skipped
    best = event.best_plate
    if best is None:
        skipped["no plate read"] += 1
        return [], skipped
    tractor = [p for p in (event.plate_front, event.plate_rear) if p is not None]
    if review.corrected_plate:
        text, reads = normalize_plate_text(review.corrected_plate), tractor
    elif review.confirmed:
        text, reads = best.text, [p for p in tractor if p.text == best.text]
    else:  # corrected its containers only: the plate was neither confirmed nor corrected
        skipped["plate not confirmed"] += 1
        return [], skipped
    out: dict[str, Label] = {}
    for read in reads:
        region = label_region(read.region, text)
        if not text or region is None:
            skipped["region not exported"] += 1
        elif read.image_id is None or read.box is None:
            skipped["read without image or box"] += 1
        else:
            file = f"{event.event_id}_{read.image_id}.jpg"
            out.setdefault(file, Label(file, text, region, read.rows, event.event_id, read))
    return list(out.values()), skipped


@dataclass
class TrainingExport:
    """What one export did."""

    added: int = 0
    updated: int = 0
    unchanged: int = 0
    skipped: Counter[str] = field(default_factory=Counter)


def _read_existing(path: Path) -> dict[str, dict[str, str]]:
    if not path.is_file():
        return {}
    with path.open(newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        if tuple(reader.fieldnames or ()) != COLUMNS:
            raise TrainingExportError(f"{path}: columns {reader.fieldnames}, expected "
                                      f"{','.join(COLUMNS)}")
        return {row["file"]: row for row in reader}


def _cut(label: Label, session: Session, evidence: EvidenceStore) -> bytes | str:
    """The label's crop as JPEG bytes, or why there is none."""
    assert label.read.image_id is not None and label.read.box is not None
    row = records.image_row(session, label.event_id, label.read.image_id)
    if row is None or row.purged_at is not None:
        return "image not at central"
    try:
        data = evidence.get(row.sha256)
    except EvidenceStoreError as exc:
        log.error("training export: %s", exc)
        return "image unreadable"
    if data is None:
        return "image missing from the store"
    if sha256_hex(data) != row.sha256:
        log.error("training export: image %s of %s does not match its recorded hash: left out",
                  label.read.image_id, label.event_id)
        return "image altered"
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if image is None:
        return "image not decodable"
    try:
        crop = crop_plate(image, label.read.box)
    except CropError as exc:
        log.warning("training export: %s of %s: %s", label.read.image_id, label.event_id, exc)
        return "box outside the image"
    ok, jpeg = cv2.imencode(".jpg", crop, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    return jpeg.tobytes() if ok else "crop not encodable"


def export_training(
    sessions: sessionmaker, evidence: EvidenceStore, folder: Path, since: datetime | None = None,
    actor: str = "cli", progress: Callable[[int], object] = lambda _n: None,
) -> TrainingExport:
    """Export the plates officers confirmed or corrected (reviewed at or after `since`) into
    `folder` (`images/` and `labels.csv`), adding to what is already there; audited as
    `training.export`. Raises TrainingExportError for a labels.csv in another format and
    OSError when the folder cannot be written."""
    images = folder / "images"
    images.mkdir(parents=True, exist_ok=True)
    labels_path = folder / "labels.csv"
    rows = _read_existing(labels_path)
    report = TrainingExport()
    with sessions() as session:
        for review in store.officer_reviews(session, since):
            progress(1)
            labels, skipped = labels_of(review)
            report.skipped.update(skipped)
            for label in labels:
                want = {"file": label.file, "text": label.text, "region": label.region,
                        "rows": str(label.rows), "x1": "", "y1": "", "x2": "", "y2": ""}
                have = rows.get(label.file)
                if have is not None and (images / label.file).is_file():
                    if have == want:
                        report.unchanged += 1
                    else:
                        rows[label.file] = want
                        report.updated += 1
                    continue
                crop = _cut(label, session, evidence)
                if isinstance(crop, str):
                    report.skipped[crop] += 1
                    continue
                write_atomic(images / label.file, crop)
                rows[label.file] = want
                report.added += 1
        _write_labels(labels_path, rows)
        store.add_audit(session, actor, "training.export", "training", folder.name[:64], {
            "since": since.isoformat() if since else None, "added": report.added,
            "updated": report.updated, "skipped": dict(report.skipped)})  # fmt: skip
        session.commit()
    return report


def _write_labels(path: Path, rows: dict[str, dict[str, str]]) -> None:
    """labels.csv replaced in one step (a crash leaves the old one whole)."""
    text = io.StringIO(newline="")
    writer = csv.DictWriter(text, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows.values())
    write_atomic(path, text.getvalue().encode("utf-8"))
