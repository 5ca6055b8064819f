"""Data-subject access (innsyn, hrl § 24 and 4.9.3 of the consultation paper).

A key custodian answers a person's request: what is registered about them per source (how
many records and which fields), their reservation status and its history, every access that
decrypted or looked up their identity (who, when, why), and every release that included them
(project, recipient, legal basis, date). The look-up that finds the person is itself logged
to their access log, so the report shows it too.
"""

from __future__ import annotations

import html
import json

from sqlalchemy import select

from tre import audit
from tre.config import Settings
from tre.db import Store
from tre.linkage import releases, vault
from tre.linkage.reservations import active_reservations, reservation_history
from tre.linkage.store import DELIVERY, LINE, person_pids, quote
from tre.linkage.zone import CentralZone
from tre.models import AuditEvent, ReleaseRecord
from tre.registers import SOURCES

REASON = "data subject access request (innsyn)"
INTERNAL = {"pid", DELIVERY, LINE}


def build_access_report(settings: Settings, zone: CentralZone, metadata: Store, *, actor: str, fnr: str) -> dict:
    """The person's access report; the look-up is audited against the person (custodian only)."""
    now = zone.clock()
    pid = vault.lookup(zone, metadata, actor=actor, fnr=fnr, reason=REASON)
    report: dict = {"generated_at": now.isoformat(), "registered": pid is not None}
    if pid is None:
        return report
    with zone.reading(metadata) as con:
        pids = person_pids(con, pid)
        report["sources"] = _registered(con, pids)
        report["reservations"] = {
            "status": {
                kind: pid in active_reservations(con, kind, now) for kind in ("registration", "release_with_fnr")
            },
            "history": [
                {**h, "effective_at": str(h["effective_at"]), "recorded_at": str(h["recorded_at"])}
                for h in reservation_history(con, pid)
            ],
        }
    report["releases"] = _releases(settings, metadata, pids)
    with metadata.transaction() as session:
        report["identity_accesses"] = [
            {
                "at": e.at,
                "who": e.actor,
                "what": e.action,
                "why": json.loads(e.details).get("reason", ""),
                "reference": json.loads(e.details).get("reference", ""),
            }
            for e in session.execute(
                select(AuditEvent).where(AuditEvent.subject.in_(pids)).order_by(AuditEvent.seq)
            ).scalars()
            if e.action.startswith("vault.")
        ]
        audit.record(
            session,
            at=now,
            actor=actor,
            action="innsyn.report",
            object="innsyn",
            subject=pid,
            details={"sources": len(report["sources"]), "releases": len(report["releases"])},
        )
    return report


def _registered(con, pids: list[str]) -> list[dict]:
    out = []
    for source in SOURCES.values():
        if source.name == "iplos_historisk":
            rows = con.execute(
                "SELECT h.* FROM iplos_historisk h JOIN iplos_historisk_nokkel k USING (old_pseudonym) "
                "WHERE k.pid::VARCHAR = ANY($1::VARCHAR[])",
                [pids],
            ).df()
        else:
            rows = con.execute(
                f"SELECT * FROM {quote(source.name)} WHERE pid::VARCHAR = ANY($1::VARCHAR[])", [pids]
            ).df()
        if rows.empty:
            continue
        fields = [c for c in rows.columns if c not in INTERNAL and rows[c].notna().any()]
        # A record delivered again is one record in its latest version.
        records = rows[source.key].nunique() if source.key and source.key in rows else len(rows)
        out.append({"source": source.name, "title": source.title, "records": int(records), "fields": fields})
    return out


def _releases(settings: Settings, metadata: Store, pids: list[str]) -> list[dict]:
    """The committed releases whose persons include any of `pids` (a batch no record names,
    left by a killed build, is nobody's release)."""
    batches = releases.batches_of(settings, pids)
    if not batches:
        return []
    with metadata.transaction() as session:
        records = session.execute(
            select(ReleaseRecord).where(ReleaseRecord.persons_batch.in_(batches)).order_by(ReleaseRecord.id)
        ).scalars()
        return [
            {
                "date": r.released_at.date().isoformat(),
                "project": r.project_id,
                "recipient": r.recipient,
                "legal_basis": r.legal_basis,
                "kind": r.kind.value,
                "reference": r.reference,
            }
            for r in records
        ]


def render_text(report: dict) -> str:
    if not report["registered"]:
        return "No person with this ID number is registered."
    lines = ["What is registered", ""]
    lines += [f"  {s['source']:<24} {s['records']:>6} record(s): {', '.join(s['fields'])}" for s in report["sources"]]
    status = report["reservations"]["status"]
    lines += ["", "Reservations (§ 2-2)", ""]
    lines += [f"  {kind}: {'active' if active else 'not active'}" for kind, active in status.items()]
    lines += [
        f"  {h['effective_at'][:19]} {h['kind']} {'activated' if h['active'] else 'deactivated'}"
        for h in report["reservations"]["history"]
    ]
    lines += ["", "Who has looked up or decrypted your identity", ""]
    lines += [f"  {a['at'][:19]} {a['who']} ({a['what']}): {a['why']}" for a in report["identity_accesses"]]
    lines += ["", "Releases that included you (§ 4-10)", ""]
    lines += [f"  {r['date']} {r['project']} to {r['recipient']} ({r['legal_basis']})" for r in report["releases"]]
    if not report["releases"]:
        lines.append("  none")
    return "\n".join(lines)


def render_html(report: dict) -> str:
    """A self-contained page for the person (no external assets)."""
    e = html.escape

    def table(headers, rows) -> str:
        if not rows:
            return "<p>None.</p>"
        head = "".join(f"<th>{e(h)}</th>" for h in headers)
        body = "".join("<tr>" + "".join(f"<td>{e(str(c))}</td>" for c in row) + "</tr>" for row in rows)
        return f"<table><tr>{head}</tr>{body}</table>"

    parts = [f"<p>Generated {e(report['generated_at'][:19])} UTC.</p>"]
    if not report["registered"]:
        parts.append("<p>No person with this ID number is registered.</p>")
    else:
        parts += [
            "<h2>What is registered</h2>",
            table(
                ["source", "records", "fields"],
                [(s["title"], s["records"], ", ".join(s["fields"])) for s in report["sources"]],
            ),
            "<h2>Reservations (§ 2-2)</h2>",
            table(
                ["reservation", "status"],
                [(k, "active" if v else "not active") for k, v in report["reservations"]["status"].items()],
            ),
            table(
                ["effective", "reservation", "change"],
                [
                    (h["effective_at"][:19], h["kind"], "activated" if h["active"] else "deactivated")
                    for h in report["reservations"]["history"]
                ],
            ),
            "<h2>Who has looked up or decrypted your identity</h2>",
            table(
                ["when (UTC)", "who", "what", "why"],
                [(a["at"][:19], a["who"], a["what"], a["why"]) for a in report["identity_accesses"]],
            ),
            "<h2>Releases that included you (§ 4-10)</h2>",
            table(
                ["date", "project", "recipient", "legal basis"],
                [(r["date"], r["project"], r["recipient"], r["legal_basis"]) for r in report["releases"]],
            ),
        ]
    style = "body{font-family:sans-serif;max-width:60em;margin:2em auto}table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ccc;padding:.2em .5em;text-align:left}"
    return (
        f"<!doctype html><html lang='en'><meta charset='utf-8'><title>Your data in KPR</title><style>{style}</style>"
        "<h1>Your data in the municipal patient and user register (KPR)</h1>" + "".join(parts) + "</html>\n"
    )
