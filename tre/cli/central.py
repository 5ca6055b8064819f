"""The central zone's commands: `tre ingest`, `tre linkage report`, `tre vault ...`, `tre backup ...`, `tre restore`."""

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
backups = lazy("tre.linkage.backups")

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
    help="put a new master key in force (key custodians): re-wrap the vault's data keys under it, or with "
    "--reencrypt replace the data keys too and encrypt every ID number again (a compromised key)",
    args=[
        arg(
            "--reencrypt",
            action="store_true",
            help="also replace the data keys: every ID number sealed again and every blind index recomputed, so "
            "that an old master key opens only old copies (backups) of the vault",
        )
    ],
    roles=[Role.CUSTODIAN],
)
def vault_rotate_key(ctx, args):
    from tre.linkage.keys import NEW_MASTER_KEY_ENV, key_source

    zone = _zone(ctx)
    done = vault.rotate_master_key(zone, ctx.store, actor=ctx.actor, reencrypt=args.reencrypt)
    source = key_source(ctx.settings, ctx.environ)
    if args.reencrypt:
        text = (
            f"replaced the vault's data keys and encrypted {done['reencrypted_identities']:,} ID numbers again under "
            f"master key {done['new_master_key']} (was {done['old_master_key']}); make a new backup (`tre backup "
            "create`): older backups open only with the old keys"
        )
    else:
        text = f"re-wrapped the vault's data keys: master key {done['old_master_key']} -> {done['new_master_key']}"
    if source.kind == "file":
        text += f" (the new key is in {source.path}; back it up)"
    elif source.kind == "env":
        text += f"; now put the value of {NEW_MASTER_KEY_ENV} in TRE_MASTER_KEY"
    ctx.emit(done, text)


group("backup", "consistent, encrypted copies of the installation (metadata store, central zone, release record)")


@command(
    "backup create",
    help="copy the metadata store, the central zone and the record of releases, online and consistent, into an "
    "encrypted archive; its key goes, wrapped by the master key, into a separate key file",
    args=[
        arg("--to", metavar="DIR", help="where the archive goes (default: setting backup_dir)"),
        arg(
            "--keys-to", metavar="DIR", help="where its key file goes, not beside it (default: setting backup_keys_dir)"
        ),
    ],
    roles=[Role.ADMIN],
)
def backup_create(ctx, args):
    done = backups.create(
        _zone(ctx),
        ctx.store,
        actor=ctx.actor,
        to=Path(args.to) if args.to else None,
        keys_to=Path(args.keys_to) if args.keys_to else None,
    )
    ctx.emit(
        done,
        f"backup {done['backup']}: {done['files']} files, {done['bytes']:,} bytes, {done['deliveries']} deliveries, "
        f"{done['release_records']} release records\n  archive  {done['archive']}\n  key      {done['key_file']}\n"
        f"Keep the two apart, and keep master key {done['master_key_id']}: all three are needed to restore.",
    )


KEY_FILE = arg("--key", metavar="FILE", help="the backup's key file (default: its name in setting backup_keys_dir)")


@command(
    "backup verify",
    help="decrypt a backup, check every file, open every database, recompute the audit chain and check that its "
    "parts are of one age (needs the master key it was made under)",
    args=[arg("archive", metavar="ARCHIVE", help="the backup archive (*.tre-backup)"), KEY_FILE],
    roles=[Role.ADMIN],
)
def backup_verify(ctx, args):
    done = backups.verify(ctx.settings, ctx.environ, Path(args.archive), key_file=Path(args.key) if args.key else None)
    ctx.emit(
        done,
        f"backup {done['backup']} of {done['created_at'][:19]} by {done['created_by']}: whole and consistent "
        f"({done['files']} files, {done['deliveries']} deliveries, {done['release_records']} release records"
        + (f", {done['audit_events']} audit events verified" if done["audit_events"] is not None else "")
        + ")",
    )


@command(
    "restore",
    help="restore a backup into a fresh installation (TRE_HOME, TRE_DB_URL): checked whole before anything is put in "
    "place; needs the archive, its key file and the master key it was made under",
    args=[arg("archive", metavar="ARCHIVE", help="the backup archive (*.tre-backup)"), KEY_FILE],
    roles=None,
    needs_store=False,
)
def restore_command(ctx, args):
    done = backups.restore(
        ctx.settings, ctx.environ, Path(args.archive), key_file=Path(args.key) if args.key else None, clock=ctx.clock
    )
    ctx.emit(
        done,
        f"restored backup {done['backup']} of {done['created_at'][:19]} into {ctx.settings.home}: {done['files']} "
        f"files, {done['deliveries']} deliveries; run `tre audit verify` and `tre linkage report` to see it",
    )
