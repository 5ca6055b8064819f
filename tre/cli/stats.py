"""`tre stats ...`: the § 4-6 statistics (build, site, serve) and the § 3-3 feedback."""

from __future__ import annotations

from tre.cli.framework import arg, command, group, lazy, positive_int, table
from tre.cli.progress import progress
from tre.enums import Role

audit = lazy("tre.audit")

group("stats", "§ 4-6 statistics: build and check them, make the site, serve it; § 3-3 feedback to municipalities")


@command(
    "stats build",
    help="compute every indicator for every municipality, county and the country, check and protect every cell, "
    "record and publish them (JSON-stat, PC-Axis, CSV)",
    args=[
        arg(
            "--year",
            type=positive_int,
            action="append",
            metavar="YEAR",
            help="a year to build (repeat for more; default: every year the population register was delivered for)",
        )
    ],
    roles=[Role.ADMIN],
)
def stats_build(ctx, args):
    from tre.stats.build import build_statistics

    with progress(ctx, "statistics") as report:
        result = build_statistics(
            ctx.settings, ctx.store, actor=ctx.actor, years=args.year, clock=ctx.clock, progress=report
        )
    rows = [
        [
            t["indicator"],
            t["year"],
            t["cells"],
            t["hidden"],
            t["primary"],
            t["secondary"],
            f"{t['audit']['by_moves']}+{t['audit']['by_lp']}",
            t["checker_seconds"],
        ]
        for t in result.tables
    ]
    seconds = result.seconds

    def render(console):
        table(
            ["indicator", "year", "cells", "hidden", "primary", "secondary", "audit moves+LP", "check s"],
            rows,
            title=f"run {result.run}: {result.cells:,} cells, {result.hidden:,} hidden",
        )(console)
        console.print(
            f"published in {result.publication} ({seconds['total']:.1f} s: compute {seconds['compute']:.1f}, "
            f"check {seconds['check']:.1f}, write {seconds['write']:.1f}); make the site with `tre stats site`"
        )

    ctx.emit(result.as_dict(), render)


@command("stats site", help="make the static website of the published statistics", roles=[Role.ADMIN])
def stats_site(ctx, args):
    from tre.stats.site import build_site
    from tre.stats.web import site_url

    path = build_site(ctx.settings.stats_dir, ctx.settings.stats_vega_dir)
    ctx.emit(
        {"site": str(path), "url": site_url(ctx.settings)},
        f"site in {path}; `tre stats serve` serves it at {site_url(ctx.settings)}",
    )


@command(
    "stats feedback",
    help="write each municipality's § 3-3 feedback (rejects, reasons, counts against the population register, "
    "completeness against the previous year) from every delivery ingested",
    roles=[Role.ADMIN],
)
def stats_feedback(ctx, args):
    from tre.linkage.zone import CentralZone
    from tre.stats.feedback import build_feedback, write_feedback

    zone = CentralZone(ctx.settings, clock=ctx.clock)
    with zone.reading(ctx.store) as con:
        documents = build_feedback(con, zone.rejects_dir, now=ctx.now())
    path = write_feedback(ctx.settings.stats_dir, documents, ctx.now().strftime("%Y%m%d%H%M%S"))
    deliveries = sum(len(d["deliveries"]) for d in documents.values())
    with ctx.store.transaction() as session:
        audit.record(
            session,
            at=ctx.now(),
            actor=ctx.actor,
            action="stats.feedback",
            object="feedback",
            details={"municipalities": len(documents), "delivery_reports": deliveries},
        )
    ctx.emit(
        {"feedback": str(path), "municipalities": len(documents), "deliveries": deliveries},
        f"feedback for {len(documents)} municipalities ({deliveries} delivery reports) in {path}",
    )


@command(
    "stats runs",
    help="what each statistics run published: years, cells, hidden cells, versions",
    roles=[Role.ADMIN, Role.OFFICER],
)
def stats_runs(ctx, args):
    from tre.stats.record import open_record

    with open_record(ctx.settings.stats_dir, write=False) as record:
        frame = record.runs() if record is not None else None
    rows = [] if frame is None else frame.to_dict("records")
    ctx.emit(
        rows,
        table(
            ["run", "published", "by", "years", "cells", "hidden", "indicators", "parameters"],
            [
                [
                    r["run"],
                    f"{r['published_at']:%Y-%m-%d %H:%M}",
                    r["actor"],
                    " ".join(map(str, r["years"])),
                    r["cells"],
                    r["hidden"],
                    r["indicators_version"],
                    r["parameters_version"],
                ]
                for r in rows
            ],
        ),
    )


@command(
    "stats serve",
    help="serve the statistics site (public) and the municipalities' feedback (login): standalone on this machine, "
    "or (--hub) as the hub's service",
    args=[
        arg("--hub", action="store_true", help="run as the JupyterHub service tre-stats (hub OAuth login)"),
        arg("--port", type=int, help="port (default: the stats_port setting)"),
        arg("--ip", help="address (default: the stats_ip setting)"),
    ],
    roles=None,
    json=False,
)
def stats_serve(ctx, args):
    from tre.stats.web import serve

    serve(ctx.settings, hub=args.hub, ip=args.ip, port=args.port, info=ctx.info)
