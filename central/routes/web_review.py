"""Officer pages: the live review queue, one passage with its evidence, and the officer's actions.

Actions go through the decision service (`app.state.decisions`): the decision, its audit entry and
the lane command are stored in one transaction, and the command is published only after commit.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Form, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from central import store
from central.db import DecisionRow, DeclarationRow, Passage
from central.decisions import InvalidCorrection
from central.deps import Db, Decisions, Officer, Out, Reader
from central.domain.rules import Reason
from central.evidence import records
from central.routes.common import announce_decision, found, passage_or_404
from central.routes.web_render import render
from smartgate.contract import Box, ContainerRead, PassageEvent, PlateRead

log = logging.getLogger(__name__)

router = APIRouter(tags=["review"], include_in_schema=False)

QUEUE_SHOWN = 200

# Which side-by-side row each mismatch reason belongs to.
REASON_FIELDS: dict[str, str] = {
    Reason.PLATE_NOT_DECLARED: "tractor_plate",
    Reason.PLATES_DISAGREE: "tractor_plate",
    Reason.LOW_READ_CONFIDENCE: "tractor_plate",
    Reason.TRAILER_MISMATCH: "trailer_plate",
    Reason.CONTAINER_MISSING: "containers",
    Reason.CONTAINER_UNDECLARED: "containers",
    Reason.CONTAINER_CHECK_DIGIT_INVALID: "containers",
    Reason.WEIGHT_OUT_OF_TOLERANCE: "gross_kg",
    Reason.WEIGHT_MISSING: "gross_kg",
    Reason.OUTSIDE_TIME_WINDOW: "window",
    Reason.DIRECTION_MISMATCH: "declaration",
    Reason.WRONG_GATE: "declaration",
    Reason.DECLARATION_ALREADY_USED: "declaration",
    Reason.DECLARATION_CANCELLED: "declaration",
}


@dataclass(frozen=True)
class Comparison:
    """One row of the read-versus-declared table; `reasons` are the findings about it."""

    field: str
    read: str
    declared: str
    reasons: tuple[dict, ...]

    @property
    def mismatch(self) -> bool:
        """Whether a flagging finding concerns this row."""
        return any(r.get("severity") == "flag" for r in self.reasons)


def _fmt_kg(kg: float | None) -> str:
    return "" if kg is None else f"{kg:,.0f}"


def _fmt_time(at: datetime | None) -> str:
    return "" if at is None else store.utc(at).strftime("%Y-%m-%d %H:%M UTC")


def compare(
    event: PassageEvent, reasons: list[dict], decl: DeclarationRow | None
) -> list[Comparison]:
    """Reads beside the matched declaration, each row with the reasons that concern it."""
    by_field: dict[str, list[dict]] = {}
    for r in reasons:
        by_field.setdefault(REASON_FIELDS.get(r["reason"], "declaration"), []).append(r)
    plate = event.best_plate
    rows = [
        ("tractor_plate", plate.text if plate else "", decl.tractor_plate if decl else ""),
        (
            "trailer_plate",
            event.trailer_plate.text if event.trailer_plate else "",
            (decl.trailer_plate or "") if decl else "",
        ),
        (
            "containers",
            " ".join(c.code for c in event.containers),
            decl.containers if decl else "",
        ),
        (
            "gross_kg",
            _fmt_kg(event.weight.gross_kg if event.weight else None),
            _fmt_kg(decl.gross_weight_kg) if decl else "",
        ),
        (
            "window",
            _fmt_time(event.started_at),
            f"{_fmt_time(decl.window_start)} – {_fmt_time(decl.window_end)}" if decl else "",
        ),
        (
            "declaration",
            event.direction,
            f"{decl.number} {decl.direction} {decl.gate}" if decl else "",
        ),
    ]
    return [Comparison(f, read, declared, tuple(by_field.get(f, []))) for f, read, declared in rows]


def _box(box: Box | None, kind: str) -> dict | None:
    return None if box is None else {**box.model_dump(), "kind": kind}


def frames(event: PassageEvent) -> list[dict[str, Any]]:
    """The best frame per camera (the first one the edge listed) with plate/container boxes."""
    plates = (event.plate_front, event.plate_rear, event.trailer_plate)
    reads: list[tuple[PlateRead | ContainerRead, str]] = [(p, "plate") for p in plates if p]
    reads += [(c, "container") for c in event.containers]
    out: dict[str, dict[str, Any]] = {}
    for ref in event.images:
        if ref.kind != "frame" or ref.camera in out:
            continue
        boxes = [_box(r.box, kind) for r, kind in reads if r.image_id == ref.image_id]
        if not any(boxes):
            boxes = [_box(b, "plate") for b in ref.boxes]
        out[ref.camera] = {
            "image_id": ref.image_id,
            "camera": ref.camera,
            "boxes": [b for b in boxes if b],
        }
    return list(out.values())


def crops(event: PassageEvent) -> list[dict[str, Any]]:
    """Plate reads that can be shown enlarged: their image and box."""
    known = {ref.image_id for ref in event.images}
    return [
        {"image_id": p.image_id, "box": p.box.model_dump(), "text": p.display_text or p.text}
        for p in (event.plate_front, event.plate_rear, event.trailer_plate)
        if p is not None and p.box is not None and p.image_id in known
    ]


def review_queue(db: Db, lane: str | None, reason: str | None) -> list[tuple[Passage, DecisionRow]]:
    """Passages waiting for an officer, newest first, optionally only those with `reason`."""
    return list(store.list_review_queue(
        db, QUEUE_SHOWN, lane=lane or None, reason=reason or None, newest_first=True
    ))  # fmt: skip


def _queue_context(db: Db, lane: str, reason: str) -> dict[str, Any]:
    return {
        "entries": review_queue(db, lane, reason),
        "lanes": store.review_lanes(db),
        "reasons": [r.value for r in Reason],
        "lane": lane,
        "reason": reason,
    }


@router.get("/review", response_class=HTMLResponse)
def review_page(
    request: Request, db: Db, user: Officer, lane: str = "", reason: str = ""
) -> Response:
    """The review queue with lane and reason filters; rows refresh live."""
    return render(
        request, "review.html", {"nav": "review", **_queue_context(db, lane, reason)}, user
    )


@router.get("/review/rows", response_class=HTMLResponse)
def review_rows(
    request: Request, db: Db, user: Officer, lane: str = "", reason: str = ""
) -> Response:
    """The queue's table rows only, for the live refresh."""
    return render(request, "review_rows.html", {"entries": review_queue(db, lane, reason)}, user)


