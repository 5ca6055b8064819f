"""`tre extract ...` and `tre innsyn`: project extracts, retention, and data-subject access."""

from __future__ import annotations

from tre.cli.central import FNR, read_fnr
from tre.cli.framework import arg, command, group, lazy, table
from tre.cli.progress import progress
from tre.enums import Role

extracts, innsyn = lazy("tre.linkage.extracts"), lazy("tre.linkage.innsyn")

group("extract", "build, list and purge project extracts")


def _zone(ctx):
    from tre.linkage.zone import CentralZone

    return CentralZone(ctx.settings, environ=ctx.environ, clock=ctx.clock)


@command(
    "extract build",
    help="build a project's extract from its approval in force into projects/<id>/data/",
    args=[arg("project", help="project id")],
    roles=[Role.ADMIN],
)
def extract_build(ctx, args):
    with progress(ctx, f"extract of {args.project}", names=extracts.BUILD_STEPS, log_lines=False) as report:
        result = extracts.build_extract(
            ctx.settings, _zone(ctx), ctx.store, args.project, actor=ctx.actor, progress=report
        )
    tables = ", ".join(f"{name} {rows:,}" for name, rows in result.tables.items())
    excluded = f"; {result.excluded_opt_out} left out by release-with-FNR opt-outs" if result.excluded_opt_out else ""
    ctx.emit(
        result.as_dict(),
        f"extract {result.extract_id} of {result.project_id} ({result.kind}, approval {result.approval_id} "
        f"v{result.approval_version}): {result.persons:,} persons{excluded}; tables: {tables}; in {result.path}",
    )


@command("extract list", help="extracts with their status, size and retention", roles=[Role.ADMIN])
def extract_list(ctx, args):
    from sqlalchemy import select

    from tre.models import Extract

    with ctx.store.transaction() as session:
        rows = [
            {
                "id": e.id,
                "project": e.project_id,
                "approval": f"{e.approval_id} v{e.approval_version}",
                "status": e.status.value,
                "persons": e.persons,
                "built_at": e.built_at.isoformat(),
                "purge_after": e.purge_after.isoformat() if e.purge_after else None,
            }
            for e in session.execute(select(Extract).order_by(Extract.id)).scalars()
        ]
    ctx.emit(
        rows,
        table(
            ["extract", "project", "approval", "status", "persons", "built", "purge after"],
            (
                [r["id"], r["project"], r["approval"], r["status"], r["persons"], r["built_at"][:16], r["purge_after"]]
                for r in rows
            ),
        ),
    )


@command("extract purge", help="delete extracts and key tables past their retention (§ 4-11)", roles=[Role.ADMIN])
def extract_purge(ctx, args):
    purged = extracts.purge_expired(ctx.settings, ctx.store, actor=ctx.actor, now=ctx.now())
    ctx.emit(
        purged,
        "\n".join(f"purged extract {p['extract']} of {p['project']}" for p in purged) or "nothing past its retention",
    )


@command(
    "innsyn",
    help="a data subject's access report: registered data, reservations, identity accesses, releases",
    args=[
        FNR,
        arg("--html", action="store_true", help="print a self-contained HTML page for the person"),
    ],
    roles=[Role.CUSTODIAN],
)
def innsyn_command(ctx, args):
    fnr = read_fnr(args.fnr)
    report = innsyn.build_access_report(ctx.settings, _zone(ctx), ctx.store, actor=ctx.actor, fnr=fnr)
    ctx.emit(report, innsyn.render_html(report) if args.html else innsyn.render_text(report))
