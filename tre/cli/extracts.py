"""`tre extract ...`, `tre innsyn` and `tre releases ...`: project extracts, retention,
data-subject access, and the record of releases (§ 4-10) for an authority's inspection."""

from __future__ import annotations

from pathlib import Path

from tre.cli.central import FNR, read_fnr
from tre.cli.framework import arg, command, group, iso_date, lazy, table
from tre.cli.progress import progress
from tre.enums import Role
from tre.errors import Problems

extracts, innsyn = lazy("tre.linkage.extracts"), lazy("tre.linkage.innsyn")
releases = lazy("tre.linkage.releases")

group("extract", "build, list and purge project extracts")


def _zone(ctx):
    from tre.linkage.zone import CentralZone

    return CentralZone(ctx.settings, environ=ctx.environ, clock=ctx.clock)


@command(
    "extract build",
    help="build a project's extract from its approval in force into projects/<id>/data/; a § 4-5 build "
    "(with ID numbers) first waits for a key custodian's `tre extract approve`",
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


@command(
    "extract pending",
    help="§ 4-5 builds waiting for a key custodian (project, approval version, persons and their digest, REK reference)",
    roles=[Role.ADMIN, Role.CUSTODIAN],
)
def extract_pending(ctx, args):
    rows = extracts.pending_builds(ctx.store)
    ctx.emit(
        rows,
        table(
            ["build", "project", "approval", "persons", "persons digest", "reference", "asked by", "approved by"],
            (
                [r["build"], r["project"], f"{r['approval']} v{r['version']}", r["persons"]]
                + [(r["persons_digest"] or "-")[:16], r["reference"], r["requested_by"], r["approved_by"] or "-"]
                for r in rows
            ),
        ),
    )


@command(
    "extract approve",
    help="key custodian: approve one § 4-5 build (it decrypts ID numbers; § 5-2) that another user asked for",
    args=[
        arg("project", help="project id"),
        arg("--build", type=int, required=True, metavar="N", help="the build number `tre extract build` gave"),
    ],
    roles=[Role.CUSTODIAN],
)
def extract_approve(ctx, args):
    days = ctx.settings.build_approval_days
    row = extracts.approve_build(ctx.store, args.project, args.build, actor=ctx.actor, now=ctx.now(), valid_days=days)
    ctx.emit(
        row,
        f"approved build {row['build']} of {row['project']}: {row['persons']:,} persons (digest "
        f"{row['persons_digest'][:16]}) with ID numbers under {row['approval']} v{row['version']} "
        f"({row['reference']}), asked by {row['requested_by']}; it decrypts once, for exactly these persons, when "
        f"they run `tre extract build {row['project']}` again within {days} days",
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


group("retention", "§ 4-11 storage limits: warn ahead, delete at the end (run daily by a timer)")


@command(
    "retention run",
    help="warn projects whose linked data set nears its storage limit and, past it, delete data/, work/, "
    "members' homes, unreleased requests, central copies of requests (but released files) and the key table, keep the release record and lock the project (§ 4-11); "
    "idempotent: run it daily (a systemd timer or cron line: docs/extracts.md)",
    roles=[Role.ADMIN],
)
def retention_run(ctx, args):
    from tre import retention

    done = retention.run(ctx.settings, ctx.store, actor=ctx.actor, now=ctx.now())
    lines = [
        f"{d['project']}: retention ends {d['deadline']}, warned"
        if d["action"] == "warned"
        else f"{d['project']}: retention ended {d['deadline']}, could not finish"
        if d["action"] == "failed"
        else f"{d['project']}: retention ended {d['deadline']}, deleted "
        + (", ".join(k for k, v in d["deleted"].items() if v) or "nothing left")
        + ", locked"
        for d in done
    ]
    ctx.emit(done, "\n".join(lines) or "no project to warn or delete")
    problems = retention.incomplete(done)
    if problems:
        raise Problems(
            "retention incomplete (audited as retention.incomplete; every other step and project was done; "
            "remove what stayed, e.g. `chattr -i`, and run it again)",
            problems,
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


group("releases", "the record of releases (§ 4-10): list it, export it for an authority's inspection")

INSPECTORS = [Role.ADMIN, Role.CUSTODIAN]
FILTERS = [
    arg("--project", metavar="ID", help="only releases from this project"),
    arg("--from", dest="first_day", type=iso_date, metavar="DAY", help="released on or after this day (YYYY-MM-DD)"),
    arg("--to", dest="last_day", type=iso_date, metavar="DAY", help="released on or before this day (YYYY-MM-DD)"),
]


def _inspect(ctx, args, action: str, **details) -> list[dict]:
    """The filtered record (verified first), with an audit event saying who looked at what."""
    from tre import audit

    rows = releases.inspection(
        ctx.settings, ctx.store, project=args.project, first_day=args.first_day, last_day=args.last_day
    )
    with ctx.store.transaction() as session:
        audit.record(
            session,
            at=ctx.now(),
            actor=ctx.actor,
            action=action,
            object="release-record",
            details={
                "project": args.project,
                "from": args.first_day and args.first_day.isoformat(),
                "to": args.last_day and args.last_day.isoformat(),
                "records": len(rows),
                **details,
            },
        )
    return rows


@command(
    "releases list",
    help="the release records, one per release: recipient, legal basis, how many persons, digests (no persons)",
    args=FILTERS,
    roles=INSPECTORS,
)
def releases_list(ctx, args):
    rows = _inspect(ctx, args, "release.inspect")
    ctx.emit(
        rows,
        table(
            ["record", "released", "project", "kind", "recipient", "legal basis", "persons", "reference"],
            (
                [
                    r["record"],
                    r["released_at"][:16],
                    r["project"],
                    r["kind"],
                    r["recipient"],
                    r["legal_basis"],
                    r["persons"],
                    r["reference"],
                ]
                for r in rows
            ),
        ),
    )


@command(
    "releases export",
    help="write the release records to a CSV or JSON file for an authority (per release: counts and digests, no persons)",
    args=[
        *FILTERS,
        arg("--format", choices=["csv", "json"], default="csv", help="the file's format (default: csv)"),
        arg("--output", type=Path, required=True, metavar="FILE", help="the file to write (not overwritten)"),
    ],
    roles=INSPECTORS,
)
def releases_export(ctx, args):
    import json
    import os
    import tempfile

    from tre.errors import UsageError

    if args.output.exists() or args.output.is_symlink():
        raise UsageError(f"{args.output} exists: name a new file")
    if not args.output.parent.is_dir():
        raise UsageError(f"{args.output.parent} is not a folder: name a file in an existing folder")
    rows = _inspect(ctx, args, "release.export", format=args.format)
    text = releases.inspection_csv(rows) if args.format == "csv" else json.dumps(rows, indent=2, ensure_ascii=False)
    try:
        descriptor, partial = tempfile.mkstemp(prefix=f".{args.output.name}.", dir=args.output.parent)  # 0600
    except OSError as error:
        raise UsageError(f"cannot write in {args.output.parent} ({error.strerror}): name another folder") from None
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as out:
            out.write(text)
        os.link(partial, args.output)  # never replaces a file made meanwhile
    except FileExistsError:
        raise UsageError(f"{args.output} exists: name a new file") from None
    finally:
        os.unlink(partial)
    ctx.emit(
        {"file": str(args.output), "records": len(rows), "format": args.format},
        f"{len(rows)} release record(s) written to {args.output}",
    )
