"""`smartgate central run|ingest|export-training` and `smartgate declarations import`."""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime
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
            "mqtt_client_id": getattr(args, "mqtt_client_id", None),
            "site": getattr(args, "site", None),
            "rules_file": args.rules,
            "fee_table_file": args.fee_table,
            "site_file": getattr(args, "site_file", None),
            **extra,
        }.items()
        if v is not None
    }
    return CentralSettings(**overrides)


def run_central(args: argparse.Namespace) -> int:
    """Start the FastAPI app and the MQTT ingest (in-process, or N worker processes)."""
    import uvicorn

    from central.api import create_app, uvicorn_config
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
        uvicorn.Server(uvicorn_config(create_app(settings), settings)).run()
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

    The file is read and imported a batch at a time, each batch its own transaction, so memory
    stays flat and ingest keeps writing during a long import. Exit status 0 when every row was
    good, 1 when some were rejected, 2 when the file is unusable (a file that turns out
    unreadable midway keeps the batches before it; re-running is harmless).
    """
    from tqdm import tqdm

    from central import store
    from central.config import CentralSettings
    from central.db import make_engine, session_factory, upgrade_database
    from central.domain.declarations import BadRows, DeclarationFileError, iter_csv, utf8_lines

    path = Path(args.file)
    bad = BadRows(keep=0, on_error=lambda e: print(f"{path}:{e.line}: {e.reason}", file=sys.stderr))
    settings = CentralSettings(**({"database_url": args.database_url} if args.database_url else {}))
    engine = make_engine(settings.database_url)
    upgrade_database(engine)
    progress = tqdm(unit="decl", disable=not sys.stderr.isatty())
    counts = store.ImportCounts()
    try:
        with (
            progress,
            path.open("rb") as raw,
            session_factory(engine)() as session,
        ):
            counts = store.import_declarations(
                session, bad.good(iter_csv(utf8_lines(raw))), progress=progress.update,
                commit_batches=True,
            )
            store.add_audit(session, "cli", "declaration.import", "declaration", path.name, {
                "created": counts.created, "updated": counts.updated,
                "unchanged": counts.unchanged, "bad_rows": bad.count,
            })  # fmt: skip
            session.commit()
    except (OSError, UnicodeDecodeError, DeclarationFileError) as exc:
        print(f"error: {path}: {exc}", file=sys.stderr)
        return 2
    finally:
        engine.dispose()
    print(f"{path}: {counts.created} created, {counts.updated} updated, "
          f"{counts.unchanged} unchanged, {bad.count} bad rows")
    return 1 if bad.count else 0


def iso_datetime(text: str) -> datetime:
    """An ISO date or time for --since (UTC unless it names its zone)."""
    try:
        at = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an ISO date: {text!r}") from None
    return at if at.tzinfo else at.replace(tzinfo=UTC)


def export_training(args: argparse.Namespace) -> int:
    """Write the plates officers confirmed or corrected as a labeled folder (crops +
    labels.csv) that `smartgate eval` and `smartgate models adapt` read; adds to it on re-runs."""
    from tqdm import tqdm

    from central.config import CentralSettings
    from central.db import make_engine, session_factory, upgrade_database
    from central.evidence.store import open_store
    from central.evidence.training import TrainingExportError
    from central.evidence.training import export_training as export

    settings = CentralSettings(**({"database_url": args.database_url} if args.database_url
                                  else {}))
    engine = make_engine(settings.database_url)
    upgrade_database(engine)
    folder = Path(args.dir)
    try:
        with tqdm(unit="passage", disable=not sys.stderr.isatty()) as bar:
            report = export(session_factory(engine), open_store(settings), folder, args.since,
                            progress=bar.update)
    except TrainingExportError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"error: cannot write {folder}: {exc}", file=sys.stderr)
        return 2
    finally:
        engine.dispose()
    skipped = ", ".join(f"{n} {why}" for why, n in sorted(report.skipped.items())) or "none"
    print(f"{folder}: {report.added} crops added, {report.updated} labels updated, "
          f"{report.unchanged} unchanged; left out: {skipped}")
    return 0


def register(commands: CommandGroups) -> None:
    """Attach `smartgate central run|ingest|export-training` and `smartgate declarations
    import`."""
    sub = subcommands(commands.top.add_parser("central", help="the central service"),
                      "central_command")
    run = sub.add_parser("run", help="run the API, web pages and MQTT ingest")
    run.add_argument("--database-url", help="SQLAlchemy URL (default sqlite:///data/central.db)")
    run.add_argument("--mqtt-host")
    run.add_argument("--mqtt-port", type=int)
    run.add_argument("--mqtt-client-id",
                     help="base MQTT client id (default smartgate-central); connections add "
                          "-http, -live, -w<k>")
    run.add_argument("--site", help="site id to ingest (default + for all; the generated broker "
                                    "ACL allows one site)")
    run.add_argument("--host", help="HTTP listen address")
    run.add_argument("--port", type=int, help="HTTP listen port")
    run.add_argument("--rules", help="site matching rules, YAML or TOML (docs/matching.md)")
    run.add_argument("--fee-table", help="fee table, YAML or TOML (central/domain/fees.py)")
    run.add_argument("--site-file", help="site layout for journeys: lane roles, zones (docs/yard.md)")
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
    ingest.add_argument("--mqtt-client-id", help="base MQTT client id (default smartgate-central)")
    ingest.add_argument("--site", help="site id to ingest (default +)")
    ingest.add_argument("--rules", help="site matching rules, YAML or TOML (docs/matching.md)")
    ingest.add_argument("--fee-table", help="fee table, YAML or TOML (central/domain/fees.py)")
    ingest.add_argument("--site-file", help="site layout for journeys (docs/yard.md)")
    ingest.add_argument("--metrics-port", type=int, help="serve /metrics on this port")
    ingest.add_argument("--no-shared", dest="shared", action="store_false",
                        help="the only worker: plain persistent subscription (MQTT 3.1.1)")
    ingest.set_defaults(func=run_ingest)
    training = sub.add_parser(
        "export-training",
        help="plates officers confirmed or corrected, as a labeled folder for smartgate eval "
             "and models adapt (docs/plates.md)")
    training.add_argument("dir", help="folder to write (images/ and labels.csv; added to)")
    training.add_argument("--since", type=iso_datetime,
                          help="only passages an officer decided or corrected since (ISO date)")
    training.add_argument("--database-url", help="SQLAlchemy URL (default: central settings)")
    training.set_defaults(func=export_training)

    dsub = subcommands(
        commands.top.add_parser("declarations", help="customs declarations in central's DB"),
        "declarations_command",
    )
    imp = dsub.add_parser("import", help="import a CSV (docs/matching.md), idempotent on number")
    imp.add_argument("file", help="CSV file with a header row")
    imp.add_argument("--database-url", help="SQLAlchemy URL (default: central settings)")
    imp.set_defaults(func=import_declarations)
