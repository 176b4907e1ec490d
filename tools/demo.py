"""`smartgate demo`: broker, central and a simulated lane in one process tree, on this machine.

Everything is embedded: an amqtt broker on 127.0.0.1, central with a SQLite file under the data
directory, and one lane with simulated hardware (`hardware.lane_sim`: weighbridge indicator,
Modbus barrier, lane display) and a simulated camera showing synthetic truck scenes this project
renders (Vietnamese and Chinese trucks). A director drives each truck onto the weighbridge while
the camera shows it; the weighbridge is the lane's trigger, so every passage carries a weight.
Central gets declarations for the four trucks (51D67890's declared weight is off, so it goes to
the review queue) and a `demo` account whose password is printed. Runs until Ctrl-C (or
`--seconds`).
"""

from __future__ import annotations

import argparse
import logging
import signal
import threading
import time
from collections.abc import Collection, Sequence
from datetime import timedelta
from pathlib import Path

import cv2
import numpy as np
from sqlalchemy.orm import sessionmaker

from central import store
from central.db import make_engine, session_factory, upgrade_database, utcnow
from central.domain.declarations import Declaration, Direction
from smartgate.cli import CommandGroups

log = logging.getLogger(__name__)

DEMO_TRUCKS = (
    ("29C12345", "vn", 1, 32_500),
    ("桂A12345", "cn", 1, 41_200),
    ("51D67890", "vn", 2, 18_700),
    ("桂FA1234", "cn", 2, 27_900),
)
FLAGGED_TRUCKS = ("51D67890",)  # declared at 5 t: the weighbridge sends it to inspection
FRAME_SIZE = (1280, 720)
CAMERA_KEY = "L1/front"


