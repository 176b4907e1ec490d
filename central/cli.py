"""`smartgate central ...` commands."""

from __future__ import annotations

import argparse

from smartgate.cli import CommandGroups


def run_central(args: argparse.Namespace) -> int:
    """Start the FastAPI app and the MQTT ingest."""
    import uvicorn

    from central.api import create_app
    from central.config import CentralSettings

    overrides = {
        k: v
        for k, v in {
            "database_url": args.database_url,
            "mqtt_host": args.mqtt_host,
            "mqtt_port": args.mqtt_port,
            "http_host": args.host,
            "http_port": args.port,
        }.items()
        if v is not None
    }
    settings = CentralSettings(**overrides)
    uvicorn.run(create_app(settings), host=settings.http_host, port=settings.http_port,
                log_level="info")
    return 0


def register(commands: CommandGroups) -> None:
    """Attach `smartgate central run`."""
    central = commands.top.add_parser("central", help="the central service")
    sub = central.add_subparsers(dest="central_command", metavar="ACTION")
    sub.required = True
    run = sub.add_parser("run", help="run the API, web pages and MQTT ingest")
    run.add_argument("--database-url", help="SQLAlchemy URL (default sqlite:///data/central.db)")
    run.add_argument("--mqtt-host")
    run.add_argument("--mqtt-port", type=int)
    run.add_argument("--host", help="HTTP listen address")
    run.add_argument("--port", type=int, help="HTTP listen port")
    run.set_defaults(func=run_central)
