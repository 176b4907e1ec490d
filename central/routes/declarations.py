"""Declarations: list, read, import (JSON or CSV upload), amend, cancel, delete.

Bodies are capped before they are read (`central.http_guard`: `max_json_import_bytes` for the
JSON import, `max_csv_import_bytes` for the CSV upload) and only an authenticated caller's body
is read at all. The CSV upload is decoded and imported a batch at a time, each batch committed
on its own, so a large file neither fills memory nor holds the database's write lock.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Body, HTTPException, Query, UploadFile, status

from central import store
from central.deps import Admin, Db, Reader
from central.domain.declarations import (
    BadRows,
    Declaration,
    DeclarationFileError,
    RowError,
    iter_csv,
    parse_json,
    utf8_lines,
)
from central.routes.common import found
from central.schemas import DeclarationOut, ImportReport, RowErrorOut

router = APIRouter(prefix="/api/declarations", tags=["declarations"])


def _import(
    db: Db, items: Iterable[Declaration | RowError], actor: str, source: str
) -> ImportReport:
    bad = BadRows()
    counts = store.import_declarations(db, bad.good(items), commit_batches=True)
    store.add_audit(db, actor, "declaration.import", "declaration", source, {
        "created": counts.created, "updated": counts.updated, "unchanged": counts.unchanged,
        "bad_rows": bad.count,
    })  # fmt: skip
    db.commit()
    return ImportReport(
        created=counts.created, updated=counts.updated, unchanged=counts.unchanged,
        errors=[RowErrorOut.of(e) for e in bad.first], bad_rows=bad.count,
    )


@router.get("", response_model=list[DeclarationOut])
def list_declarations(
    db: Db,
    _user: Reader,
    plate: Annotated[str | None, Query(description="part of the tractor or trailer plate")] = None,
    container: str | None = None,
    gate: str | None = None,
    status_: Annotated[str | None, Query(alias="status", pattern="^(valid|cancelled)$")] = None,
    used: bool | None = None,
    valid_at: Annotated[datetime | None, Query(description="window contains this time")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> list[DeclarationOut]:
    """Declarations by window start, newest first."""
    f = store.DeclarationFilter(plate, container, gate, status_, used, valid_at, limit, offset)
    return [DeclarationOut.of(r) for r in store.list_declarations(db, f)]


@router.get("/{number}", response_model=DeclarationOut)
def get_declaration(number: str, db: Db, _user: Reader) -> DeclarationOut:
    """One declaration with its usage."""
    return DeclarationOut.of(found(store.get_declaration(db, number), f"no declaration {number}"))


@router.post("", response_model=ImportReport)
def import_json(
    db: Db,
    user: Admin,
    payload: Annotated[Any, Body(description="a declaration, a list, or {declarations: [...]}")],
) -> ImportReport:
    """Create or amend declarations by number (idempotent); bad items are reported by
    position and the good ones kept."""
    try:
        decls, errors = parse_json(json.dumps(payload))
    except DeclarationFileError as exc:
        raise HTTPException(400, str(exc)) from None
    return _import(db, [*errors, *decls], user.username, "json")


@router.post("/import", response_model=ImportReport)
def import_csv(db: Db, user: Admin, file: UploadFile) -> ImportReport:
    """Upload a CSV (docs/matching.md); every bad row is counted, the first 1000 listed with
    their line numbers. Imported a batch at a time: a file found unusable midway (not UTF-8)
    is a 400 that keeps the batches before it (re-importing is harmless)."""
    source = file.filename or "upload.csv"
    try:
        return _import(db, iter_csv(utf8_lines(file.file)), user.username, source)
    except DeclarationFileError as exc:
        raise HTTPException(400, f"{source}: {exc}") from None


@router.put("/{number}", response_model=DeclarationOut)
def put_declaration(number: str, decl: Declaration, db: Db, user: Admin) -> DeclarationOut:
    """Create or amend one declaration."""
    if decl.number != number:
        raise HTTPException(400, f"body number {decl.number} differs from path {number}")
    _import(db, [decl], user.username, number)
    row = store.get_declaration(db, number)
    assert row is not None
    return DeclarationOut.of(row)


@router.post("/{number}/cancel", response_model=DeclarationOut)
def cancel_declaration(number: str, db: Db, user: Admin) -> DeclarationOut:
    """Cancel a declaration: a later passage on it is flagged."""
    row = found(store.cancel_declaration(db, number, user.username), f"no declaration {number}")
    db.commit()
    return DeclarationOut.of(row)


@router.delete("/{number}", status_code=status.HTTP_204_NO_CONTENT)
def delete_declaration(number: str, db: Db, user: Admin) -> None:
    """Delete a declaration no passage has used (a used one can only be cancelled)."""
    try:
        found = store.delete_declaration(db, number, user.username)
    except store.DeclarationInUse as exc:
        raise HTTPException(409, str(exc)) from None
    if not found:
        raise HTTPException(404, f"no declaration {number}")
    db.commit()