def empty_lane(size: tuple[int, int], seed: int) -> np.ndarray:
    """A frame of the lane with no vehicle: asphalt gradient with lane markings and noise."""
    w, h = size
    rng = np.random.default_rng(seed)
    ramp = np.linspace(70, 120, h, dtype=np.float32)[:, None, None]
    frame = np.repeat(np.repeat(ramp, w, axis=1), 3, axis=2)
    frame += rng.normal(0, 6, frame.shape).astype(np.float32)
    for x in (w // 4, 3 * w // 4):
        cv2.line(frame, (x, h), (w // 2 + (x - w // 2) // 4, h // 3), (220, 220, 220), 6)
    return np.clip(frame, 0, 255).astype(np.uint8)


def truck_frames(text: str, region: str, rows: int, seed: int, n: int = 3) -> list[np.ndarray]:
    """`n` synthetic frames of one truck (different seeds: position, lighting, noise)."""
    from tools.synth.plates import render_scene

    return [render_scene(text, region=region, rows=rows, seed=seed + k, size=FRAME_SIZE)
            for k in range(n)]


def demo_edge_config(
    data_dir: Path, media: Path | None, mqtt_port: int, fps: float, lane_sims=None,  # type: ignore[no-untyped-def]
    evidence: dict | None = None,
) -> dict:
    """The demo lane's edge configuration (a plain dict, validated by EdgeConfig).

    With `lane_sims` (hardware.lane_sim.LaneSimulators) the lane uses the simulated camera, the
    weighbridge trigger and the simulated barrier and display; otherwise it plays the image
    folder `media` with the plate trigger. `evidence` is the node's evidence upload section
    (central's URL and an edge-ingest token).
    """
    lane: dict = {
        "lane": "L1",
        "direction": "entry",
        "cameras": [
            {"name": "front", "role": "front_plate", "source": str(media) if media else "sim",
             "fps": fps, "loop": media is not None},
        ],
        "trigger": {"type": "plate", "gap_frames": 3},
    }
    if lane_sims is not None:
        lane["trigger"] = {"type": "weighbridge"}
        lane["weighbridge"] = lane_sims.weighbridge_config(stable_seconds=1.0).model_dump()
        lane["barrier"] = lane_sims.barrier_config().model_dump()
        lane["display"] = lane_sims.display_config().model_dump()
    return {
        "site": "huunghi",
        "node_id": "edge-demo",
        "mqtt": {"host": "127.0.0.1", "port": mqtt_port},
        "data_dir": str(data_dir / "edge"),
        "status_interval_s": 5.0,
        "lanes": [lane],
        **({"evidence": evidence} if evidence else {}),
    }


def direct_trucks(camera, sims, stop: threading.Event) -> None:  # type: ignore[no-untyped-def]
    """Drive the demo trucks one after another: camera shows the truck while it is weighed."""
    scenes = [truck_frames(text, region, rows, seed=100 * i)
              for i, (text, region, rows, _) in enumerate(DEMO_TRUCKS)]
    i = 0
    while not stop.is_set():
        text, _, _, gross = DEMO_TRUCKS[i % len(DEMO_TRUCKS)]
        log.info("demo: truck %s (%d kg) drives onto the weighbridge", text, gross)
        camera.show(scenes[i % len(scenes)])
        sims.queue_truck(gross)
        while not stop.is_set() and not sims.wait_idle(0.5):
            pass
        camera.show(None)
        stop.wait(1.0)
        i += 1


def demo_edge_token(app, username: str) -> str:  # type: ignore[no-untyped-def]
    """An edge-ingest API token of `username` for the demo edge's evidence uploads."""
    import secrets

    from central import auth_store

    token = secrets.token_urlsafe(32)
    with app.state.sessions() as session, session.begin():
        user = auth_store.get_user(session, username)
        auth_store.add_api_token(session, user, "demo edge", app.state.auth.digest("token", token),
                                 auth_store.TokenScope.EDGE_INGEST)
    return token


class _HeldLogs(logging.Filter):
    """While the demo starts: INFO logs dropped, warnings held back and shown after the URL and
    the account (the first screen), so a new user sees where to go first and loses nothing."""

    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []
        self._handlers: list[logging.Handler] = []

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno >= logging.WARNING and record not in self.records:
            self.records.append(record)
        return False

    def start(self) -> _HeldLogs:
        """Hold what the root logger's handlers would write until `release`; call again after
        something replaced them (uvicorn.Config sets logging up anew)."""
        for handler in logging.root.handlers:
            if handler not in self._handlers:
                handler.addFilter(self)
                self._handlers.append(handler)
        return self

    def release(self) -> None:
        """Let the handlers write again, then write what was held back."""
        for handler in self._handlers:
            handler.removeFilter(self)
        held, self.records = self.records, []
        for record in held:
            for handler in self._handlers:
                if record.levelno >= handler.level:
                    handler.handle(record)
        self._handlers = []


def run_demo(args: argparse.Namespace) -> int:
    """Start everything, print the URL, run until Ctrl-C, stop everything."""
    import uvicorn

    from central.api import create_app, uvicorn_config
    from central.auth_store import ensure_demo_user
    from central.config import CentralSettings
    from edge.app import EdgeNode
    from edge.config import EdgeConfig
    from edge.runtime.sources import SimulatedCamera
    from hardware.lane_sim import LaneSimulators
    from tools.broker import EmbeddedBroker, free_port

    data_dir = Path(args.data_dir).resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    held = _HeldLogs().start()  # the first screen is the URL and the account

    broker = EmbeddedBroker("127.0.0.1", args.mqtt_port or free_port()).start()
    settings = CentralSettings(
        database_url=f"sqlite:///{data_dir / 'central.db'}",
        mqtt_host=broker.host, mqtt_port=broker.port,
        http_host="127.0.0.1", http_port=args.port, data_dir=data_dir,
        demo_mode=True, cookie_secure=False,
    )
    app = create_app(settings)
    server = uvicorn.Server(uvicorn_config(app, settings, log_level="warning"))
    held.start()  # uvicorn.Config set up logging anew
    web = threading.Thread(target=server.run, name="central-http", daemon=True)
    web.start()
    while not server.started and web.is_alive():
        time.sleep(0.1)
    if not web.is_alive():
        held.release()
        broker.stop()
        print(f"error: central could not listen on port {settings.http_port}")
        return 1
    demo_user, demo_password = ensure_demo_user(app.state.sessions)
    seeded = seed_demo_declarations(
        app.state.sessions, [t[0] for t in DEMO_TRUCKS], flagged=FLAGGED_TRUCKS
    )
    log.info("demo declarations: %d created, %d unchanged", seeded.created, seeded.unchanged)

    url = f"http://{settings.http_host}:{settings.http_port}/"
    evidence = {"central_url": url, "token": demo_edge_token(app, demo_user)}
    sims = LaneSimulators.start(protocol="toledo")
    camera = SimulatedCamera(empty_lane(FRAME_SIZE, 0))
    node = EdgeNode(
        EdgeConfig.model_validate(demo_edge_config(data_dir, None, broker.port, args.fps, sims,
                                                   evidence)),
        simulated={CAMERA_KEY: camera},
    )
    node.start()
    edge = threading.Thread(target=node.run, name="edge", daemon=True)
    edge.start()
    stop = threading.Event()
    director = threading.Thread(target=direct_trucks, args=(camera, sims, stop),
                                name="demo-director", daemon=True)
    director.start()

    print(f"SmartGate demo running: open {url}  (MQTT broker 127.0.0.1:{broker.port}; "
          f"data in {data_dir}; Ctrl-C to stop)", flush=True)
    print(f"sign in as {demo_user} / {demo_password} (demo account, admin role)", flush=True)
    held.release()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        while not stop.is_set() and (args.seconds is None or args.seconds > 0):
            stop.wait(1.0)
            if args.seconds is not None:
                args.seconds -= 1
    except KeyboardInterrupt:
        pass
    print("stopping demo...", flush=True)
    stop.set()
    node.stop_event.set()
    edge.join(timeout=10)
    director.join(timeout=5)
    node.stop()
    sims.stop()
    server.should_exit = True
    web.join(timeout=10)
    broker.stop()
    print("demo stopped", flush=True)
    return 0


def seed_demo_declarations(
    target: sessionmaker | str,
    plates: Sequence[str],
    *,
    flagged: Collection[str] = (),
    gate: str = "huunghi",
    per_plate: int = 50,
) -> store.ImportCounts:
    """Declarations for the demo's trucks: `per_plate` valid ones per plate, so a looping demo
    keeps clearing; the plates in `flagged` get a declared weight of 5 t, which sends a truck
    weighed on the bridge to inspection (`weight_out_of_tolerance`).

    `target` is a session factory or a database URL (migrated first). Windows run from an hour
    ago to a week ahead; import direction (entry lanes), no containers. Safe to call again.
    """
    if isinstance(target, str):
        engine = make_engine(target)
        upgrade_database(engine)
        target = session_factory(engine)
    start = utcnow() - timedelta(hours=1)
    decls = [
        Declaration(
            number=f"DEMO-{i}-{k:03d}",
            direction=Direction.IMPORT,
            tractor_plate=plate,
            gross_weight_kg=5_000 if plate in flagged else None,
            window_start=start,
            window_end=start + timedelta(days=7),
            gate=gate,
            company="Demo Logistics",
        )
        for i, plate in enumerate(plates)
        for k in range(per_plate)
    ]
    with target() as session, session.begin():
        return store.import_declarations(session, decls)


def register(commands: CommandGroups) -> None:
    """Attach `smartgate demo`."""
    demo = commands.top.add_parser("demo", help="run broker, central and a simulated lane")
    demo.add_argument("--data-dir", default="data/demo", help="where the demo keeps its files")
    demo.add_argument("--port", type=int, default=8000, help="HTTP port of central")
    demo.add_argument("--mqtt-port", type=int, default=None, help="MQTT port (default: free)")
    demo.add_argument("--fps", type=float, default=2.0, help="camera frames per second")
    demo.add_argument("--seconds", type=float, default=None, help="stop after this many seconds")
    demo.set_defaults(func=run_demo)
