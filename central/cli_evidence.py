"""`smartgate evidence purge|verify|export`: retention, integrity and hand-over of evidence."""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime
from pathlib import Path

from central.cli import iso_datetime
from smartgate.cli import CommandGroups, subcommands


def _open(args: argparse.Namespace):  # type: ignore[no-untyped-def]
    """(settings, session factory, evidence store, engine) from the flags and environment."""
    from central.config import CentralSettings
    from central.db import make_engine, session_factory, upgrade_database
    from central.evidence.store import open_store

    settings = CentralSettings(**({"database_url": args.database_url} if args.database_url
                                  else {}))
    engine = make_engine(settings.database_url)
    upgrade_database(engine)
    return settings, session_factory(engine), open_store(settings), engine


def purge(args: argparse.Namespace) -> int:
    """Purge the passages past retention now."""
    from central.evidence import records
    from central.evidence.job import policy_of

    settings, sessions, evidence, engine = _open(args)
    report = records.purge(sessions, evidence, policy_of(settings), datetime.now(UTC))
    engine.dispose()
    print(f"examined {report.examined}, purged {report.purged} {report.by_class}, "
          f"images deleted {report.images_deleted}, kept on legal hold {report.held}")
    return 0


def verify(args: argparse.Namespace) -> int:
    """Re-hash every stored image (since --since); exit 1 when one is missing or altered."""
    from tqdm import tqdm

    from central.evidence import records

    _settings, sessions, evidence, engine = _open(args)
    with tqdm(unit="image", disable=not sys.stderr.isatty()) as bar:
        report = records.verify(sessions, evidence, args.since, progress=bar.update)
    engine.dispose()
    for event_id, image_id in report.missing:
        print(f"MISSING  {event_id} {image_id}")
    for event_id, image_id in report.altered:
        print(f"ALTERED  {event_id} {image_id}")
    for event_id in report.incomplete_passages:
        print(f"INCOMPLETE {event_id} (the edge has not uploaded all its images)")
    print(f"checked {report.checked} images: {len(report.missing)} missing, "
          f"{len(report.altered)} altered; {len(report.incomplete_passages)} passages "
          "with evidence not (yet) uploaded")
    return 0 if report.ok else 1


def export(args: argparse.Namespace) -> int:
    """Write one passage as a ZIP (images, reads, declaration, decisions, audit, README)."""
    from central import store
    from central.evidence.export import export_passage

    _settings, sessions, evidence, engine = _open(args)
    out = Path(args.out)
    try:
        with sessions() as session, session.begin():
            counts = export_passage(session, evidence, args.event_id, out, args.actor)
    except store.PassageNotFound:
        print(f"error: no passage {args.event_id}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"error: cannot write {out}: {exc}", file=sys.stderr)
        return 2
    finally:
        engine.dispose()
    print(f"{out}: {counts['images']} images, {counts['missing']} missing")
    return 0 if counts["missing"] == 0 else 1


def register(commands: CommandGroups) -> None:
    """Attach `smartgate evidence purge|verify|export`."""
    ev = commands.top.add_parser("evidence", help="evidence images at central (docs/evidence.md)")
    ev.add_argument("--database-url", help="SQLAlchemy URL (default: central settings)")
    sub = subcommands(ev, "evidence_command")
    p = sub.add_parser("purge", help="delete images and mask plates of passages past retention")
    p.set_defaults(func=purge)
    v = sub.add_parser("verify", help="re-hash stored images; report missing or altered ones")
    v.add_argument("--since", type=iso_datetime,
                   help="only images stored since this date (ISO)")
    v.set_defaults(func=verify)
    x = sub.add_parser("export", help="one passage as a ZIP for another agency")
    x.add_argument("event_id")
    x.add_argument("out", help="ZIP file to write")
    x.add_argument("--actor", default="cli", help="who exports (kept in the audit log)")
    x.set_defaults(func=export)
