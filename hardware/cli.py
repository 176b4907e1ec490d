"""`smartgate sim ...` hardware simulators, `smartgate weighbridge read|decode`, a parse bench."""

from __future__ import annotations

import argparse
import itertools
import threading
import time
from pathlib import Path

from hardware.barrier import BarrierSimulator, PtyLink
from hardware.config import WeighbridgeConfig
from hardware.display import DisplaySimulator
from hardware.lane_sim import LaneSimulators
from hardware.weighbridge.protocols import indicator_format, read_stream
from hardware.weighbridge.scale import Weighbridge
from hardware.weighbridge.simulator import (
    PROTOCOLS,
    WeighbridgeSimulator,
    reader_settings,
    render_stream,
    truck_profile,
)
from smartgate.cli import CommandGroups, subcommands


def _host_port(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit():
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, got {text!r}")
    return host or "127.0.0.1", int(port)


def _weights(text: str) -> list[float]:
    try:
        return [float(w) for w in text.split(",") if w.strip()]
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected comma-separated kg, got {text!r}") from exc


def _play_trucks(sim: WeighbridgeSimulator, args: argparse.Namespace) -> None:
    """Queue the requested trucks one after another every `--every` seconds, forever."""
    stop = threading.Event()
    for i in itertools.count():
        if args.axles:
            sim.queue_axle_truck(args.axles)
            print(f"axle-by-axle truck queued: {args.axles} kg", flush=True)
        elif args.trucks:
            gross = args.trucks[i % len(args.trucks)]
            sim.queue_truck(gross)
            print(f"truck queued: {gross:.0f} kg", flush=True)
        stop.wait(args.every)


def _sim_weighbridge(args: argparse.Namespace) -> int:
    if args.tcp is None and not args.pty:
        print("give --tcp HOST:PORT, --pty or both")
        return 2
    sim = WeighbridgeSimulator(
        args.protocol,
        tcp=args.tcp,
        pty=args.pty,
        rate_hz=args.rate,
        checksum=args.checksum,
    ).start()
    if sim.tcp_port is not None:
        print(f"weighbridge ({args.protocol}) on tcp {args.tcp[0]}:{sim.tcp_port}", flush=True)
    if sim.pty_path is not None:
        print(f"weighbridge ({args.protocol}) on serial {sim.pty_path}", flush=True)
    try:
        _play_trucks(sim, args)
    finally:
        sim.stop()
    return 0


def _serve_until_interrupted(*sims: BarrierSimulator | DisplaySimulator | LaneSimulators) -> int:
    try:
        threading.Event().wait()
    finally:
        for sim in sims:
            sim.stop()
    return 0


def _sim_barrier(args: argparse.Namespace) -> int:
    if args.serial is None and not args.pty:
        sim = BarrierSimulator(args.host, args.port).start()
        print(f"barrier (Modbus TCP) on {args.host}:{sim.port}", flush=True)
        return _serve_until_interrupted(sim)
    link = PtyLink().start() if args.pty else None
    device = link.ends[0] if link is not None else args.serial
    try:
        sim = BarrierSimulator(serial_port=device, baudrate=args.baud).start()
        where = link.ends[1] if link is not None else device
        print(f"barrier (Modbus RTU, {args.baud} 8N1) on serial {where}", flush=True)
        return _serve_until_interrupted(sim)
    finally:
        if link is not None:
            link.stop()


def _sim_display(args: argparse.Namespace) -> int:
    sim = DisplaySimulator(args.host, args.port).start()
    print(f"lane display on {args.host}:{sim.port}", flush=True)
    return _serve_until_interrupted(sim)


def _sim_lane(args: argparse.Namespace) -> int:
    sims = LaneSimulators.start(
        args.protocol,
        host=args.host,
        weighbridge_port=args.weighbridge_port,
        barrier_port=args.barrier_port,
        display_port=args.display_port,
    )
    print(
        f"lane simulators on {args.host}: weighbridge {sims.weighbridge_port} "
        f"barrier {sims.barrier_port} display {sims.display_port}",
        flush=True,
    )
    try:
        _play_trucks(sims.weighbridge, args)
    finally:
        sims.stop()
    return 0


def _read_weighbridge(args: argparse.Namespace) -> int:
    if args.tcp is not None:
        where = {"transport": "tcp", "host": args.tcp[0], "tcp_port": args.tcp[1]}
    else:
        where = {"transport": "serial", "serial_port": args.serial, "baudrate": args.baud}
    config = WeighbridgeConfig(
        protocol=args.protocol,
        toledo_checksum=args.checksum,
        axle_mode=args.axle_mode,
        unit=args.unit,
        capacity_kg=args.capacity_kg,
        **where,
    )
    scale = Weighbridge(
        config,
        on_event=lambda e: print(f"EVENT {e}", flush=True),
        on_reading=(lambda r: print(r, flush=True)) if args.readings else None,
        on_status=lambda c: print("CONNECTED" if c else "DISCONNECTED", flush=True),
    ).start()
    try:
        threading.Event().wait(args.seconds or None)
    finally:
        scale.stop()
        print(f"stats: {dict(scale.stats)}")
    return 0


def _decode_capture(args: argparse.Namespace) -> int:
    """Run a captured byte stream through the configured format; print readings and rejections."""
    try:
        raw = args.capture.read_bytes()
        data = bytes.fromhex(raw.decode("ascii")) if args.hex else raw
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        print(f"cannot read {args.capture}: {exc}")
        return 2
    config = WeighbridgeConfig(
        protocol=args.protocol,
        toledo_checksum=args.checksum,
        unit=args.unit,
        capacity_kg=args.capacity_kg,
        transport="tcp",
        host="capture",
        tcp_port=1,
    )
    result = read_stream(indicator_format(config), data)
    for reading in result.readings:
        print(reading)
    for error in result.errors:
        print(f"REJECTED {error}")
    print(f"{len(result.readings)} readings, {len(result.errors)} rejected frames, "
          f"{result.discarded} bytes discarded")  # fmt: skip
    return 0 if result.readings else 1


def _bench_parse(args: argparse.Namespace) -> int:
    profile = truck_profile(32_000)
    for protocol in PROTOCOLS:
        stream = render_stream(profile, protocol, rate_hz=100.0) * args.repeat
        config = WeighbridgeConfig(
            **reader_settings(protocol), transport="tcp", host="127.0.0.1", tcp_port=1
        )
        fmt = indicator_format(config)
        framer = fmt.new_framer()
        start = time.perf_counter()
        count = 0
        for i in range(0, len(stream), 61):  # odd chunk size: frames straddle chunks
            for frame in framer.feed(stream[i : i + 61]):
                fmt.parse(frame, 0.0)
                count += 1
        elapsed = time.perf_counter() - start
        print(f"{protocol}: {count} frames in {elapsed:.3f}s = {count / elapsed:,.0f} frames/s",
              flush=True)  # fmt: skip
    return 0


def _add_truck_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--trucks", type=_weights, default=[18_000.0, 32_500.0, 41_200.0],
                   help="gross kg of the trucks to cycle through, comma-separated ('' for none)")  # fmt: skip
    p.add_argument("--axles", type=_weights, default=None,
                   help="play axle-by-axle trucks with these axle-group kg instead")  # fmt: skip
    p.add_argument("--every", type=float, default=25.0, help="seconds between trucks")


