"""Release records (§ 4-10) anchored in the audit chain.

The transaction that writes a release record (an extract's, `tre.linkage.extracts`, or a
released output's, `tre.output_check.storage`) calls `anchor`: a `release.anchor` event with
the record's id, kind, reference, batch, person count and the SHA-256 of all its fields
(`record_digest`). `tre.linkage.releases.verify` checks the record against these anchors.
Apart from `tre.linkage` so that the output checker, which never imports the central zone,
can anchor its records too.
"""

from __future__ import annotations

import datetime as dt
import hashlib

from sqlalchemy import select

from tre import audit
from tre.enums import ReleaseKind
from tre.models import AuditEvent, ReleaseRecord

ANCHOR = "release.anchor"  # the audit action that anchors one release record
LEGACY = "release.legacy"  # the records written before the first anchoring, recorded at it


def record_fields(row: ReleaseRecord) -> dict:
    """What a release record says, in a stable form (its id included: a renumbered row is an
    altered row). The digest of these fields is what the audit chain anchors."""
    return {
        "id": row.id,
        "kind": ReleaseKind(row.kind).value,
        "project": row.project_id,
        "approval": row.approval_id,
        "approval_version": row.approval_version,
        "recipient": row.recipient,
        "legal_basis": row.legal_basis,
        "persons": row.persons,
        "reference": row.reference,
        "released_at": audit.format_time(row.released_at),
        "keep_until": row.keep_until.isoformat(),
        "persons_batch": row.persons_batch,
        "persons_digest": row.persons_digest,
    }


def record_digest(row: ReleaseRecord) -> str:
    return hashlib.sha256(audit.canonical_json(record_fields(row)).encode("utf-8")).hexdigest()


def legacy_digest(records) -> str:
    """SHA-256 over the sorted (id, record digest) pairs of the records written before anchoring."""
    lines = sorted(f"{i} {digest}\n" for i, digest in records)
    return hashlib.sha256("".join(lines).encode("ascii")).hexdigest()


def anchor(session, row: ReleaseRecord, *, actor: str, at: dt.datetime) -> None:
    """Append the record's anchor to the audit chain, in the transaction that writes the record.
    The first anchoring records first which records were there before it (`release.legacy`:
    how many, the highest id, the digest of them all): only those count as legacy later."""
    session.flush()  # the row's id
    if session.execute(select(AuditEvent.seq).where(AuditEvent.action.in_([ANCHOR, LEGACY])).limit(1)).first() is None:
        before = list(session.execute(select(ReleaseRecord).where(ReleaseRecord.id != row.id)).scalars())
        audit.record(
            session,
            at=at,
            actor=actor,
            action=LEGACY,
            object="releases",
            details={
                "records": len(before),
                "highest": max((r.id for r in before), default=None),
                "digest": legacy_digest((r.id, record_digest(r)) for r in before),
            },
        )
    audit.record(
        session,
        at=at,
        actor=actor,
        action=ANCHOR,
        object=f"project:{row.project_id}",
        details={
            "record": row.id,
            "kind": ReleaseKind(row.kind).value,
            "reference": row.reference,
            "batch": row.persons_batch,
            "persons": row.persons,
            "record_digest": audit.digest(record_digest(row)),
        },
    )
