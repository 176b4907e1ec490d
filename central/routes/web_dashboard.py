"""Operator dashboard: one tile per lane (state, node health, queue, throughput) and charts."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from central import store
from central.db import EdgeNode, LaneStatusRow, Passage, utcnow
from central.deps import Db, Reader
from central.routes.web_render import render

router = APIRouter(tags=["dashboard"])

CHART_HOURS = 24


@dataclass(frozen=True)
class LaneTile:
    """What one lane tile shows."""

    site: str
    lane: str
    state: str
    queue_length: int
    state_at: datetime | None
    node_id: str | None
    node_online: bool | None
    cameras: dict[str, bool]
    scale_connected: bool | None
    last_passage: Passage | None
    last_hour: int


def lane_tiles(
    statuses: list[LaneStatusRow],
    nodes: list[EdgeNode],
    last: dict[tuple[str, str], Passage],
    last_hour: dict[tuple[str, str], int],
) -> list[LaneTile]:
    """Tiles for every lane that reported a state or had a passage, sorted by site and lane."""
    status = {(s.site, s.lane): s for s in statuses}
    by_node = {(n.site, n.node_id): n for n in nodes}
    node_of_lane = {
        (n.site, lane): n for n in nodes for lane in ((n.status or {}).get("lanes") or [])
    }
    tiles = []
    for key in sorted(set(status) | set(last) | set(node_of_lane)):
        s = status.get(key)
        passage = last.get(key)
        node_id = s.node_id if s else (passage.node_id if passage else None)
        node = by_node.get((key[0], node_id)) if node_id else node_of_lane.get(key)
        health = (node.status or {}) if node else {}
        tiles.append(
            LaneTile(
                site=key[0], lane=key[1],
                state=s.state if s else "unknown",
                queue_length=s.queue_length if s else 0,
                state_at=store.aware(s.updated_at) if s else None,
                node_id=node.node_id if node else node_id,
                node_online=node.online if node else None,
                cameras=dict(health.get("cameras_ok") or {}),
                scale_connected=health.get("scale_connected"),
                last_passage=passage,
                last_hour=last_hour.get(key, 0),
            )
        )  # fmt: skip
    return tiles


def _tiles(db: Db) -> list[LaneTile]:
    now = utcnow()
    recent = store.list_passages(db, store.PassageFilter(since=now - timedelta(hours=24),
                                                         limit=1000))  # fmt: skip
    last: dict[tuple[str, str], Passage] = {}
    for p in recent:  # newest first
        last.setdefault((p.site, p.lane), p)
    hour = {
        (s.site, s.lane): s.passages for s in store.lane_statistics(db, now - timedelta(hours=1))
    }
    return lane_tiles(list(store.list_lane_status(db)), list(store.list_nodes(db)), last, hour)


@router.get("/dashboard", response_class=HTMLResponse, include_in_schema=False)
def dashboard(request: Request, db: Db, user: Reader) -> Response:
    """Lane tiles and charts; tiles refresh live, charts every minute and after passages."""
    return render(request, "dashboard.html", {"nav": "dashboard", "tiles": _tiles(db)}, user)


@router.get("/dashboard/tiles", response_class=HTMLResponse, include_in_schema=False)
def dashboard_tiles(request: Request, db: Db, user: Reader) -> Response:
    """The tiles only, for the live refresh."""
    return render(request, "dashboard_tiles.html", {"tiles": _tiles(db)}, user)


def chart_data(stats: list[store.LaneStats], now: datetime, hours: int) -> dict[str, Any]:
    """Chart series: passages per hour per lane over the last `hours`, and per-lane rates."""
    end = now.replace(minute=0, second=0, microsecond=0)
    buckets = [end - timedelta(hours=h) for h in range(hours - 1, -1, -1)]
    keys = [b.strftime("%Y-%m-%dT%H:00Z") for b in buckets]
    lanes = [f"{s.site}/{s.lane}" for s in stats]
    return {
        "hours": [b.strftime("%H:00") for b in buckets],
        "lanes": lanes,
        "throughput": {
            name: [s.per_hour.get(k, 0) for k in keys] for name, s in zip(lanes, stats, strict=True)
        },
        "read_rate": [round(100 * s.read_rate, 1) for s in stats],
        "flagged_rate": [round(100 * s.flagged_rate, 1) for s in stats],
        "decision_s": [s.mean_decision_s for s in stats],
    }


@router.get("/api/dashboard/stats", tags=["lanes"])
def dashboard_stats(db: Db, _user: Reader) -> dict[str, Any]:
    """The dashboard's chart data for the last 24 hours (hour buckets in UTC)."""
    now = utcnow()
    stats = store.lane_statistics(db, now - timedelta(hours=CHART_HOURS))
    return chart_data(stats, now, CHART_HOURS)
