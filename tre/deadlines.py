"""§ 4-8 deadlines: deliver within 30 working days of a complete application, 60 when linkage
with other registers is needed; otherwise send a preliminary reply with the reason and the
expected date.

An approval that expired or was revoked before anything was delivered has no deadline left:
it shows as `expired` or `revoked`, never as on time or overdue."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from tre import audit
from tre.enums import ApprovalStatus, ExtractStatus
from tre.errors import NotFound, UserError
from tre.models import ApplicationReply, Approval, Extract
from tre.workdays import add_working_days, working_days_between

WORKING_DAYS = 30
WORKING_DAYS_WITH_LINKAGE = 60
DUE_SOON = 5  # working days before the due date


@dataclass(frozen=True)
class Deadline:
    approval_id: str
    project_id: str
    application_complete: dt.date
    working_days: int
    due: dt.date
    status: str  # "on time", "due soon", "overdue", "delivered", "delivered late", "expired", "revoked"
    working_days_left: int
    delivered_on: dt.date | None
    preliminary_reply: dt.date | None
    expected: dt.date | None

    def as_dict(self) -> dict:
        return {k: (v.isoformat() if isinstance(v, dt.date) else v) for k, v in self.__dict__.items()}


def due_date(complete: dt.date, linkage: bool) -> dt.date:
    return add_working_days(complete, WORKING_DAYS_WITH_LINKAGE if linkage else WORKING_DAYS)


def deadline_for(session: Session, approval: Approval, today: dt.date) -> Deadline:
    days = WORKING_DAYS_WITH_LINKAGE if approval.linkage_needed else WORKING_DAYS
    due = due_date(approval.application_complete, approval.linkage_needed)
    first_extract = (
        session.execute(
            select(Extract.built_at)
            .where(Extract.approval_id == approval.id, Extract.status.in_([ExtractStatus.READY, ExtractStatus.PURGED]))
            .order_by(Extract.built_at)
        )
        .scalars()
        .first()
    )
    delivered = first_extract.date() if first_extract else None
    reply = (
        session.execute(
            select(ApplicationReply)
            .where(ApplicationReply.approval_id == approval.id, ApplicationReply.preliminary.is_(True))
            .order_by(ApplicationReply.sent_at.desc())
        )
        .scalars()
        .first()
    )
    left = working_days_between(today, due)
    if delivered:
        status = "delivered" if delivered <= due else "delivered late"
    elif approval.status == ApprovalStatus.REVOKED:
        status = "revoked"  # nothing may be delivered on it: no deadline runs
    elif approval.status == ApprovalStatus.EXPIRED or approval.valid_until < today:
        status = "expired"  # (also before the next sync marks it so)
    elif today > due:
        status = "overdue"
    elif left <= DUE_SOON:
        status = "due soon"
    else:
        status = "on time"
    return Deadline(
        approval_id=approval.id,
        project_id=approval.project_id,
        application_complete=approval.application_complete,
        working_days=days,
        due=due,
        status=status,
        working_days_left=left,
        delivered_on=delivered,
        preliminary_reply=reply.sent_at.date() if reply else None,
        expected=reply.expected_date if reply else None,
    )


def deadlines(session: Session, today: dt.date) -> list[Deadline]:
    approvals = session.execute(select(Approval).order_by(Approval.application_complete, Approval.id)).scalars()
    return [deadline_for(session, a, today) for a in approvals if a.application_complete is not None]


def record_preliminary_reply(
    session: Session, approval_id: str, *, reason: str, expected: dt.date, actor: str, now: dt.datetime
) -> ApplicationReply:
    """Record the preliminary reply § 4-8 requires when the deadline cannot be met."""
    approval = session.get(Approval, approval_id)
    if approval is None:
        raise NotFound(f"unknown approval {approval_id!r}: see `tre approvals list`")
    if not reason.strip():
        raise UserError("a preliminary reply needs a reason (--reason TEXT)")
    if expected <= now.date():
        raise UserError(f"the expected delivery date {expected.isoformat()} must be after today")
    reply = ApplicationReply(
        approval_id=approval_id, preliminary=True, reason=reason, expected_date=expected, sent_at=now, recorded_by=actor
    )
    session.add(reply)
    audit.record(
        session,
        at=now,
        actor=actor,
        action="approval.preliminary_reply",
        object=f"approval:{approval_id}",
        details={"expected": expected.isoformat()},
    )
    return reply
