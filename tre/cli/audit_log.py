"""`tre audit ...`: verify the hash chain and read the log."""

from __future__ import annotations

import argparse
import datetime as dt
import re

from tre.cli.framework import arg, command, group, lazy, moment, positive_int, table
from tre.enums import Role
from tre.errors import IntegrityError

audit = lazy("tre.audit")

group("audit", "verify the audit chain and read the audit log")

AUDITORS = [Role.ADMIN, Role.CUSTODIAN]


@command("audit verify", help="recompute the hash chain and name the first bad event", roles=AUDITORS)
def audit_verify(ctx, args):
    from tre.models import AuditHead

    with ctx.store.transaction() as session:
        count, problem = audit.verify_chain(session)
        head = session.get(AuditHead, 1)
    if problem is not None:
        ctx.emit({"ok": False, "events": count, "first_bad_event": problem.seq, "problem": problem.problem})
        raise IntegrityError(f"audit chain broken at {problem}")
    # The head hash, kept somewhere else, anchors the chain against a consistent rewrite.
    data = {"ok": True, "events": count, "head_hash": head.hash if head else audit.GENESIS}
    ctx.emit(data, f"audit chain intact: {count} events, head {data['head_hash'][:16]}…")


def since(text: str) -> dt.datetime | dt.timedelta:
    """An argparse type: an ISO 8601 time, or an age such as 30m, 12h, 7d (that long ago)."""
    match = re.fullmatch(r"(\d{1,6})([mhd])", text.strip())
    if match:
        return dt.timedelta(**{UNITS[match.group(2)]: int(match.group(1))})
    try:
        return moment(text)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a date or time: use ISO 8601 (2026-11-26, 2026-11-26T14:00) or an age (30m, 12h, 7d)"
        ) from None


UNITS = {"m": "minutes", "h": "hours", "d": "days"}
PAGE = 50  # events a table shows unless --limit says otherwise


@command(
    "audit log",
    help="list audit events, newest first, filtered; a page at a time (--limit, then --before)",
    args=[
        arg("--user", metavar="NAME", help="events by this user or about them (user:NAME)"),
        arg("--project", metavar="ID", help="events about this project (its workspace, extracts, requests, reviews)"),
        arg("--person", "--subject", dest="subject", metavar="PID", help="events about this person (their pid)"),
        arg("--actor", metavar="NAME", help="only events by this user"),
        arg("--action", help="only this action; `vault.*` matches a prefix"),
        arg("--object", help="only this object; `project:*` matches a prefix"),
        arg("--since", type=since, metavar="WHEN", help="from this time (ISO 8601, UTC unless given) or age (7d, 12h)"),
        arg("--until", type=moment, metavar="WHEN", help="before this time"),
        arg("--before", type=positive_int, metavar="SEQ", help="events before this sequence number (the next page)"),
        arg(
            "--limit",
            type=positive_int,
            metavar="N",
            help=f"at most N events (default: {PAGE} in the table, all with --json)",
        ),
        arg("--oldest-first", action="store_true", help="oldest first (the order of the chain)"),
    ],
    roles=AUDITORS,
)
def audit_log(ctx, args):
    start = ctx.now() - args.since if isinstance(args.since, dt.timedelta) else args.since
    filters = dict(
        actor=args.actor,
        action=args.action,
        object=args.object,
        subject=args.subject,
        since=start,
        until=args.until,
        user=args.user,
        project=args.project,
        before=args.before,
    )
    limit = args.limit or (None if ctx.json else PAGE)
    with ctx.store.transaction() as session:
        events = audit.query_events(session, **filters, limit=limit, newest_first=not args.oldest_first)
        total = audit.count_events(session, **filters) if limit is not None and len(events) == limit else len(events)
        rows = [audit.event_as_dict(e) for e in events]

    from tre.timezones import display_zone, readable

    zone = display_zone(ctx.settings.time_zone)

    def render(console):
        table(
            ["seq", "time", "actor", "action", "object", "details"],
            (
                [
                    r["seq"],
                    readable(r["at"], zone),
                    r["actor"],
                    r["action"],
                    r["object"],
                    audit.canonical_json(r["details"]),
                ]
                for r in rows
            ),
        )(console)
        if not rows:
            console.print("no events match")
        elif total > len(rows):
            last = min(r["seq"] for r in rows) if not args.oldest_first else None
            more = f"; the next page: --before {last}" if last is not None else "; --limit N shows more"
            console.print(f"{len(rows)} of {total} matching events{more}")

    ctx.emit(rows, render)
