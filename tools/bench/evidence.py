"""`smartgate bench evidence`: upload latency and throughput of evidence JPEGs, edge to central.

Central runs under uvicorn (SQLite, the filesystem evidence store: every image fsynced before
the reply) in a thread of this process; the edge side is the real `EvidenceQueue` and
`EvidenceUploader`, one upload at a time over a kept-alive connection, as on a lane. The images
are rendered truck scenes (`tools.synth.plates`) encoded like the edge's ring buffer does.
"""

from __future__ import annotations

import secrets
import statistics
import tempfile
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import cv2
from pydantic import SecretStr

from smartgate import contract
from smartgate.contract import ImageRef, PassageEvent, PlateRead


def typical_jpeg(seed: int, size: tuple[int, int] = (1920, 1080), quality: int = 85) -> bytes:
    """A gate-camera frame (a truck with its plate) as the edge keeps it: JPEG at `quality`."""
    from tools.synth.plates import render_scene

    text = f"{10 + seed % 89}C{seed % 100000:05d}"
    frame = render_scene(text, "vn", 1, seed, size)
    ok, data = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise ValueError("JPEG encoding failed")
    return data.tobytes()


def passage_with_images(event_id: str, node_id: str, image_ids: list[str],
                        site: str = "huunghi", lane: str = "L1") -> PassageEvent:
    """A passage naming `image_ids` as its frames."""
    at = datetime.now(UTC)
    return PassageEvent(
        event_id=event_id, site=site, node_id=node_id, lane=lane, direction="entry",
        started_at=at - timedelta(seconds=8), ended_at=at,
        plate_front=PlateRead(text="29C12345", region="vn", confidence=0.9, camera="front",
                              image_id=image_ids[0] if image_ids else None),
        images=[ImageRef(image_id=i, camera=f"cam{k}") for k, i in enumerate(image_ids)],
    )


@dataclass(frozen=True)
class EvidenceBench:
    """Numbers printed by `smartgate bench evidence`."""

    images: int
    image_kb_mean: float
    latency_ms_p50: float
    latency_ms_p95: float
    latency_ms_max: float
    images_per_s: float
    mb_per_s: float
    drain_s: float


def run_evidence_bench(images: int = 200, size: tuple[int, int] = (1920, 1080),
                       per_passage: int = 2) -> EvidenceBench:
    """Upload `images` typical JPEGs (`per_passage` per passage) and time them."""
    import uvicorn

    from central import auth_store, store
    from central.api import create_app
    from central.auth import auth_config
    from central.config import CentralSettings
    from central.db import make_engine, session_factory, upgrade_database
    from edge.runtime.evidence import EvidenceQueue, EvidenceUploader
    from tools.broker import free_port

    jpegs = [typical_jpeg(k, size) for k in range(min(images, 20))]
    with tempfile.TemporaryDirectory(prefix="smartgate-evidence-bench-") as tmp:
        folder = Path(tmp)
        settings = CentralSettings(database_url=f"sqlite:///{folder / 'central.db'}",
                                   data_dir=folder, secret_key=SecretStr(secrets.token_urlsafe(32)),
                                   retention_purge_interval_s=0)
        engine = make_engine(settings.database_url)
        upgrade_database(engine)
        token = secrets.token_urlsafe(24)
        passages = [contract.new_id() for _ in range((images + per_passage - 1) // per_passage)]
        with session_factory(engine)() as session, session.begin():
            user = auth_store.add_user(session, "edge-1", secrets.token_urlsafe(16), "operator")
            auth_store.add_api_token(session, user, "bench",
                                     auth_config(settings).digest("token", token), "edge-ingest")
            for k, event_id in enumerate(passages):
                ids = [f"img{k}_{j}" for j in range(per_passage)]
                store.add_passage(session, passage_with_images(event_id, "edge-1", ids))
        engine.dispose()
        port = free_port()
        server = uvicorn.Server(uvicorn.Config(create_app(settings, start_ingest=False),
                                               host="127.0.0.1", port=port, log_level="warning"))
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        while not server.started:
            time.sleep(0.05)
        queue = EvidenceQueue(folder / "edge" / "evidence.db")
        n = 0
        for k, event_id in enumerate(passages):
            for j in range(per_passage):
                if n < images:
                    queue.put(event_id, f"img{k}_{j}", jpegs[n % len(jpegs)] + n.to_bytes(4,
                                                                                      "big"))
                    n += 1
        uploader = EvidenceUploader(queue, f"http://127.0.0.1:{port}", token)
        latencies: list[float] = []
        sizes: list[int] = []
        t0 = time.perf_counter()
        for item in queue.due(time.time(), limit=images):
            start = time.perf_counter()
            if not uploader.upload(item):
                raise RuntimeError(f"upload of {item.image_id} failed")
            latencies.append(time.perf_counter() - start)
            sizes.append(len(item.data))
        drain = time.perf_counter() - t0
        uploader.stop()
        queue.close()
        server.should_exit = True
        thread.join(10)
    latencies.sort()
    return EvidenceBench(
        images=len(latencies), image_kb_mean=round(statistics.mean(sizes) / 1024, 1),
        latency_ms_p50=round(1000 * latencies[len(latencies) // 2], 1),
        latency_ms_p95=round(1000 * latencies[int(len(latencies) * 0.95)], 1),
        latency_ms_max=round(1000 * latencies[-1], 1),
        images_per_s=round(len(latencies) / drain, 1),
        mb_per_s=round(sum(sizes) / drain / 1e6, 2), drain_s=round(drain, 2),
    )


def main(argv: list[str] | None = None) -> int:
    """`python -m tools.bench.evidence --port P`: central's HTTP side alone (no MQTT ingest),
    settings from SMARTGATE_CENTRAL_* — the evidence endpoint of the fault bench."""
    import argparse
    import logging

    import uvicorn

    from central.api import create_app
    from central.config import CentralSettings

    parser = argparse.ArgumentParser(prog="python -m tools.bench.evidence", description=main.__doc__)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = CentralSettings(http_port=args.port, retention_purge_interval_s=0)
    uvicorn.run(create_app(settings, start_ingest=False), host="127.0.0.1", port=args.port,
                log_level="warning")
    return 0


if __name__ == "__main__":
    import sys

    sys.exit(main())
