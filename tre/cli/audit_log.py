"""`tre audit ...`: verify the hash chain and read the log."""

from __future__ import annotations

from tre import audit
from tre.cli.framework import arg, command, group, moment, table
from tre.enums import Role
from tre.errors import IntegrityError
from tre.models import AuditHead

group("audit", "verify the audit chain and read the audit log")

AUDITORS = [Role.ADMIN, Role.CUSTODIAN]


@command("audit verify", help="recompute the hash chain and name the first bad event", roles=AUDITORS)
def audit_verify(ctx, args):
    with ctx.store.transaction() as session:
        count, problem = audit.verify_chain(session)
        head = session.get(AuditHead, 1)
    if problem is not None:
        ctx.emit({"ok": False, "events": count, "first_bad_event": problem.seq, "problem": problem.problem})
        raise IntegrityError(f"audit chain broken at {problem}")
    # The head hash, kept somewhere else, anchors the chain against a consistent rewrite.
    data = {"ok": True, "events": count, "head_hash": head.hash if head else audit.GENESIS}
    ctx.emit(data, f"audit chain intact: {count} events, head {data['head_hash'][:16]}…")


@command(
    "audit log",
    help="list audit events, filtered",
    args=[
        arg("--actor", help="only events by this user"),
        arg("--action", help="only this action; `vault.*` matches a prefix"),
        arg("--object", help="only this object; `project:*` matches a prefix"),
        arg("--subject", help="only events about this person key (pid)"),
        arg("--since", type=moment, help="from this time (ISO 8601, UTC unless given)"),
        arg("--until", type=moment, help="before this time"),
        arg("--limit", type=int, help="only the newest N events"),
    ],
    roles=AUDITORS,
)
def audit_log(ctx, args):
    with ctx.store.transaction() as session:
        events = audit.query_events(
            session,
            actor=args.actor,
            action=args.action,
            object=args.object,
            subject=args.subject,
            since=args.since,
            until=args.until,
            limit=args.limit,
        )
        rows = [audit.event_as_dict(e) for e in events]
    ctx.emit(
        rows,
        table(
            ["seq", "time (UTC)", "actor", "action", "object", "details"],
            (
                [
                    r["seq"],
                    r["at"][:19].replace("T", " "),
                    r["actor"],
                    r["action"],
                    r["object"],
                    audit.canonical_json(r["details"]),
                ]
                for r in rows
            ),
        ),
    )
