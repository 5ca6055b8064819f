"""§ 4-9 fees: record handling time and costs per application; an invoice may not exceed the
recorded actual cost of handling, extracting and delivering for that application."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.orm import Session

from tre import audit
from tre.errors import NotFound, UserError
from tre.models import Approval, FeeEntry

TIME, COST, INVOICE = "time", "cost", "invoice"


@dataclass(frozen=True)
class FeeAccount:
    approval_id: str
    hours: Decimal
    actual_cost: Decimal  # time valued at its rate, plus other costs
    invoiced: Decimal
    estimate: Decimal

    @property
    def invoiceable(self) -> Decimal:
        return self.actual_cost - self.invoiced

    def as_dict(self) -> dict:
        return {
            "approval_id": self.approval_id,
            "hours": float(self.hours),
            "actual_cost_nok": float(self.actual_cost),
            "invoiced_nok": float(self.invoiced),
            "invoiceable_nok": float(self.invoiceable),
            "estimate_nok": float(self.estimate),
        }


def _approval(session: Session, approval_id: str) -> Approval:
    approval = session.get(Approval, approval_id)
    if approval is None:
        raise NotFound(f"unknown approval {approval_id!r}: see `tre approvals list`")
    return approval


def _positive(value: float, what: str) -> Decimal:
    amount = Decimal(str(value))
    if not amount.is_finite() or amount <= 0:  # "nan" and "inf" parse as floats
        raise UserError(f"{what} must be a number more than 0")
    return amount


def account(session: Session, approval_id: str) -> FeeAccount:
    approval = _approval(session, approval_id)
    entries = session.execute(select(FeeEntry).where(FeeEntry.approval_id == approval_id)).scalars().all()

    def total(kind, attr="amount_nok"):
        return sum((Decimal(str(getattr(e, attr) or 0)) for e in entries if e.kind == kind), Decimal(0))

    return FeeAccount(
        approval_id=approval_id,
        hours=total(TIME, "hours"),
        actual_cost=total(TIME) + total(COST),
        invoiced=total(INVOICE),
        estimate=Decimal(str(approval.document.get("fee_estimate_nok", 0))),
    )


def record_time(session, approval_id, *, hours: float, rate_nok: float, note: str, actor: str, now: dt.datetime):
    _approval(session, approval_id)
    h, rate = _positive(hours, "hours"), _positive(rate_nok, "the hourly rate")
    return _add(session, approval_id, TIME, h * rate, note, actor, now, hours=h)


def record_cost(session, approval_id, *, amount_nok: float, note: str, actor: str, now: dt.datetime):
    _approval(session, approval_id)
    return _add(session, approval_id, COST, _positive(amount_nok, "the cost"), note, actor, now)


def invoice(session, approval_id, *, amount_nok: float, note: str, actor: str, now: dt.datetime):
    """Record an invoice; refused when it would bring invoices above the actual cost."""
    amount = _positive(amount_nok, "the invoice amount")
    current = account(session, approval_id)
    if amount > current.invoiceable:
        raise UserError(
            f"invoice of {amount} NOK for {approval_id} refused: § 4-9 allows at most the actual cost; "
            f"recorded cost {current.actual_cost} NOK, already invoiced {current.invoiced} NOK"
        )
    return _add(session, approval_id, INVOICE, amount, note, actor, now)


def _add(session, approval_id, kind, amount, note, actor, now, hours=None) -> FeeEntry:
    entry = FeeEntry(
        approval_id=approval_id,
        kind=kind,
        hours=hours,
        amount_nok=amount,
        note=note,
        recorded_at=now,
        recorded_by=actor,
    )
    session.add(entry)
    details = {"kind": kind, "amount_nok": str(amount)} | ({"hours": str(hours)} if hours is not None else {})
    audit.record(session, at=now, actor=actor, action=f"fee.{kind}", object=f"approval:{approval_id}", details=details)
    return entry
