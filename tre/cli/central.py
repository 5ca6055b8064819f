"""The central zone's commands: `tre ingest`, `tre linkage report`, `tre vault ...`."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

from tre.cli.framework import ANY_ROLE, Context, arg, command, group, lazy
from tre.cli.progress import progress
from tre.enums import Role
from tre.errors import DeliveryError
from tre.registers import SOURCES

if TYPE_CHECKING:
    from tre.linkage.zone import CentralZone

audit, quality, vault = lazy("tre.audit"), lazy("tre.linkage.quality"), lazy("tre.linkage.vault")

group("linkage", "the central linkage and quality report (§ 3-3)")
group("vault", "the identity vault: look-ups and decryption (key custodians), key rotation")


def _zone(ctx: Context) -> CentralZone:
    from tre.linkage.zone import CentralZone

    return CentralZone(ctx.settings, environ=ctx.environ, clock=ctx.clock)


@command(
    "ingest",
    help="ingest register deliveries (data files, manifests, or folders of them) into the central zone",
    args=[
        arg("paths", nargs="+", metavar="PATH", help="a delivery's data file or manifest, or a folder of deliveries"),
        arg("--source", choices=sorted(SOURCES), help="refuse deliveries of any other source"),
    ],
    roles=[Role.ADMIN],
)
def ingest_command(ctx, args):
    from tre.linkage.deliveries import find_deliveries
    from tre.linkage.ingest import ingest

    paths = [Path(p) for p in args.paths]
    names = [getattr(d, "name", None) or d.file for d in find_deliveries(paths, source=args.source)]
    with progress(ctx, "ingest", names=names, unit="deliveries") as report:
        outcomes = ingest(_zone(ctx), ctx.store, paths, actor=ctx.actor, source=args.source, progress=report)
    ctx.emit([o.as_dict() for o in outcomes], "\n".join(o.message for o in outcomes))
    failed = [o for o in outcomes if o.status == "failed"]
    if failed:
        raise DeliveryError(
            f"{len(failed)} of {len(outcomes)} deliveries failed, nothing of them stored; the first: {failed[0].message}"
        )


@command(
    "linkage report",
    help="rows, persons, link rate, rejects and findings against the population register, per source",
    args=[
        arg(
            "--by-municipality",
            metavar="DIR",
            help="also write one quality report per reporting municipality into DIR (§ 3-3)",
        )
    ],
    roles=[Role.ADMIN],
)
def linkage_report(ctx, args):
    zone = _zone(ctx)
    with zone.reading(ctx.store) as con:
        report = quality.build_report(con, now=ctx.now())
        written = []
        if args.by_municipality:
            written = quality.build_municipality_reports(
                con, zone.rejects_dir, Path(args.by_municipality), now=ctx.now()
            )
    if args.by_municipality:
        report["municipality_reports"] = {"dir": str(args.by_municipality), "files": len(written)}
        with ctx.store.transaction() as session:
            audit.record(
                session,
                at=ctx.now(),
                actor=ctx.actor,
                action="linkage.municipality_reports",
                object=f"dir:{args.by_municipality}",
                details={"files": len(written)},
            )
    text = quality.render_report(report)
    if args.by_municipality:
        text += f"wrote {len(written)} municipality reports to {args.by_municipality}\n"
    ctx.emit(report, text)


REASON = arg("--reason", required=True, help="why (at least 10 characters); it goes to the person's access log")


FNR = arg(
    "--fnr",
    required=True,
    metavar="NUMBER",
    help="the ID number (FNR or D-number); `-` reads it from standard input, out of the shell history",
)


def read_fnr(value: str) -> str:
    """The ID number given as --fnr: `-` reads it from standard input."""
    return sys.stdin.readline().strip() if value == "-" else value


@command(
    "vault lookup",
    help="find the pid of the person with an ID number (key custodians; logged to the person's access log)",
    args=[FNR, REASON],
    roles=ANY_ROLE,  # the vault checks the custodian role itself, so that a refusal is logged person-linked
)
def vault_lookup(ctx, args):
    pid = vault.lookup(_zone(ctx), ctx.store, actor=ctx.actor, fnr=read_fnr(args.fnr), reason=args.reason)
    ctx.emit({"found": pid is not None, "pid": pid}, f"pid {pid}" if pid else "no person with that number in the vault")


@command(
    "vault reveal",
    help="decrypt the ID numbers of a person (key custodians; logged to the person's access log)",
    args=[arg("--pid", required=True, help="the person's pid"), REASON],
    roles=ANY_ROLE,
)
def vault_reveal(ctx, args):
    numbers = vault.reveal(_zone(ctx), ctx.store, actor=ctx.actor, pid=args.pid, reason=args.reason)
    rows = [{"number": n.number, "kind": n.kind, "current": n.current} for n in numbers]
    ctx.emit(
        {"pid": args.pid, "numbers": rows},
        "\n".join(f"{n.number}  {n.kind:<4} {'current' if n.current else 'replaced'}" for n in numbers),
    )


@command(
    "vault rotate-key",
    help="re-wrap the vault's data keys under a new master key (key custodians)",
    roles=[Role.CUSTODIAN],
)
def vault_rotate_key(ctx, args):
    from tre.linkage.keys import NEW_MASTER_KEY_ENV, key_source

    zone = _zone(ctx)
    old, new = vault.rotate_master_key(zone, ctx.store, actor=ctx.actor)
    source = key_source(ctx.settings, ctx.environ)
    text = f"re-wrapped the vault's data keys: master key {old} -> {new}"
    if source.kind == "file":
        text += f" (the new key is in {source.path}; back it up)"
    elif source.kind == "env":
        text += f"; now put the value of {NEW_MASTER_KEY_ENV} in TRE_MASTER_KEY"
    ctx.emit({"old_master_key": old, "new_master_key": new, "source": source.kind}, text)
