"""A simulated edge node: synthetic passages through the real Spool and EdgePublisher.

`python -m tools.bench.edge_sim --node e1 --count 2500 --rate 25 --data-dir DIR --mqtt-port P` spools
`count` passages at `rate` per second and exits once central has receipted all of them.
After each durable `Spool.put` the event id is appended (fsync'd) to `DIR/spooled.log`; event
ids are derived from (run, node, sequence), so a node killed at any point and started again
resumes at the first sequence its log lacks and re-spools the same ids (central dedupes them).
With `--central-url` (and the edge-ingest token in SMARTGATE_EDGE_EVIDENCE__TOKEN) each passage
also names `--images` evidence JPEGs, queued in the real `EvidenceQueue` before the passage is
spooled (as the edge does) and uploaded by the real `EvidenceUploader`; their bytes, too, are
derived from (run, node, sequence), so a re-queued image is the same image. The node then exits
once central has also confirmed every image.
The fault bench (`smartgate bench faults`) reconciles these logs against central's database.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

from edge.config import MqttConfig
from edge.runtime.evidence import EvidenceQueue, EvidenceUploader
from edge.runtime.publisher import EdgePublisher
from edge.runtime.spool import Spool
from smartgate import contract
from smartgate.contract import ImageRef, PassageEvent, PlateRead

log = logging.getLogger(__name__)

_PLATE_LETTERS = "CDFHKLN"


def event_id(run_id: str, node_id: str, seq: int) -> str:
    """The deterministic event id of a node's `seq`-th passage in a run."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"smartgate-sim/{run_id}/{node_id}/{seq}"))


def image_ids(event_id: str, images: int) -> list[str]:
    """The evidence image ids of a simulated passage."""
    stem = event_id.replace("-", "")[:24]
    return [f"{stem}-{k}" for k in range(images)]


def evidence_pool(node_id: str, size: int = 4) -> list[bytes]:
    """A few rendered gate frames (640x360 JPEGs) the node's images are made from."""
    from tools.bench.evidence import typical_jpeg

    seed = uuid.uuid5(uuid.NAMESPACE_URL, node_id).int % 10_000
    return [typical_jpeg(seed + k, (640, 360)) for k in range(size)]


def evidence_bytes(pool: list[bytes], image_id: str) -> bytes:
    """The JPEG of `image_id`: a pool frame with the id after its end marker (still a valid
    JPEG, and unique per image)."""
    return pool[uuid.uuid5(uuid.NAMESPACE_URL, image_id).int % len(pool)] + image_id.encode()


def synthetic_passage(run_id: str, site: str, node_id: str, lane: str, seq: int,
                      images: int = 0) -> PassageEvent:
    """A plausible passage (a Vietnamese plate, a weight) without any camera or OCR; with
    `images` evidence frames named."""
    at = datetime.now(UTC)
    n = uuid.uuid5(uuid.NAMESPACE_URL, f"{node_id}/{seq}").int
    text = f"{10 + n % 89}{_PLATE_LETTERS[n % 7]}{n % 100000:05d}"
    eid = event_id(run_id, node_id, seq)
    ids = image_ids(eid, images)
    plate = PlateRead(text=text, display_text=f"{text[:3]}-{text[3:6]}.{text[6:]}", region="vn",
                      confidence=0.9, camera="front", image_id=ids[0] if ids else None)
    return PassageEvent(
        event_id=eid, site=site, node_id=node_id, lane=lane,
        direction="entry", started_at=at - timedelta(seconds=8), ended_at=at,
        plate_front=plate, weight={"gross_kg": 20_000 + n % 20_000, "captured_at": at},
        images=[ImageRef(image_id=i, camera=f"cam{k}") for k, i in enumerate(ids)],
        frames_processed=5,
    )


def _logged(path: Path) -> int:
    """Complete lines in the spooled log; a torn last line (killed mid-write) is cut off."""
    if not path.exists():
        return 0
    data = path.read_bytes()
    keep = data[: data.rfind(b"\n") + 1]
    if len(keep) != len(data):
        path.write_bytes(keep)
    return keep.count(b"\n")


