"""The append-only, hash-chained audit log.

Each event is (seq, at, actor, action, object, subject, details, prev_hash, hash) where
hash = SHA-256(canonical JSON of the event's fields + prev_hash). An event is written in the
same transaction as the change it records: pass the session that makes the change.
`verify_chain` recomputes the chain and names the first bad event: edited, deleted, inserted
or reordered events all break it, and the head row catches a deleted tail.

Sequence numbers and times agree: an event is never earlier than the one before it (a writer
that waited for the chain's head takes the time of the event it follows, if that is later).

Details never hold an FNR, a key or a health value; `record` refuses details that contain
something shaped like an ID number. Person-linked events (a decryption, a release that
included the person) carry the person's internal key in `subject`, which is what a data
subject's access report reads.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from tre.models import AuditEvent, AuditHead

GENESIS = "0" * 64
_ID_NUMBER = re.compile(r"(?<!\d)\d{11}(?!\d)")


def digest(sha256: str | None) -> str | None:
    """A sha256 as audit details may hold it: in groups of 8 hex digits, because the log refuses
    runs of 11 digits (the shape of an ID number) and a hex digest often has one."""
    return None if sha256 is None else "-".join(sha256[i : i + 8] for i in range(0, len(sha256), 8))


def canonical_json(value) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def format_time(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def event_hash(seq: int, at: str, actor: str, action: str, object: str, subject, details: str, prev_hash: str) -> str:
    body = canonical_json(
        {
            "seq": seq,
            "at": at,
            "actor": actor,
            "action": action,
            "object": object,
            "subject": subject,
            "details": details,
        }
    )
    return hashlib.sha256((body + prev_hash).encode("utf-8")).hexdigest()


def record(
    session: Session,
    *,
    at: dt.datetime,
    actor: str,
    action: str,
    object: str = "",
    details: dict | None = None,
    subject: str | None = None,
) -> AuditEvent:
    """Append one event in `session`'s transaction and return it."""
    context = session.info.get("audit_context")
    text = canonical_json({**(details or {}), **context} if context else (details or {}))
    if _ID_NUMBER.search(text) or _ID_NUMBER.search(object):
        # An 11-digit number in an audit event is an ID number until proven otherwise.
        raise ValueError(f"audit event {action}: details must not contain an ID number")
    head = session.execute(select(AuditHead).where(AuditHead.id == 1).with_for_update()).scalar_one_or_none()
    if head is None:
        head = AuditHead(id=1, seq=0, hash=GENESIS)
        session.add(head)
    seq, prev = head.seq + 1, head.hash
    stamp = format_time(at)
    # `at` was taken before this transaction waited for the chain's head; a writer that waited
    # longer than another must not appear earlier in time than the event before it.
    previous_at = session.execute(select(AuditEvent.at).where(AuditEvent.seq == head.seq)).scalar_one_or_none()
    if previous_at is not None and previous_at > stamp:
        stamp = previous_at
    digest = event_hash(seq, stamp, actor, action, object, subject, text, prev)
    event = AuditEvent(
        seq=seq,
        at=stamp,
        actor=actor,
        action=action,
        object=object,
        subject=subject,
        details=text,
        prev_hash=prev,
        hash=digest,
    )
    session.add(event)
    head.seq, head.hash = seq, digest
    session.flush()
    return event


@dataclass(frozen=True)
class ChainProblem:
    seq: int
    problem: str

    def __str__(self) -> str:
        return f"event {self.seq}: {self.problem}"


def verify_chain(session: Session) -> tuple[int, ChainProblem | None]:
    """Recompute the chain. Returns (events checked, the first problem or None)."""
    events = session.execute(select(AuditEvent).order_by(AuditEvent.seq)).scalars()
    head = session.get(AuditHead, 1)
    return _walk(events, head)


