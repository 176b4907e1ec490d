"""`smartgate demo`: broker, central and a simulated lane in one process tree, on this machine.

Everything is embedded: an amqtt broker on 127.0.0.1, central with a SQLite file under the data
directory, and one lane whose camera plays synthetic truck scenes this project renders (a
Vietnamese and a Chinese truck), looping until Ctrl-C.
"""

from __future__ import annotations

import argparse
import logging
import signal
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from smartgate.cli import CommandGroups

log = logging.getLogger(__name__)

DEMO_TRUCKS = (
    ("29C12345", "vn", 1),
    ("桂A12345", "cn", 1),
    ("51D67890", "vn", 2),
    ("桂FA1234", "cn", 2),
)
FRAME_SIZE = (1280, 720)


@dataclass(frozen=True)
class DemoMedia:
    """Where the demo's camera frames are and which plates they show."""

    folder: Path
    plates: tuple[str, ...]


def _empty_lane(size: tuple[int, int], seed: int) -> np.ndarray:
    """A frame of the lane with no vehicle: asphalt gradient with lane markings and noise."""
    w, h = size
    rng = np.random.default_rng(seed)
    ramp = np.linspace(70, 120, h, dtype=np.float32)[:, None, None]
    frame = np.repeat(np.repeat(ramp, w, axis=1), 3, axis=2)
    frame += rng.normal(0, 6, frame.shape).astype(np.float32)
    for x in (w // 4, 3 * w // 4):
        cv2.line(frame, (x, h), (w // 2 + (x - w // 2) // 4, h // 3), (220, 220, 220), 6)
    return np.clip(frame, 0, 255).astype(np.uint8)


def render_demo_media(folder: Path, frames_per_truck: int = 4, gap_frames: int = 5) -> DemoMedia:
    """Render the demo lane's frames (trucks separated by empty-lane frames) into `folder`."""
    from edge.synth_plates import render_scene

    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("*.jpg"):
        old.unlink()
    n = 0
    for t, (text, region, rows) in enumerate(DEMO_TRUCKS):
        for k in range(frames_per_truck):
            image = render_scene(text, region=region, rows=rows, seed=100 * t + k, size=FRAME_SIZE)
            cv2.imwrite(str(folder / f"{n:04d}.jpg"), image)
            n += 1
        for k in range(gap_frames):
            cv2.imwrite(str(folder / f"{n:04d}.jpg"), _empty_lane(FRAME_SIZE, 1000 * t + k))
            n += 1
    return DemoMedia(folder, tuple(t[0] for t in DEMO_TRUCKS))


def demo_edge_config(data_dir: Path, media: Path, mqtt_port: int, fps: float) -> dict:
    """The demo lane's edge configuration (as a plain dict, validated by EdgeConfig)."""
    return {
        "site": "huunghi",
        "node_id": "edge-demo",
        "mqtt": {"host": "127.0.0.1", "port": mqtt_port},
        "data_dir": str(data_dir / "edge"),
        "lanes": [
            {
                "lane": "L1",
                "direction": "entry",
                "cameras": [
                    {"name": "front", "role": "front_plate", "source": str(media), "fps": fps,
                     "loop": True},
                ],
                "passage": {"gap_frames": 3},
            }
        ],
    }


def run_demo(args: argparse.Namespace) -> int:
    """Start everything, print the URL, run until Ctrl-C, stop everything."""
    import uvicorn

    from central.api import create_app
    from central.config import CentralSettings
    from edge.app import EdgeNode
    from edge.config import EdgeConfig
    from smartgate.broker import EmbeddedBroker, free_port

    data_dir = Path(args.data_dir).resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    log.info("rendering demo media into %s", data_dir / "media")
    media = render_demo_media(data_dir / "media")

    broker = EmbeddedBroker("127.0.0.1", args.mqtt_port or free_port()).start()
    settings = CentralSettings(
        database_url=f"sqlite:///{data_dir / 'central.db'}",
        mqtt_host=broker.host, mqtt_port=broker.port,
        http_host="127.0.0.1", http_port=args.port, data_dir=data_dir,
    )
    server = uvicorn.Server(
        uvicorn.Config(create_app(settings), host=settings.http_host, port=settings.http_port,
                       log_level="warning")
    )
    web = threading.Thread(target=server.run, name="central-http", daemon=True)
    web.start()
    while not server.started and web.is_alive():
        time.sleep(0.1)
    if not web.is_alive():
        broker.stop()
        print(f"error: central could not listen on port {settings.http_port}")
        return 1

    node = EdgeNode(EdgeConfig.model_validate(
        demo_edge_config(data_dir, media.folder, broker.port, args.fps)
    ))
    node.start()
    edge = threading.Thread(target=node.run, name="edge", daemon=True)
    edge.start()

    url = f"http://{settings.http_host}:{settings.http_port}/"
    print(f"SmartGate demo running: open {url}  (MQTT broker 127.0.0.1:{broker.port}; "
          f"data in {data_dir}; Ctrl-C to stop)", flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        while not stop.is_set() and (args.seconds is None or args.seconds > 0):
            stop.wait(1.0)
            if args.seconds is not None:
                args.seconds -= 1
    except KeyboardInterrupt:
        pass
    print("stopping demo...", flush=True)
    node.stop_event.set()
    edge.join(timeout=10)
    node.stop()
    server.should_exit = True
    web.join(timeout=10)
    broker.stop()
    print("demo stopped", flush=True)
    return 0


def register(commands: CommandGroups) -> None:
    """Attach `smartgate demo`."""
    demo = commands.top.add_parser("demo", help="run broker, central and a simulated lane")
    demo.add_argument("--data-dir", default="data/demo", help="where the demo keeps its files")
    demo.add_argument("--port", type=int, default=8000, help="HTTP port of central")
    demo.add_argument("--mqtt-port", type=int, default=None, help="MQTT port (default: free)")
    demo.add_argument("--fps", type=float, default=2.0, help="camera frames per second")
    demo.add_argument("--seconds", type=float, default=None, help="stop after this many seconds")
    demo.set_defaults(func=run_demo)