def register(commands: CommandGroups) -> None:
    """Add `sim`, `weighbridge` and `bench weighbridge-parse`."""
    sims = subcommands(
        commands.top.add_parser("sim", help="lane hardware simulators"), "sim", "DEVICE"
    )

    wb = sims.add_parser("weighbridge", help="weighbridge indicator playing truck profiles")
    wb.add_argument("--protocol", choices=PROTOCOLS, default="toledo",
                    help="regex: the generic framed example of docs/hardware.md")  # fmt: skip
    wb.add_argument("--tcp", type=_host_port, default=None, metavar="HOST:PORT")
    wb.add_argument("--pty", action="store_true", help="create a pty pair, print its path")
    wb.add_argument("--rate", type=float, default=10.0, help="frames per second")
    wb.add_argument("--checksum", action="store_true", help="Toledo checksum character")
    _add_truck_args(wb)
    wb.set_defaults(func=_sim_weighbridge)

    barrier = sims.add_parser("barrier", help="Modbus TCP/RTU barrier and traffic light")
    barrier.add_argument("--host", default="127.0.0.1")
    barrier.add_argument("--port", type=int, default=5020)
    rtu = barrier.add_mutually_exclusive_group()
    rtu.add_argument("--serial", metavar="DEVICE", help="serve Modbus RTU on this serial device")
    rtu.add_argument("--pty", action="store_true",
                     help="serve Modbus RTU on a pty pair; prints the device to open")  # fmt: skip
    barrier.add_argument("--baud", type=int, default=9600, help="RTU baud rate")
    barrier.set_defaults(func=_sim_barrier)

    display = sims.add_parser("display", help="TCP lane display that logs what it shows")
    display.add_argument("--host", default="127.0.0.1")
    display.add_argument("--port", type=int, default=5050)
    display.set_defaults(func=_sim_display)

    lane = sims.add_parser("lane", help="weighbridge, barrier and display of one lane")
    lane.add_argument("--protocol", choices=PROTOCOLS, default="toledo")
    lane.add_argument("--host", default="127.0.0.1")
    lane.add_argument("--weighbridge-port", type=int, default=4001)
    lane.add_argument("--barrier-port", type=int, default=5020)
    lane.add_argument("--display-port", type=int, default=5050)
    _add_truck_args(lane)
    lane.set_defaults(func=_sim_lane)

    read_cmds = subcommands(
        commands.top.add_parser("weighbridge", help="read a weighbridge indicator"), "weighbridge"
    )
    reader = read_cmds.add_parser("read", help="print connection changes and capture events")
    reader.add_argument("--protocol", choices=[p for p in PROTOCOLS if p != "regex"],
                        default="toledo")  # fmt: skip
    reader.add_argument("--unit", choices=["kg", "t", "lb"], default="kg",
                        help="display unit, for formats that send none")  # fmt: skip
    reader.add_argument("--capacity-kg", type=float, default=None,
                        help="indicator range; above it a reading is an overload")  # fmt: skip
    source = reader.add_mutually_exclusive_group(required=True)
    source.add_argument("--tcp", type=_host_port, metavar="HOST:PORT")
    source.add_argument("--serial", metavar="DEVICE")
    reader.add_argument("--baud", type=int, default=9600)
    reader.add_argument("--checksum", action="store_true")
    reader.add_argument("--axle-mode", action="store_true")
    reader.add_argument("--readings", action="store_true", help="print every reading too")
    reader.add_argument("--seconds", type=float, default=0.0, help="stop after this (0: never)")
    reader.set_defaults(func=_read_weighbridge)

    decode = read_cmds.add_parser(
        "decode", help="read a captured byte stream (a file) and print its readings"
    )
    decode.add_argument("capture", type=Path, help="raw bytes as captured (or hex with --hex)")
    decode.add_argument("--protocol", choices=[p for p in PROTOCOLS if p != "regex"],
                        required=True)  # fmt: skip
    decode.add_argument("--hex", action="store_true", help="the file holds hex text")
    decode.add_argument("--checksum", action="store_true", help="Toledo checksum character")
    decode.add_argument("--unit", choices=["kg", "t", "lb"], default="kg")
    decode.add_argument("--capacity-kg", type=float, default=None)
    decode.set_defaults(func=_decode_capture)

    bench = commands.bench.add_parser("weighbridge-parse", help="frame+parse throughput")
    bench.add_argument("--repeat", type=int, default=200, help="copies of one truck's stream")
    bench.set_defaults(func=_bench_parse)