def _walk(events: Iterable[AuditEvent], head: AuditHead | None) -> tuple[int, ChainProblem | None]:
    expected_seq, prev = 1, GENESIS
    count = 0
    for event in events:
        count += 1
        if event.seq != expected_seq:
            if event.seq > expected_seq:
                return count, ChainProblem(expected_seq, f"missing (deleted); the chain jumps to event {event.seq}")
            return count, ChainProblem(event.seq, "sequence number repeated or out of order")
        # An edit leaves the link to the previous event intact and breaks the event's own
        # hash; a move (reordering, insertion, a deletion with renumbering) breaks the link.
        if event.prev_hash != prev:
            return count, ChainProblem(
                event.seq, "does not follow the event before it (reordered, inserted, or the one before was deleted)"
            )
        recomputed = event_hash(
            event.seq, event.at, event.actor, event.action, event.object, event.subject, event.details, event.prev_hash
        )
        if recomputed != event.hash:
            return count, ChainProblem(event.seq, "content does not match its hash (edited)")
        prev = event.hash
        expected_seq += 1
    last = expected_seq - 1
    if head is None:
        if last:
            return count, ChainProblem(last, "the chain head is missing")
        return count, None
    if head.seq != last or head.hash != prev:
        if head.seq > last:
            return count, ChainProblem(last + 1, f"missing (deleted); the head says the chain ends at event {head.seq}")
        return count, ChainProblem(last, "the chain head does not match the last event")
    return count, None


def query_events(
    session: Session,
    *,
    actor: str | None = None,
    action: str | None = None,
    object: str | None = None,
    subject: str | None = None,
    since: dt.datetime | None = None,
    until: dt.datetime | None = None,
    limit: int | None = None,
    user: str | None = None,
    project: str | None = None,
    before: int | None = None,
    newest_first: bool = False,
) -> list[AuditEvent]:
    """Events matching every given filter, oldest first (the last `limit` when limited), or
    newest first (the first `limit`).

    `action` and `object` ending in `*` match as prefixes (`vault.*`). `user`: events by that
    user or about them (`user:NAME`); `project`: events about the project, its object or a
    `project` field of the details (requests, extracts, reviews); `before`: sequence numbers
    below it (the next page, newest first).
    """
    query = _filtered(
        actor=actor,
        action=action,
        object=object,
        subject=subject,
        since=since,
        until=until,
        user=user,
        project=project,
        before=before,
    )
    if newest_first:
        query = query.order_by(AuditEvent.seq.desc())
        return list(session.execute(query if limit is None else query.limit(limit)).scalars())
    if limit is not None:
        newest = session.execute(query.order_by(AuditEvent.seq.desc()).limit(limit)).scalars().all()
        return list(reversed(newest))
    return list(session.execute(query.order_by(AuditEvent.seq)).scalars())


def count_events(session: Session, **filters) -> int:
    """How many events match the filters of `query_events` (without a limit)."""
    query = _filtered(**filters)
    return session.execute(select(func.count()).select_from(query.subquery())).scalar_one()


def _filtered(
    *, actor=None, action=None, object=None, subject=None, since=None, until=None, user=None, project=None, before=None
):
    query = select(AuditEvent)
    for column, value in ((AuditEvent.actor, actor), (AuditEvent.subject, subject)):
        if value is not None:
            query = query.where(column == value)
    for column, value in ((AuditEvent.action, action), (AuditEvent.object, object)):
        if value is not None:
            query = query.where(column.startswith(value[:-1]) if value.endswith("*") else column == value)
    if user is not None:
        query = query.where(or_(AuditEvent.actor == user, AuditEvent.object == f"user:{user}"))
    if project is not None:
        # Details are canonical JSON: the field reads exactly `"project":"<id>"`.
        field = canonical_json({"project": project})[1:-1]
        query = query.where(
            or_(AuditEvent.object == f"project:{project}", AuditEvent.details.contains(field, autoescape=True))
        )
    if since is not None:
        query = query.where(AuditEvent.at >= format_time(since))
    if until is not None:
        query = query.where(AuditEvent.at < format_time(until))
    if before is not None:
        query = query.where(AuditEvent.seq < before)
    return query


def event_as_dict(event: AuditEvent) -> dict:
    return {
        "seq": event.seq,
        "at": event.at,
        "actor": event.actor,
        "action": event.action,
        "object": event.object,
        "subject": event.subject,
        "details": json.loads(event.details),
        "hash": event.hash,
    }
