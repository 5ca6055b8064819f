"""`tre approvals ...` and `tre fees ...`: approval records, § 4-8 deadlines, § 4-9 fees."""

from __future__ import annotations

from tre.cli.framework import arg, command, group, iso_date, lazy, table
from tre.enums import Role
from tre.errors import Problems, UsageError

approvals, deadlines, fees = lazy("tre.approvals"), lazy("tre.deadlines"), lazy("tre.fees")

group("approvals", "check and sync approval records; deadlines (§ 4-8)")
group("fees", "handling time, costs and invoices per application (§ 4-9)")

ADMIN = [Role.ADMIN]


@command("approvals check", help="validate every approval file and report all problems at once", roles=ADMIN)
def approvals_check(ctx, args):
    directory = ctx.settings.approvals_dir
    with ctx.store.transaction() as session:
        users = approvals.known_user_names(session)
    records, problems = approvals.read_records(directory, known_users=users, today=ctx.now().date())
    data = {"directory": str(directory), "records": [r.id for r in records], "problems": [p.__dict__ for p in problems]}
    ctx.emit(
        data, "\n".join([str(p) for p in problems] or [f"{len(records)} approval file(s) in {directory}: no problems"])
    )
    if problems:
        raise Problems(f"approvals in {directory}", [str(p) for p in problems])


@command("approvals sync", help="load approvals/ into the store: versions, revocations, expiry, locks", roles=ADMIN)
def approvals_sync(ctx, args):
    with ctx.store.transaction() as session:
        result = approvals.sync(session, ctx.settings.approvals_dir, actor=ctx.actor, now=ctx.now())
    lines = [
        f"{label}: {', '.join(ids)}"
        for label, ids in (
            ("added", result.added),
            ("changed", result.changed),
            ("unchanged", result.unchanged),
            ("revoked", result.revoked),
            ("expired", result.expired),
            ("projects locked", result.locked_projects),
            ("projects unlocked", result.unlocked_projects),
        )
        if ids
    ] + [f"skipped {p}" for p in result.problems]
    ctx.emit(result.as_dict(), "\n".join(lines) or "no approval files")
    if result.problems:
        raise Problems("approvals sync skipped files with problems", [str(p) for p in result.problems])


@command("approvals list", help="the approvals in the store with status and validity", roles=[Role.ADMIN, Role.OFFICER])
def approvals_list(ctx, args):
    from sqlalchemy import select

    from tre.models import Approval

    with ctx.store.transaction() as session:
        rows = [
            {
                "id": a.id,
                "project": a.project_id,
                "kind": a.kind.value,
                "status": a.status.value,
                "version": a.version,
                "valid_from": a.valid_from.isoformat(),
                "valid_until": a.valid_until.isoformat(),
                "reference": a.reference,
            }
            for a in session.execute(select(Approval).order_by(Approval.id)).scalars()
        ]
    ctx.emit(
        rows,
        table(
            ["approval", "project", "kind", "status", "version", "valid", "reference"],
            (
                [
                    r["id"],
                    r["project"],
                    r["kind"],
                    r["status"],
                    r["version"],
                    f"{r['valid_from']} – {r['valid_until']}",
                    r["reference"],
                ]
                for r in rows
            ),
        ),
    )


@command("approvals deadlines", help="§ 4-8 due dates: 30 working days, 60 with linkage", roles=ADMIN)
def approvals_deadlines(ctx, args):
    with ctx.store.transaction() as session:
        rows = [d.as_dict() for d in deadlines.deadlines(session, ctx.now().date())]

    def reply(r):
        return f"sent {r['preliminary_reply']}, expected {r['expected']}" if r["preliminary_reply"] else ""

    ctx.emit(
        rows,
        table(
            ["approval", "complete", "working days", "due", "status", "left", "preliminary reply"],
            (
                [
                    r["approval_id"],
                    r["application_complete"],
                    r["working_days"],
                    r["due"],
                    r["status"],
                    r["working_days_left"],
                    reply(r),
                ]
                for r in rows
            ),
        ),
    )


@command(
    "approvals reply",
    help="record the preliminary reply § 4-8 requires when a deadline will not be met",
    args=[
        arg("approval", help="approval id"),
        arg(
            "--preliminary",
            action="store_true",
            required=True,
            help="a preliminary reply (the only kind recorded here)",
        ),
        arg("--reason", required=True, help="why the deadline cannot be met"),
        arg("--expected", required=True, type=iso_date, help="expected delivery date, YYYY-MM-DD"),
    ],
    roles=ADMIN,
)
def approvals_reply(ctx, args):
    with ctx.store.transaction() as session:
        deadlines.record_preliminary_reply(
            session, args.approval, reason=args.reason, expected=args.expected, actor=ctx.actor, now=ctx.now()
        )
    ctx.emit(
        {"approval": args.approval, "expected": args.expected.isoformat()},
        f"preliminary reply recorded for {args.approval}",
    )


@command(
    "fees record",
    help="record handling time (--hours with --rate) or another cost (--cost) for an application",
    args=[
        arg("approval", help="approval id"),
        arg("--hours", type=float, help="hours of handling"),
        arg("--rate", type=float, help="hourly rate in NOK"),
        arg("--cost", type=float, help="another actual cost in NOK (compute, delivery ...)"),
        arg("--note", default="", help="what it was"),
    ],
    roles=ADMIN,
)
def fees_record(ctx, args):
    if (args.hours is None) == (args.cost is None) or (args.hours is not None and args.rate is None):
        raise UsageError("give either --hours with --rate, or --cost")
    with ctx.store.transaction() as session:
        if args.hours is not None:
            fees.record_time(
                session,
                args.approval,
                hours=args.hours,
                rate_nok=args.rate,
                note=args.note,
                actor=ctx.actor,
                now=ctx.now(),
            )
        else:
            fees.record_cost(
                session, args.approval, amount_nok=args.cost, note=args.note, actor=ctx.actor, now=ctx.now()
            )
        data = fees.account(session, args.approval).as_dict()
    ctx.emit(
        data, f"{args.approval}: actual cost {data['actual_cost_nok']:.2f} NOK, invoiced {data['invoiced_nok']:.2f} NOK"
    )


@command(
    "fees invoice",
    help="record an invoice; refused above the recorded actual cost (§ 4-9)",
    args=[arg("approval"), arg("--amount", type=float, required=True, help="NOK"), arg("--note", default="")],
    roles=ADMIN,
)
def fees_invoice(ctx, args):
    with ctx.store.transaction() as session:
        fees.invoice(session, args.approval, amount_nok=args.amount, note=args.note, actor=ctx.actor, now=ctx.now())
        data = fees.account(session, args.approval).as_dict()
    ctx.emit(
        data, f"{args.approval}: invoiced {data['invoiced_nok']:.2f} of actual cost {data['actual_cost_nok']:.2f} NOK"
    )


@command(
    "fees show", help="hours, actual cost, invoices and estimate of an application", args=[arg("approval")], roles=ADMIN
)
def fees_show(ctx, args):
    with ctx.store.transaction() as session:
        data = fees.account(session, args.approval).as_dict()
    ctx.emit(data, table(["", "NOK / hours"], [[k, v] for k, v in data.items()]))
