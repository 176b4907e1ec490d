"""Accuracy of plate and container reading on a labeled folder (`labels.csv` + `images/`).

`labels.csv` columns: `file,text,region,rows,x1,y1,x2,y2` (see the data README). Rows with a
box are whole scenes and go through the full pipeline (found and read; correct when the top
read equals the label); rows without a box are crops read as one plate. Container rows go to
`edge.recognition.containers` (crops → `read_code_crop`, scenes → `find_codes`).
"""

from __future__ import annotations

import csv
import logging
import statistics
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from tqdm import tqdm

from edge.recognition.ocr import ImageError, check_image
from edge.recognition.plates import PlateReader, normalize_plate
from edge.recognition.province_prior import ProvincePrior
from edge.recognition.results import PlateResult

log = logging.getLogger(__name__)


class LabelFileError(ValueError):
    """A labels.csv that is missing or malformed."""


@dataclass(frozen=True)
class LabelRow:
    """One labeled image."""

    file: str
    text: str
    region: str
    rows: int | None
    box: tuple[int, int, int, int] | None


@dataclass(frozen=True)
class Outcome:
    """The read of one labeled image."""

    row: LabelRow
    read: str
    ms: float
    label_error: bool = False
    unreadable: bool = False  # the image file is missing or not an image: not scored
    candidates: tuple[str, ...] = ()  # the reader's ranked alternatives for the top read

    @property
    def in_top_n(self) -> bool:
        """Whether the label is the read or one of its candidates (what central matching, which
        compares every candidate with the declarations, can still recover)."""
        return self.row.text == self.read or self.row.text in self.candidates

    @property
    def correct(self) -> bool:
        return self.read == self.row.text

    @property
    def correct_o0(self) -> bool:
        return self.read.replace("O", "0") == self.row.text.replace("O", "0")


@dataclass
class Report:
    """Accuracy summary over outcomes, overall, per region and per row count."""

    outcomes: list[Outcome] = field(default_factory=list)

    def summary(self) -> dict:
        scored = [o for o in self.outcomes if not (o.label_error or o.unreadable)]
        out = _stats(scored)
        out["median_ms_per_image"] = round(statistics.median(o.ms for o in scored), 1) if scored \
            else 0.0
        out["per_region"] = {}
        for region in sorted({o.row.region for o in scored}):
            part = [o for o in scored if o.row.region == region]
            stats = _stats(part)
            rows = sorted({o.row.rows for o in part if o.row.rows})
            if len(rows) > 1 or region == "vn":
                stats["per_rows"] = {
                    str(r): _stats([o for o in part if o.row.rows == r]) for r in rows
                }
            out["per_region"][region] = stats
        out["label_errors"] = [
            {"file": o.row.file, "text": o.row.text} for o in self.outcomes if o.label_error
        ]
        out["unreadable_images"] = [o.row.file for o in self.outcomes if o.unreadable]
        return out


def _stats(outcomes: Sequence[Outcome]) -> dict:
    n = len(outcomes)
    correct = sum(o.correct for o in outcomes)
    return {
        "images": n,
        "correct": correct,
        "accuracy": round(correct / n, 4) if n else 0.0,
        "accuracy_o_equals_0": round(sum(o.correct_o0 for o in outcomes) / n, 4) if n else 0.0,
        "accuracy_top_n": round(sum(o.in_top_n for o in outcomes) / n, 4) if n else 0.0,
    }


def load_labels(folder: Path) -> list[LabelRow]:
    """Parse `folder/labels.csv`."""
    path = folder / "labels.csv"
    if not path.is_file():
        raise LabelFileError(f"{path} not found")
    rows = []
    with path.open(newline="", encoding="utf-8") as fh:
        for n, rec in enumerate(csv.DictReader(fh), start=2):
            try:
                box = tuple(int(float(rec[k])) for k in ("x1", "y1", "x2", "y2")) \
                    if rec.get("x1") else None
                rows.append(LabelRow(rec["file"], normalize_plate(rec["text"]), rec["region"],
                                     int(rec["rows"]) if rec.get("rows") else None,
                                     box))  # type: ignore[arg-type]
            except (KeyError, ValueError) as exc:
                raise LabelFileError(f"{path}:{n}: bad row {rec}: {exc}") from exc
    return rows


