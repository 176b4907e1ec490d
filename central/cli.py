"""`smartgate central run|ingest` and `smartgate declarations import`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from smartgate.cli import CommandGroups, subcommands


def _settings(args: argparse.Namespace, **extra: object):  # type: ignore[no-untyped-def]
    """CentralSettings from the flags given (the rest from the environment and defaults)."""
    from central.config import CentralSettings

    overrides = {
        k: v
        for k, v in {
            "database_url": args.database_url,
            "mqtt_host": args.mqtt_host,
            "mqtt_port": args.mqtt_port,
            "rules_file": args.rules,
            "fee_table_file": args.fee_table,
            **extra,
        }.items()
        if v is not None
    }
    return CentralSettings(**overrides)


def run_central(args: argparse.Namespace) -> int:
    """Start the FastAPI app and the MQTT ingest (in-process, or N worker processes)."""
    import uvicorn

    from central.api import create_app
    from central.db import make_engine, upgrade_database
    from central.worker import WorkerPool

    settings = _settings(args, http_host=args.host, http_port=args.port,
                         ingest_workers=args.workers, metrics_port=args.metrics_port)
    pool = None
    if settings.ingest_workers:
        engine = make_engine(settings.database_url)
        upgrade_database(engine)  # once, before the workers race for it
        engine.dispose()
        pool = WorkerPool(settings, settings.ingest_workers).start()
    try:
        uvicorn.run(create_app(settings), host=settings.http_host, port=settings.http_port,
                    log_level="info")
    finally:
        if pool is not None:
            pool.stop()
    return 0


def run_ingest(args: argparse.Namespace) -> int:
    """Run one ingest worker until SIGTERM/SIGINT."""
    from central.worker import run_worker, stop_on_signals

    settings = _settings(args, metrics_port=args.metrics_port)
    return run_worker(settings, args.worker_id, stop_on_signals(), shared=args.shared)


def import_declarations(args: argparse.Namespace) -> int:
    """Import a declarations CSV: good rows kept (idempotent on number), bad rows listed.

    Exit status 0 when every row was good, 1 when some were rejected, 2 when the file is
    unusable.
    """
    from tqdm import tqdm

    from central import store
    from central.config import CentralSettings
    from central.db import make_engine, session_factory, upgrade_database
    from central.domain.declarations import DeclarationFileError, parse_csv

    path = Path(args.file)
    try:
        with path.open(encoding="utf-8-sig", newline="") as lines:
            decls, errors = parse_csv(lines)
    except (OSError, UnicodeDecodeError, DeclarationFileError) as exc:
        print(f"error: {path}: {exc}", file=sys.stderr)
        return 2
    for err in errors:
        print(f"{path}:{err.line}: {err.reason}", file=sys.stderr)
    settings = CentralSettings(**({"database_url": args.database_url} if args.database_url else {}))
    engine = make_engine(settings.database_url)
    upgrade_database(engine)
    with (
        tqdm(total=len(decls), unit="decl", disable=not sys.stderr.isatty()) as bar,
        session_factory(engine)() as session,
        session.begin(),
    ):
        counts = store.import_declarations(session, decls, progress=bar.update)
        store.add_audit(session, "cli", "declaration.import", "declaration", path.name, {
            "created": counts.created, "updated": counts.updated,
            "unchanged": counts.unchanged, "bad_rows": len(errors),
        })  # fmt: skip
    engine.dispose()
    print(f"{path}: {counts.created} created, {counts.updated} updated, "
          f"{counts.unchanged} unchanged, {len(errors)} bad rows")
    return 1 if errors else 0


def register(commands: CommandGroups) -> None:
    """Attach `smartgate central run|ingest` and `smartgate declarations import`."""
    sub = subcommands(commands.top.add_parser("central", help="the central service"),
                      "central_command")
    run = sub.add_parser("run", help="run the API, web pages and MQTT ingest")
    run.add_argument("--database-url", help="SQLAlchemy URL (default sqlite:///data/central.db)")
    run.add_argument("--mqtt-host")
    run.add_argument("--mqtt-port", type=int)
    run.add_argument("--host", help="HTTP listen address")
    run.add_argument("--port", type=int, help="HTTP listen port")
    run.add_argument("--rules", help="site matching rules, YAML or TOML (docs/matching.md)")
    run.add_argument("--fee-table", help="fee table, YAML or TOML (central/domain/fees.py)")
    run.add_argument("--workers", type=int,
                     help="ingest in N worker processes (MQTT 5 shared subscriptions; mosquitto)")
    run.add_argument("--metrics-port", type=int,
                     help="with --workers: worker k serves /metrics on this port + k - 1")
    run.set_defaults(func=run_central)
    ingest = sub.add_parser("ingest", help="run one ingest worker (shared subscription, MQTT 5)")
    ingest.add_argument("--worker-id", required=True,
                        help="stable id, distinct per worker: its persistent MQTT session")
    ingest.add_argument("--database-url", help="SQLAlchemy URL (default sqlite:///data/central.db)")
    ingest.add_argument("--mqtt-host")
    ingest.add_argument("--mqtt-port", type=int)
    ingest.add_argument("--rules", help="site matching rules, YAML or TOML (docs/matching.md)")
    ingest.add_argument("--fee-table", help="fee table, YAML or TOML (central/domain/fees.py)")
    ingest.add_argument("--metrics-port", type=int, help="serve /metrics on this port")
    ingest.add_argument("--no-shared", dest="shared", action="store_false",
                        help="the only worker: plain persistent subscription (MQTT 3.1.1)")
    ingest.set_defaults(func=run_ingest)

    dsub = subcommands(
        commands.top.add_parser("declarations", help="customs declarations in central's DB"),
        "declarations_command",
    )
    imp = dsub.add_parser("import", help="import a CSV (docs/matching.md), idempotent on number")
    imp.add_argument("file", help="CSV file with a header row")
    imp.add_argument("--database-url", help="SQLAlchemy URL (default: central settings)")
    imp.set_defaults(func=import_declarations)
