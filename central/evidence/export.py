"""One passage as a ZIP for another agency: images, reads, declaration, decisions, fee, audit
trail (JSON) and a README that says how to check the images against their SHA-256."""

from __future__ import annotations

import json
import zipfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from central import store
from central.db import AuditEntry, DeclarationRow
from central.evidence import records
from central.evidence.store import EvidenceStore, sha256_hex

README = """SmartGate passage export
========================

Passage {event_id} ({site} / {lane}), exported {exported_at} by {actor}.

passage.json      the passage as the edge reported it (plate and container reads with their
                  confidences and candidates, weight, image references); plate texts are
                  masked if retention purged the passage
decisions.json    every decision on it, oldest first (rules and officers), the current marked
declaration.json  the customs declaration it was matched to (null when none)
fee.json          the infrastructure fee assessed (null when none)
audit.json        the audit trail: who decided, corrected, held, viewed or exported what, when
evidence.json     each evidence image central recorded: id, SHA-256, size, when stored, by
                  which edge account, when purged; `in_zip` tells whether the file is here
images/           the images, named <image_id>.jpg

Check an image:   sha256sum images/<image_id>.jpg  must print the sha256 in evidence.json.
"""


def _audit(entries: list[AuditEntry]) -> list[dict[str, Any]]:
    return [{"at": store.utc(a.at).isoformat(), "actor": a.actor, "action": a.action,
             "target_type": a.target_type, "target_id": a.target_id, "detail": a.detail}
            for a in sorted(entries, key=lambda a: (store.utc(a.at), a.id))]


def export_passage(session: Session, evidence: EvidenceStore, event_id: str, out: Path,
                   actor: str) -> dict[str, int]:
    """Write the passage's ZIP to `out` and audit the export (caller commits); returns counts
    of images written and missing. Raises store.PassageNotFound."""
    detail = store.passage_detail(session, event_id)
    if detail is None:
        raise store.PassageNotFound(event_id)
    p = detail.passage
    now = datetime.now(UTC)
    audit = list(detail.audit) + list(store.list_audit(session, "evidence", event_id, 10_000))
    images: list[dict[str, Any]] = []
    written = missing = 0
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
        for row in records.images_of(session, event_id):
            data = evidence.get(row.sha256) if row.purged_at is None else None
            ok = data is not None and sha256_hex(data) == row.sha256
            if ok:
                assert data is not None
                z.writestr(f"images/{row.image_id}.jpg", data)
                written += 1
            elif row.purged_at is None:
                missing += 1
            images.append({"image_id": row.image_id, "sha256": row.sha256, "size": row.size,
                           "uploaded_by": row.uploaded_by,
                           "stored_at": store.utc(row.stored_at).isoformat(),
                           "purged_at": store.utc(row.purged_at).isoformat()
                           if row.purged_at else None, "in_zip": ok})
        status = records.evidence_status(session, [p])[event_id]
        decl = detail.declaration
        files: dict[str, Any] = {
            "passage.json": {"event_id": p.event_id, "site": p.site, "lane": p.lane,
                             "node_id": p.node_id, "received_at": store.utc(
                                 p.received_at).isoformat(), "payload": p.payload},
            "decisions.json": [{"outcome": d.outcome, "action": d.action, "reasons": d.reasons,
                                "declaration_number": d.declaration_number,
                                "rules_version": d.rules_version, "decided_by": d.decided_by,
                                "decided_at": store.utc(d.decided_at).isoformat(),
                                "note": d.note, "current": d.current} for d in detail.history],
            "declaration.json": None if decl is None else {
                c.key: getattr(decl, c.key) for c in DeclarationRow.__table__.columns},
            "fee.json": None if detail.fee is None else {
                "amount_vnd": detail.fee.amount_vnd, "basis": detail.fee.basis,
                "items": detail.fee.items, "table_version": detail.fee.table_version},
            "audit.json": _audit(audit),
            "evidence.json": {"expected": status.expected, "missing": status.missing,
                              "purged": status.purged, "legal_hold": status.legal_hold,
                              "images": images},
        }
        for name, value in files.items():
            z.writestr(name, json.dumps(value, indent=2, ensure_ascii=False, default=str))
        z.writestr("README.txt", README.format(event_id=event_id, site=p.site, lane=p.lane,
                                               exported_at=now.isoformat(), actor=actor))
    store.add_audit(session, actor, "evidence.export", "passage", event_id,
                    {"note": out.name, "images": written, "missing": missing})
    return {"images": written, "missing": missing}