def reader_regions(rows: Iterable[LabelRow]) -> tuple[str, ...]:
    """Plate formats a site with these plates would configure (Latin regions share a grammar)."""
    regions = {r.region for r in rows if r.region != "container"}
    return tuple(sorted(regions)) or ("vn", "cn")


def _read_image(path: Path) -> np.ndarray:
    if not path.is_file():
        raise ImageError(f"image {path} not found")
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise ImageError(f"cannot decode image {path}")
    return check_image(image, f"image {path}")  # too small or too large to read


def _container_reader() -> tuple[Callable, Callable, Callable[[str], bool]]:
    """`read_code_crop`, `find_codes` and the ISO 6346 validity check, imported on first use."""
    from edge.recognition import containers
    from smartgate.iso6346 import is_valid

    return containers.read_code_crop, containers.find_codes, is_valid


def evaluate(
    folder: Path,
    limit: int | None = None,
    regions: Sequence[str] | None = None,
    batch: int = 16,
    reader: PlateReader | None = None,
    province_prior: bool = True,
    recognizer: str = "ppocr",
) -> Report:
    """Read every labeled image of `folder` in file order and collect outcomes (crops batched by
    `batch`); with `province_prior` the reader learns the set's provinces as it goes, as an edge
    node learns its site's (`edge.recognition.province_prior`); `recognizer` is the reader's
    `recognizer_mode` (ppocr, own or fused)."""
    rows = load_labels(folder)[:limit]
    plates = [r for r in rows if r.region != "container"]
    reader = reader or PlateReader(regions=regions or reader_regions(plates),
                                   province_prior=ProvincePrior() if province_prior else None,
                                   recognizer_mode=recognizer)
    report = Report()
    pending: list[tuple[LabelRow, np.ndarray]] = []
    bar = tqdm(total=len(rows), desc=folder.name, unit="img")

    def flush() -> None:
        start = time.perf_counter()
        results = reader.read_crops([img for _, img in pending])
        ms = (time.perf_counter() - start) * 1000 / len(pending)
        report.outcomes.extend(Outcome(r, res.text, ms, candidates=_texts(res)) for (r, _), res in
                               zip(pending, results, strict=True))
        bar.update(len(pending))
        pending.clear()

    for row in rows:
        try:
            image = _read_image(folder / "images" / row.file)
        except ImageError as exc:
            log.warning("not scored: %s", exc)
            report.outcomes.append(Outcome(row, "", 0.0, unreadable=True))
            bar.update()
            continue
        if row.region == "container":
            report.outcomes.append(_container_outcome(row, image))
            bar.update()
        elif row.box is None:
            pending.append((row, image))
            if len(pending) >= batch:
                flush()
        else:
            start = time.perf_counter()
            found = reader.read_frames([image])[0]
            ms = (time.perf_counter() - start) * 1000
            report.outcomes.append(Outcome(row, found[0].text if found else "", ms,
                                           candidates=_texts(found[0]) if found else ()))
            bar.update()
    if pending:
        flush()
    bar.close()
    return report


def _texts(result: PlateResult) -> tuple[str, ...]:
    return tuple(text for text, _ in result.candidates)


def _container_outcome(row: LabelRow, image: np.ndarray) -> Outcome:
    read_code_crop, find_codes, is_valid = _container_reader()
    start = time.perf_counter()
    if row.box is None:
        result = read_code_crop(image)
        read = result.code if result is not None else ""
    else:
        found = find_codes(image)
        read = found[0].code if found else ""
    ms = (time.perf_counter() - start) * 1000
    return Outcome(row, read, ms, label_error=not is_valid(row.text))


def _caption(tile: np.ndarray, text: str) -> tuple[np.ndarray, bool]:
    """`text` drawn under the tile's image; without a CJK (or any) font, OpenCV's own font with
    each non-ASCII character as `?`. Returns the tile and whether characters were replaced."""
    from tools.synth.plates import FontMissingError, draw_text

    try:
        return draw_text(tile, text, (4, 104), 20, (0, 0, 160)), False
    except FontMissingError:
        ascii_text = "".join(ch if ch.isascii() else "?" for ch in text)
        for k, line in enumerate(ascii_text.split("\n")):
            cv2.putText(tile, line, (4, 122 + 22 * k), cv2.FONT_HERSHEY_SIMPLEX, 0.6,
                        (0, 0, 160), 1, cv2.LINE_AA)  # fmt: skip
        return tile, ascii_text != text