def _neighbours(db: Db, event_id: str) -> tuple[str | None, str | None]:
    ids = [p.event_id for p, _ in review_queue(db, None, None)]
    if event_id not in ids:
        return (ids[0] if ids else None), None
    i = ids.index(event_id)
    return (ids[i + 1] if i + 1 < len(ids) else None), (ids[i - 1] if i > 0 else None)


@router.get("/passages/{event_id}", response_class=HTMLResponse)
def passage_page(request: Request, db: Db, user: Officer, event_id: str) -> Response:
    """One passage: frames with boxes, plate close-ups, reads beside the declaration, actions."""
    detail = found(store.passage_detail(db, event_id), f"no passage {event_id}")
    event = PassageEvent.model_validate(detail.passage.payload)
    reasons = detail.decision.reasons if detail.decision else []
    next_id, prev_id = _neighbours(db, event_id)
    return render(
        request,
        "passage.html",
        {
            "nav": "review",
            "d": detail,
            "event": event,
            "frames": frames(event),
            "crops": crops(event),
            "evidence": records.evidence_status(db, [detail.passage])[event_id],
            "comparison": compare(event, reasons, detail.declaration),
            "reasons": reasons,
            "next_id": next_id,
            "prev_id": prev_id,
            "saved": request.query_params.get("saved") == "1",
        },
        user,
    )


ACTIONS = {
    "approve": store.Verdict.APPROVE,
    "inspection": store.Verdict.INSPECT,
    "hold": store.Verdict.HOLD,
}


@router.post("/passages/{event_id}/decision")
def decide_passage(
    db: Db,
    user: Officer,
    service: Decisions,
    out: Out,
    event_id: str,
    action: Annotated[str, Form(pattern="^(approve|inspection|hold)$")],
    note: Annotated[str, Form(max_length=2000)] = "",
) -> Response:
    """Approve, send to inspection or hold, with a note; the lane is told after the commit."""
    with passage_or_404(event_id):
        row, command = service.officer_decision(
            db, event_id, ACTIONS[action], user.username, note.strip()
        )
    db.commit()
    log.info("%s: %s on passage %s", user.username, action, event_id)
    announce_decision(out, command, row)
    return RedirectResponse(f"/passages/{event_id}?saved=1", status_code=303)


@router.post("/passages/{event_id}/correction")
def correct_passage(
    db: Db,
    user: Officer,
    service: Decisions,
    out: Out,
    event_id: str,
    plate: Annotated[str, Form(max_length=16)] = "",
    containers: Annotated[str, Form(max_length=60)] = "",
    note: Annotated[str, Form(max_length=2000)] = "",
) -> Response:
    """Correct a misread plate or container, re-match with the rules and tell the lane."""
    with passage_or_404(event_id):
        try:
            row, command = service.correct_reads(
                db, event_id, plate=plate, containers=containers.split(), actor=user.username,
                note=note.strip(),
            )  # fmt: skip
        except InvalidCorrection as exc:
            raise HTTPException(422, str(exc)) from None
    db.commit()
    announce_decision(out, command, row)
    return RedirectResponse(f"/passages/{event_id}?saved=1", status_code=303)


@router.get("/passages", response_class=HTMLResponse)
def passages_page(request: Request, db: Db, user: Reader, lane: str = "") -> Response:
    """Every recent passage with its current outcome."""
    rows = store.list_passages(db, store.PassageFilter(lane=lane or None, limit=200))
    decisions = store.current_decisions(db, [p.event_id for p in rows])
    return render(
        request, "passages.html",
        {"nav": "passages", "passages": rows, "decisions": decisions,
         "nodes": store.list_nodes(db)},
        user,
    )  # fmt: skip