def run(args: argparse.Namespace) -> int:
    """Spool and publish the node's passages; exit 0 once central receipted all of them."""
    data = Path(args.data_dir)
    data.mkdir(parents=True, exist_ok=True)
    ids_log = data / "spooled.log"
    start = _logged(ids_log)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    spool = Spool(data / "spool.db")
    publisher = EdgePublisher(
        args.site, args.node, [], MqttConfig(host=args.mqtt_host, port=args.mqtt_port,
                                             keepalive_s=args.keepalive, inflight=16,
                                             receipt_timeout_s=args.receipt_timeout), spool)
    publisher.start()
    uploader, pool = None, []
    if args.central_url:
        pool = evidence_pool(args.node)
        uploader = EvidenceUploader(
            EvidenceQueue(data / "evidence.db"), args.central_url,
            os.environ["SMARTGATE_EDGE_EVIDENCE__TOKEN"], retry_initial_s=0.2, retry_max_s=2.0,
            timeout_s=10.0).start()
    lanes = [f"L{k}" for k in range(1, args.lanes + 1)]
    t0 = time.monotonic()
    with ids_log.open("ab") as out:
        for seq in range(start, args.count):
            if stop.is_set():
                break
            delay = t0 + (seq - start) / args.rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            event = synthetic_passage(args.run_id, args.site, args.node, lanes[seq % len(lanes)],
                                      seq, args.images if uploader else 0)
            if uploader is not None:  # evidence first: no passage leaves without its images
                for image_id in event.evidence_ids():
                    uploader.queue.put(event.event_id, image_id, evidence_bytes(pool, image_id))
                uploader.notify()
            spool.put(event.event_id, contract.passage_topic(event.site, event.lane),
                      event.to_json())
            out.write(event.event_id.encode() + b"\n")
            out.flush()
            os.fsync(out.fileno())
            publisher.notify()
    def waiting() -> int:
        return spool.depth() + (uploader.queue.depth() if uploader else 0)

    while waiting() and not stop.is_set():
        time.sleep(0.1)
    depth, images_left = spool.depth(), uploader.queue.depth() if uploader else 0
    refused = uploader.queue.refused() if uploader else []
    publisher.stop(drain_timeout_s=1)
    spool.close()
    if uploader is not None:
        uploader.stop()
        uploader.queue.close()
    print(f"edge {args.node}: spooled {args.count - start} this run, {depth} left; evidence "
          f"images left {images_left}, refused {len(refused)} {refused[:3]}", flush=True)
    return 0 if depth == 0 and images_left == 0 and not refused else 1


def main(argv: list[str] | None = None) -> int:
    """Command line of the simulated node."""
    parser = argparse.ArgumentParser(prog="python -m tools.bench.edge_sim", description=__doc__)
    parser.add_argument("--run-id", required=True, help="makes event ids unique per run")
    parser.add_argument("--site", default="huunghi")
    parser.add_argument("--node", required=True, help="node id")
    parser.add_argument("--lanes", type=int, default=2)
    parser.add_argument("--count", type=int, required=True, help="passages in total")
    parser.add_argument("--rate", type=float, default=20.0, help="passages per second")
    parser.add_argument("--data-dir", required=True, help="spool.db and spooled.log")
    parser.add_argument("--mqtt-host", default="127.0.0.1")
    parser.add_argument("--mqtt-port", type=int, default=1883)
    parser.add_argument("--keepalive", type=int, default=5, help="MQTT keepalive seconds")
    parser.add_argument("--receipt-timeout", type=float,
                        default=MqttConfig.model_fields["receipt_timeout_s"].default,
                        help="seconds before a passage without central's receipt is re-sent")
    parser.add_argument("--central-url", help="upload evidence images to this central (token "
                        "in SMARTGATE_EDGE_EVIDENCE__TOKEN)")
    parser.add_argument("--images", type=int, default=2, help="evidence images per passage")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