def error_sheet(report: Report, folder: Path, out_dir: Path, per_sheet: int = 48) -> list[Path]:
    """PNG contact sheets of the misses: image (or its labeled box), label and read.

    Without a CJK font the captions are written with `?` for Chinese characters (logged once)
    instead of failing: the sheets come last, after the results."""
    replaced = False
    misses = [o for o in report.outcomes
              if not (o.correct or o.label_error or o.unreadable)]
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for start in range(0, len(misses), per_sheet):
        tiles = []
        for o in misses[start : start + per_sheet]:
            image = _read_image(folder / "images" / o.row.file)
            if o.row.box is not None:
                x1, y1, x2, y2 = o.row.box
                pad = max(10, (x2 - x1) // 2)
                around = image[max(0, y1 - pad) : y2 + pad, max(0, x1 - pad) : x2 + pad]
                image = around if around.size else image  # a box outside the image: all of it
            tile = np.full((150, 240, 3), 255, np.uint8)
            scale = min(236 / image.shape[1], 100 / image.shape[0])
            small = cv2.resize(image, None, fx=scale, fy=scale)
            tile[2 : 2 + small.shape[0], 2 : 2 + small.shape[1]] = small
            tile, lost = _caption(tile, f"{o.row.text}\n{o.read or '∅'}")
            replaced |= lost
            tiles.append(tile)
        while len(tiles) % 6:
            tiles.append(np.full((150, 240, 3), 255, np.uint8))
        sheet = np.vstack([np.hstack(tiles[i : i + 6]) for i in range(0, len(tiles), 6)])
        path = out_dir / f"{folder.name}_errors_{start // per_sheet:02d}.png"
        cv2.imwrite(str(path), sheet)
        paths.append(path)
    if replaced:
        log.warning("no CJK font installed (apt-get install fonts-wqy-microhei): Chinese "
                    "characters on the error sheets are shown as '?'")
    return paths


def _bench_images(n_scenes: int, n_crops: int) -> tuple[list[np.ndarray], list[np.ndarray], str]:
    """Whole scenes and plate crops: real ones from shared/data when present, else synthetic."""
    data = Path(__file__).resolve().parents[1].parent / "shared" / "data"
    scenes_dir, crops_dir = data / "openalpr-endtoend", data / "vn-real"
    if scenes_dir.is_dir() and crops_dir.is_dir():
        scenes = [_read_image(scenes_dir / "images" / r.file)
                  for r in load_labels(scenes_dir)[:n_scenes]]
        crops = [_read_image(crops_dir / "images" / r.file)
                 for r in load_labels(crops_dir) if r.box is None][:n_crops]
        return scenes, crops, "shared/data (openalpr-endtoend scenes, vn-real crops)"
    from tools.synth.plates import random_plate_text, render_crop, render_scene

    rng = np.random.default_rng(7)
    scenes = [render_scene(random_plate_text("vn", 1 + i % 2, rng), "vn", 1 + i % 2, i)
              for i in range(n_scenes)]
    crops = [render_crop(random_plate_text("vn", 1 + i % 2, rng), "vn", 1 + i % 2, i)
             for i in range(n_crops)]
    return scenes, crops, "synthetic"


def _median_ms(fn: Callable[[np.ndarray], object], images: Sequence[np.ndarray], what: str) -> float:
    times = []
    for image in tqdm(images, desc=what, unit="img"):
        start = time.perf_counter()
        fn(image)
        times.append((time.perf_counter() - start) * 1000)
    return round(statistics.median(times), 1)


def _own_recognizer_ms(crops: Sequence[np.ndarray], chars: str, threads: int,
                       repeats: int = 5) -> float | None:
    """Milliseconds per crop of our plate model alone, all crops in one batch (best of
    `repeats`); None when the model is not there."""
    from edge.recognition.plate_rec import PlateRecognizer
    from models.registry import ModelNotFoundError, get_spec

    try:
        own = PlateRecognizer.from_files(get_spec("plate_rec").path, chars, threads)
    except (ModelNotFoundError, FileNotFoundError):
        return None
    own.probabilities(crops[:2])
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        own.probabilities(crops)
        best = min(best, (time.perf_counter() - start) * 1000 / len(crops))
    return round(best, 2)


class _TimedSession:
    """An ONNX Runtime session that adds the seconds of each `run` to `seconds[name]`."""

    def __init__(self, session: Any, name: str, seconds: dict[str, float]) -> None:
        self.session, self.name, self.seconds = session, name, seconds

    def __getattr__(self, attr: str) -> Any:
        return getattr(self.session, attr)

    def run(self, *args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        try:
            return self.session.run(*args, **kwargs)
        finally:
            self.seconds[self.name] = (self.seconds.get(self.name, 0.0)
                                       + time.perf_counter() - start)


def _stage_shares(read: Callable[[np.ndarray], object], images: Sequence[np.ndarray],
                  seconds: dict[str, float], what: str) -> dict[str, float]:
    """Share of the time reading `images` one by one spent in each timed session, and the rest
    ("other": grammar decode, line preparation, colour, warps, DB post-processing)."""
    seconds.clear()
    start = time.perf_counter()
    for image in tqdm(images, desc=f"{what} stages", unit="img"):
        read(image)
    total = time.perf_counter() - start
    shares = {name: round(spent / total, 3) for name, spent in sorted(seconds.items())}
    shares["other"] = round(1 - sum(seconds.values()) / total, 3)
    shares["ms_per_image"] = round(total * 1000 / len(images), 1)
    return shares


def bench_plates(n_scenes: int = 12, n_crops: int = 48, threads: int = 0,
                 stages: bool = False) -> dict:
    """Median ms per scene and per crop, beside rapidocr's own `RapidOCR()` on the same scenes;
    with `stages`, also where a scene's and a crop's time goes (`_stage_shares`: the text
    detector, the PP-OCR recognizer, the PP-OCRv5 province recognizer, the rest)."""
    from rapidocr import RapidOCR

    from edge.recognition.ocr import TextDetector, TextRecognizer
    from models.registry import create_session, get_spec

    scenes, crops, source = _bench_images(n_scenes, n_crops)
    seconds: dict[str, float] = {}

    def session(model: str, name: str) -> Any:
        made = create_session(get_spec(model).path, threads)
        return _TimedSession(made, name, seconds) if stages else made

    reader = PlateReader(
        TextDetector(session("ppocr_det", "det")),
        TextRecognizer(session("ppocr_rec", "rec")),
        province_recognizer=TextRecognizer(session("ppocr_rec_v5", "rec_v5")),  # --threads too
    )
    reader.read_frames(scenes[:1])  # warm-up
    reader.read_crops(crops[:1])
    ms_scene = _median_ms(lambda im: reader.read_frames([im]), scenes, "scenes")
    ms_crop = _median_ms(lambda im: reader.read_crops([im]), crops, "crops")
    start = time.perf_counter()
    reader.read_crops(crops)
    ms_crop_batched = (time.perf_counter() - start) * 1000 / len(crops)
    own_ms = _own_recognizer_ms(crops, reader.chars, threads)
    engine = RapidOCR()
    engine(scenes[0])
    ms_rapid = _median_ms(engine, scenes, "rapidocr scenes")
    shares = ({"scene_stages": _stage_shares(lambda im: reader.read_frames([im]), scenes, seconds,
                                             "scenes"),
               "crop_stages": _stage_shares(lambda im: reader.read_crops([im]), crops, seconds,
                                            "crops")} if stages else {})
    return {
        "images": source,
        "scenes": len(scenes),
        "crops": len(crops),
        "median_ms_scene": ms_scene,
        "median_ms_crop": ms_crop,
        "ms_per_crop_batched": round(ms_crop_batched, 1),
        "own_recognizer_ms_per_crop": own_ms,
        "rapidocr_median_ms_scene": ms_rapid,
        "speedup_vs_rapidocr": round(ms_rapid / ms_scene, 2) if ms_scene else 0.0,
        **shares,
    }
