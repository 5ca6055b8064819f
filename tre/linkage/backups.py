"""Backups of an installation: a consistent, encrypted copy, verified, and restored elsewhere.

`create` copies, online, everything an installation cannot rebuild:

- the metadata store (users, approvals, deliveries, extracts, requests, reviews, the record of
  releases, the audit chain): SQLite through its backup API, PostgreSQL with `pg_dump`;
- the central zone: the identity vault, the register store, the persons of the record of
  releases, the projects' key tables, the rejects files;
- the release bundles (`exports_dir`) and, where this installation has them, the central
  copies of queued outputs (`outputs_dir`).

At a consistent point: extract builds are held at their gate (the ones under way finish
first), the zone is locked against writers (an ingest locks it one delivery at a time, so the
backup waits at most for one delivery, and that delivery then waits for the copy), and the
record of releases is locked (both of its phases run under that lock). Under those locks the
metadata store is snapshotted, so that it is in step with the zone: no delivery, extract or
release can land in one and not the other.

The archive is a tar stream encrypted with AES-256-GCM in chunks under a fresh random backup
key (each chunk authenticated with the archive's id, its index and whether it is the last, so
that a chunk changed, moved, dropped or a truncated archive fails). The backup key is wrapped
by the installation's master key (the key hierarchy the vault's data keys hang from) and
written to a separate key file, in another folder than the archive: the archive alone, or with
its key file, opens nothing without the master key, and the master key is never in a backup.

`verify` decrypts the whole archive into a private scratch folder, checks every file against
the archive's manifest, opens every database, recomputes the audit chain, and checks that the
zone, the metadata store and the record of releases are of one age. `restore` does the same
into a fresh home and then moves the files into place.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import os
import shutil
import sqlite3
import struct
import subprocess
import tarfile
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import duckdb
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import func, select
from sqlalchemy.engine import make_url

from tre import audit
from tre.config import Settings, ensure_private_dir
from tre.db import Store
from tre.enums import DeliveryStatus
from tre.errors import ConfigError, IntegrityError, UserError
from tre.linkage import keys as vault_keys
from tre.linkage import releases, vault
from tre.linkage.store import literal
from tre.linkage.zone import CentralZone, build_gate
from tre.models import AuditEvent, Delivery, ReleaseRecord

FORMAT = "tre-backup/1"
KEY_FORMAT = "tre-backup-key/1"
SUFFIX = ".tre-backup"
KEY_SUFFIX = ".key.json"
MAGIC = b"TRE-BACKUP\x00\x01"
CHUNK = 4 << 20  # plaintext bytes per encrypted chunk
NONCE = 12
TAG = 16
MANIFEST = "backup.json"
SQLITE_MEMBER = "metadata/tre.sqlite"
PG_MEMBER = "metadata/postgresql.dump"
CENTRAL_FILES = ("vault.duckdb", "registers.duckdb", releases.RELEASES_FILE)
TOP_FOLDERS = ("metadata", "central", "exports", "outputs")
RESTORE_ACTOR = "tre-restore"


# --- the encrypted stream ------------------------------------------------------------------


def _aad(header: bytes, index: int, final: bool) -> bytes:
    return header + struct.pack(">QB", index, final)


class _SealingWriter:
    """A file-like sink: what is written goes out in AES-GCM chunks (nonce ‖ ciphertext ‖ tag)
    after a header (magic ‖ backup id ‖ chunk size); the last chunk, possibly empty, is marked."""

    def __init__(self, out, key: bytes, backup_id: bytes):
        self.out, self.aead = out, AESGCM(key)
        self.header = MAGIC + backup_id + struct.pack(">I", CHUNK)
        self.out.write(self.header)
        self.buffer = bytearray()
        self.index = 0

    def write(self, data) -> int:
        self.buffer += data
        while len(self.buffer) > CHUNK:  # keep at least one byte back: the last chunk is marked
            self._seal(bytes(self.buffer[:CHUNK]), final=False)
            del self.buffer[:CHUNK]
        return len(data)

    def _seal(self, plain: bytes, *, final: bool) -> None:
        nonce = os.urandom(NONCE)
        self.out.write(nonce + self.aead.encrypt(nonce, plain, _aad(self.header, self.index, final)))
        self.index += 1

    def close(self) -> None:
        self._seal(bytes(self.buffer), final=True)
        self.buffer = bytearray()


class _OpeningReader:
    """The reverse of `_SealingWriter`: `read(n)` gives plaintext, every chunk authenticated."""

    def __init__(self, source, key: bytes):
        self.source, self.aead = source, AESGCM(key)
        self.header = source.read(len(MAGIC) + 16 + 4)
        if len(self.header) != len(MAGIC) + 20 or not self.header.startswith(MAGIC):
            raise IntegrityError("not a tre backup archive (its header is wrong)")
        self.backup_id = self.header[len(MAGIC) : len(MAGIC) + 16]
        (self.chunk,) = struct.unpack(">I", self.header[-4:])
        self.pending = source.read(NONCE + self.chunk + TAG)
        self.plain = b""
        self.index = 0
        self.finished = False

    def read(self, n: int = -1) -> bytes:
        while not self.finished and (n < 0 or len(self.plain) < n):
            self._open_next()
        if n < 0:
            out, self.plain = self.plain, b""
        else:
            out, self.plain = self.plain[:n], self.plain[n:]
        return out

    def _open_next(self) -> None:
        sealed = self.pending
        following = self.source.read(NONCE + self.chunk + TAG)
        final = not following
        if len(sealed) < NONCE + TAG:
            raise IntegrityError("the backup archive is truncated")
        try:
            plain = self.aead.decrypt(sealed[:NONCE], sealed[NONCE:], _aad(self.header, self.index, final))
        except InvalidTag:
            raise IntegrityError(
                f"the backup archive's chunk {self.index} does not authenticate: the archive was changed, truncated, "
                "or this is not its key"
            ) from None
        self.plain += plain
        self.pending, self.index, self.finished = following, self.index + 1, final


class _Hashing:
    """Passes writes (or reads) through and hashes them."""

    def __init__(self, f):
        self.f, self.sha = f, hashlib.sha256()
        self.size = 0

    def write(self, data) -> int:
        self.sha.update(data)
        self.size += len(data)
        return self.f.write(data)

    def read(self, n: int = -1) -> bytes:
        data = self.f.read(n)
        self.sha.update(data)
        self.size += len(data)
        return data


def _wrap_context(backup_id: bytes) -> bytes:
    return b"tre-backup-key:" + backup_id


# --- create ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Member:
    name: str  # the path in the archive
    path: Path  # where it is now


def create(
    zone: CentralZone, metadata: Store, *, actor: str, to: Path | None = None, keys_to: Path | None = None
) -> dict:
    """Make a backup (see the module docstring); returns what it holds and where it went."""
    settings = zone.settings
    to = Path(to or settings.backup_dir)
    keys_to = Path(keys_to or settings.backup_keys_dir)
    if to.resolve() == keys_to.resolve():
        raise UserError(
            f"the backup's key would be written beside its archive ({to}): give the keys another folder "
            "(--keys-to or TRE_BACKUP_KEYS_DIR)"
        )
    if to.resolve().is_relative_to(settings.central_dir.resolve()):
        raise UserError(f"{to} is inside the central zone: write backups somewhere else (--to or TRE_BACKUP_DIR)")
    ensure_private_dir(to, "the backup folder")
    ensure_private_dir(keys_to, "the backup key folder")
    now = zone.clock()
    name = _free_name(to, keys_to, f"tre-backup-{now.astimezone(dt.UTC):%Y%m%dT%H%M%SZ}")
    backup_id, key = os.urandom(16), AESGCM.generate_key(bit_length=256)
    archive = to / (name + SUFFIX)
    partial = to / (name + SUFFIX + ".partial")
    with build_gate(settings, exclusive=True), zone.consistent(metadata), releases.locked(settings, write=False):
        master, vault_master = _masters(zone)
        staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=to))
        try:
            manifest = _snapshot_facts(zone, metadata)
            members = [_metadata_snapshot(metadata, staging), *_central_members(settings)]
            with open(partial, "wb") as raw:
                os.chmod(partial, 0o600)
                hashed = _Hashing(raw)
                sealing = _SealingWriter(hashed, key, backup_id)
                files = _write_tar(sealing, members, manifest, backup_id, now, actor, vault_master)
                sealing.close()
                raw.flush()
                os.fsync(raw.fileno())
        except BaseException:
            partial.unlink(missing_ok=True)
            raise
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    os.replace(partial, archive)
    key_file = keys_to / (name + KEY_SUFFIX)
    _write_private(
        key_file,
        json.dumps(
            {
                "format": KEY_FORMAT,
                "backup": name,
                "backup_id": backup_id.hex(),
                "created_at": now.isoformat(),
                "master_key_id": master.key_id,
                "wrapped_key": base64.b64encode(master.wrap(key, _wrap_context(backup_id))).decode("ascii"),
                "archive_sha256": hashed.sha.hexdigest(),
            },
            indent=2,
        )
        + "\n",
    )
    result = {
        "backup": name,
        "archive": str(archive),
        "key_file": str(key_file),
        "bytes": hashed.size,
        "files": files,
        "deliveries": len(manifest["zone"]["deliveries"]),
        "release_records": manifest["metadata"]["release_records"],
        "master_key_id": master.key_id,
    }
    with metadata.transaction() as session:
        audit.record(
            session,
            at=now,
            actor=actor,
            action="backup.create",
            object=f"backup:{name}",
            details={
                "files": files,
                "bytes": hashed.size,
                "deliveries": result["deliveries"],
                "sha256": audit.digest(hashed.sha.hexdigest()),
                "master_key_id": master.key_id,
            },
        )
    return result


def _free_name(to: Path, keys_to: Path, base: str) -> str:
    name, n = base, 1
    while (to / (name + SUFFIX)).exists() or (keys_to / (name + KEY_SUFFIX)).exists():
        n += 1
        name = f"{base}-{n}"
    return name


def _masters(zone: CentralZone):
    """(the master key to wrap the backup key with, the id of the one that wraps the vault's
    data keys or None): the same key, the one in force."""
    settings, environ = zone.settings, zone.environ
    if zone.vault_path.exists():
        con = duckdb.connect()
        try:
            con.execute(f"ATTACH {literal(str(zone.vault_path))} AS vault (READ_ONLY)")
            master = vault.current_master(con, settings, environ)
        finally:
            con.close()
        if master is not None:
            return master, master.key_id
    # Nothing was ever ingested: the master key the first ingest would make.
    return vault_keys.load_master_key(settings, environ, create=True), None


def _snapshot_facts(zone: CentralZone, metadata: Store) -> dict:
    """What the copy holds, for `verify` to check the parts against each other."""
    deliveries: list = []
    if zone.store_path.exists():
        con = duckdb.connect()
        try:
            con.execute(f"ATTACH {literal(str(zone.store_path))} AS registers (READ_ONLY)")
            deliveries = con.execute("SELECT id, sha256 FROM registers.__tre_deliveries ORDER BY id").fetchall()
        finally:
            con.close()
    with metadata.transaction() as session:
        recorded = sorted(
            session.execute(select(Delivery.sha256).where(Delivery.status == DeliveryStatus.INGESTED)).scalars()
        )
        batches = sorted(
            session.execute(
                select(ReleaseRecord.persons_batch).where(ReleaseRecord.persons_batch.is_not(None))
            ).scalars()
        )
        records = session.execute(select(func.count()).select_from(ReleaseRecord)).scalar_one()
        events = session.execute(select(func.count()).select_from(AuditEvent)).scalar_one()
    return {
        "zone": {"deliveries": [[i, sha] for i, sha in deliveries]},
        "metadata": {
            "backend": metadata.engine.url.get_backend_name(),
            "revision": metadata.current_revision(),
            "ingested_deliveries": recorded,
            "release_batches": batches,
            "release_records": records,
            "audit_events": events,
        },
    }


def _metadata_snapshot(metadata: Store, staging: Path) -> Member:
    """A consistent copy of the metadata store in `staging`, taken while the other writers go on."""
    path = metadata.sqlite_path
    if path is not None:
        target = staging / "tre.sqlite"
        source = sqlite3.connect(path)
        copy = sqlite3.connect(target)
        try:
            with copy:
                source.backup(copy)  # one consistent snapshot, whatever else writes meanwhile
        finally:
            copy.close()
            source.close()
        return Member(SQLITE_MEMBER, target)
    if metadata.engine.url.get_backend_name() == "postgresql":
        target = staging / "postgresql.dump"
        url, env = _libpq(metadata.url)
        _run(["pg_dump", "--format=custom", "--no-owner", f"--file={target}", f"--dbname={url}"], env, "pg_dump")
        return Member(PG_MEMBER, target)
    raise ConfigError(f"backups know SQLite and PostgreSQL; the metadata store is {metadata.shown_url}")


def _libpq(url: str) -> tuple[str, dict]:
    """A libpq connection URL without its password (that goes through PGPASSWORD, out of the
    process list)."""
    parsed = make_url(url)
    env = dict(os.environ)
    if parsed.password:
        env["PGPASSWORD"] = parsed.password
    plain = parsed.set(drivername="postgresql", password=None)
    return plain.render_as_string(hide_password=False), env


def _run(argv: list[str], env: dict, what: str) -> None:
    try:
        done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=3600)
    except FileNotFoundError:
        raise ConfigError(
            f"{what} is not installed: backups of a PostgreSQL store need the PostgreSQL client tools"
        ) from None
    if done.returncode != 0:
        first = (done.stderr.strip().splitlines() or ["no message"])[-1][:300]
        raise UserError(f"{what} failed ({done.returncode}): {first}")


def _central_members(settings: Settings) -> list[Member]:
    central = settings.central_dir
    members = []
    for name in CENTRAL_FILES:
        members += _with_wal(central / name, f"central/{name}")
    for sub, pattern in (("keys", "*.duckdb"), ("rejects", "*.csv")):
        for path in sorted((central / sub).glob(pattern)) if (central / sub).is_dir() else []:
            members += _with_wal(path, f"central/{sub}/{path.name}")
    for folder, top in ((settings.exports_dir, "exports"), (getattr(settings, "outputs_dir", None), "outputs")):
        if folder is not None and Path(folder).is_dir():
            for path in sorted(Path(folder).rglob("*")):
                if path.is_file() and not path.is_symlink():
                    members.append(Member(f"{top}/{path.relative_to(folder).as_posix()}", path))
    return members


def _with_wal(path: Path, name: str) -> list[Member]:
    """A DuckDB file and its write-ahead log, if it has one (committed changes not yet
    checkpointed live there; DuckDB replays it when the copy is opened)."""
    found = [Member(name, path)] if path.is_file() else []
    wal = path.with_name(path.name + ".wal")
    if path.suffix == ".duckdb" and wal.is_file():
        found.append(Member(name + ".wal", wal))
    return found


def _write_tar(sink, members: list[Member], facts: dict, backup_id: bytes, now, actor, vault_master) -> int:
    files = []
    with tarfile.open(fileobj=sink, mode="w|", format=tarfile.PAX_FORMAT) as tar:
        for member in members:
            with open(member.path, "rb") as f:
                size = os.fstat(f.fileno()).st_size
                hashing = _Hashing(f)
                tar.addfile(_info(member.name, size, now), hashing)
                files.append({"name": member.name, "bytes": size, "sha256": hashing.sha.hexdigest()})
        manifest = {
            "format": FORMAT,
            "backup_id": backup_id.hex(),
            "created_at": now.isoformat(),
            "created_by": actor,
            "vault_master_key_id": vault_master,
            "files": files,
            **facts,
        }
        data = json.dumps(manifest, indent=2).encode("utf-8")
        tar.addfile(_info(MANIFEST, len(data), now), _BytesReader(data))
    return len(files)


class _BytesReader:
    def __init__(self, data: bytes):
        self.data, self.at = data, 0

    def read(self, n: int = -1) -> bytes:
        end = len(self.data) if n < 0 else self.at + n
        out, self.at = self.data[self.at : end], min(end, len(self.data))
        return out


def _info(name: str, size: int, now: dt.datetime) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = size, 0o600, int(now.timestamp())
    return info


def _write_private(path: Path, text: str) -> None:
    temporary = path.with_name(path.name + ".tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(temporary, path)


# --- verify and restore ---------------------------------------------------------------------


def key_file_for(settings: Settings, archive: Path, key_file: Path | None) -> Path:
    if key_file is not None:
        return Path(key_file)
    name = Path(archive).name.removesuffix(SUFFIX)
    return settings.backup_keys_dir / (name + KEY_SUFFIX)


def _open_key(settings: Settings, environ, archive: Path, key_file: Path) -> tuple[dict, bytes]:
    """The key file's facts and the unwrapped backup key."""
    if not archive.is_file():
        raise UserError(f"{archive}: no such backup archive")
    if not key_file.is_file():
        raise UserError(
            f"{key_file}: no key file for this backup; give the one written with it (--key): the archive cannot be "
            "opened without it"
        )
    try:
        facts = json.loads(key_file.read_text(encoding="utf-8"))
        if facts.get("format") != KEY_FORMAT:
            raise ValueError("format")
        wrapped = base64.b64decode(facts["wrapped_key"], validate=True)
        backup_id = bytes.fromhex(facts["backup_id"])
    except (ValueError, KeyError, TypeError, UnicodeDecodeError):
        raise UserError(f"{key_file}: not a tre backup key file") from None
    master = vault_keys.load_master_key(settings, environ)
    source = vault_keys.key_source(settings, environ)
    if master.key_id != facts.get("master_key_id") and source.kind != "kms":
        raise IntegrityError(
            f"this backup's key is wrapped by master key {facts.get('master_key_id')}, but the master key from {source} "
            f"is {master.key_id}: use the master key that was in force when the backup was made (keep every old "
            "master key as long as a backup made under it; docs/central-zone.md)"
        )
    try:
        key = master.unwrap(wrapped, _wrap_context(backup_id))
    except IntegrityError:
        raise IntegrityError(
            f"the master key from {source} does not open this backup's key: it is not its key"
        ) from None
    return facts, key


def _safe_member(member: tarfile.TarInfo) -> PurePosixPath:
    path = PurePosixPath(member.name)
    if (
        not member.isfile()
        or path.is_absolute()
        or ".." in path.parts
        or (path.name != MANIFEST and path.parts[0] not in TOP_FOLDERS)
    ):
        raise IntegrityError(f"the backup archive holds an unexpected entry ({member.name[:80]!r}): not a tre backup")
    return path


def _unpack(archive: Path, key: bytes, facts: dict, into: Path) -> dict:
    """Decrypt and unpack the archive into `into`; returns its manifest, every file checked."""
    with open(archive, "rb") as raw:
        hashed = _Hashing(raw)
        reader = _OpeningReader(hashed, key)
        if reader.backup_id.hex() != facts["backup_id"]:
            raise IntegrityError("this key file belongs to another backup than the archive")
        sums = {}
        with tarfile.open(fileobj=reader, mode="r|") as tar:
            for member in tar:
                path = _safe_member(member)
                target = into.joinpath(*path.parts)
                target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
                digest = hashlib.sha256()
                source = tar.extractfile(member)
                with open(target, "wb") as out:
                    os.chmod(target, 0o600)
                    while block := source.read(1 << 20):
                        digest.update(block)
                        out.write(block)
                sums[path.as_posix()] = digest.hexdigest()
        while not reader.finished:  # the tar's end padding: every chunk is read and authenticated
            reader.read(CHUNK)
        hashed.read()
    if hashed.sha.hexdigest() != facts.get("archive_sha256"):
        raise IntegrityError("the backup archive is not the one its key file was written for (its sha256 differs)")
    manifest_path = into / MANIFEST
    if not manifest_path.is_file():
        raise IntegrityError("the backup archive has no manifest: it is incomplete")
    manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    listed = {f["name"]: f["sha256"] for f in manifest["files"]}
    sums.pop(MANIFEST, None)
    if listed != sums:
        raise IntegrityError("the backup archive's files differ from its manifest")
    return manifest


def _check_copy(settings: Settings, environ, into: Path, manifest: dict) -> dict:
    """Open every database of an unpacked copy and check the parts against each other."""
    problems: list[str] = []
    central = into / "central"
    con = duckdb.connect()
    try:
        for name in ("vault", "registers"):
            if (central / f"{name}.duckdb").exists():
                con.execute(f"ATTACH {literal(str(central / f'{name}.duckdb'))} AS {name} (READ_ONLY)")
        markers = {sha for (_, sha) in manifest["zone"]["deliveries"]}
        if (central / "registers.duckdb").exists():
            held = {sha for (sha,) in con.execute("SELECT sha256 FROM registers.__tre_deliveries").fetchall()}
            if held != markers:
                problems.append("the register store holds other deliveries than the manifest says")
        if (central / "vault.duckdb").exists():
            master = vault.current_master(con, settings, environ)
            if master is not None and master.key_id != manifest.get("vault_master_key_id"):
                problems.append("the vault's data keys are wrapped by another master key than the manifest says")
        for path in sorted(central.rglob("*.duckdb")):
            if path.parent == central and path.stem in ("vault", "registers"):
                continue
            other = duckdb.connect(str(path), read_only=True)
            other.execute("SELECT count(*) FROM duckdb_tables()").fetchall()
            other.close()
    except duckdb.Error as e:
        problems.append(f"a database of the copy cannot be opened ({e.__class__.__name__})")
    finally:
        con.close()
    recorded = set(manifest["metadata"]["ingested_deliveries"])
    if recorded - markers:
        problems.append(f"the metadata store records {len(recorded - markers)} deliveries the zone does not hold")
    if len(markers - recorded) > 1:
        problems.append(f"the zone holds {len(markers - recorded)} deliveries the metadata store has no record of")
    events = None
    sqlite = into / SQLITE_MEMBER
    if sqlite.exists():
        events, sqlite_problems = _check_sqlite(sqlite, manifest)
        problems += sqlite_problems
    problems += _check_release_batches(into / "central" / releases.RELEASES_FILE, manifest)
    if problems:
        raise IntegrityError("the backup is not consistent: " + "; ".join(problems))
    return {"audit_events": events, "deliveries": len(markers), "files": len(manifest["files"])}


def _check_sqlite(path: Path, manifest: dict) -> tuple[int, list[str]]:
    problems = []
    store = Store(f"sqlite:///{path}")
    try:
        with store.engine.connect() as connection:
            if connection.exec_driver_sql("PRAGMA integrity_check").scalar() != "ok":
                problems.append("the metadata store's copy fails SQLite's integrity check")
        with store.transaction() as session:
            count, problem = audit.verify_chain(session)
        if problem is not None:
            problems.append(f"the audit chain does not verify ({problem})")
        if count != manifest["metadata"]["audit_events"]:
            problems.append("the audit chain holds another number of events than the manifest says")
    finally:
        store.engine.dispose()
    return count, problems


def _check_release_batches(path: Path, manifest: dict) -> list[str]:
    named = set(manifest["metadata"]["release_batches"])
    if not named:
        return []
    if not path.exists():
        return ["release records name persons, but the copy has no releases.duckdb"]
    con = duckdb.connect(str(path), read_only=True)
    try:
        columns = {
            c
            for (c,) in con.execute(
                "SELECT column_name FROM duckdb_columns() WHERE table_name = 'release_persons'"
            ).fetchall()
        }
        batch = f"'{releases.LEGACY_BATCH}' || release_record" if "release_record" in columns else "batch"
        held = {b for (b,) in con.execute(f"SELECT DISTINCT {batch} FROM release_persons").fetchall()}
    finally:
        con.close()
    missing = named - held
    return [f"{len(missing)} release records name persons the copy's releases.duckdb does not hold"] if missing else []


@contextmanager
def _scratch(parent: Path) -> Iterator[Path]:
    ensure_private_dir(parent, "the folder for the backup's scratch copy")
    folder = Path(tempfile.mkdtemp(prefix=".tre-backup-", dir=parent))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def verify(settings: Settings, environ, archive: Path, *, key_file: Path | None = None) -> dict:
    """Decrypt, unpack and check a backup without restoring it (needs the master key)."""
    archive = Path(archive)
    facts, key = _open_key(settings, environ, archive, key_file_for(settings, archive, key_file))
    with _scratch(settings.home) as into:
        manifest = _unpack(archive, key, facts, into)
        checked = _check_copy(settings, environ, into, manifest)
    return {
        "backup": facts["backup"],
        "created_at": manifest["created_at"],
        "created_by": manifest["created_by"],
        "metadata": manifest["metadata"]["backend"],
        "revision": manifest["metadata"]["revision"],
        "release_records": manifest["metadata"]["release_records"],
        **checked,
        "ok": True,
    }


def restore(settings: Settings, environ, archive: Path, *, key_file: Path | None = None, clock) -> dict:
    """Restore a backup into a fresh home: checked whole before anything is put in place."""
    archive = Path(archive)
    store = Store(settings.db_url, clock=clock)
    _check_fresh(settings, store)
    facts, key = _open_key(settings, environ, archive, key_file_for(settings, archive, key_file))
    with _scratch(settings.home) as into:
        manifest = _unpack(archive, key, facts, into)
        checked = _check_copy(settings, environ, into, manifest)
        if manifest["metadata"]["backend"] != store.engine.url.get_backend_name():
            raise UserError(
                f"this backup holds a {manifest['metadata']['backend']} metadata store; TRE_DB_URL names a "
                f"{store.engine.url.get_backend_name()} one: restore into the same kind"
            )
        _put_in_place(settings, store, into)
    before, after = store.migrate()  # a backup of an older version gains the tables added since
    zone = CentralZone(settings, environ=environ, clock=clock)
    with zone.consistent(store):
        pass  # recovery, and the check that the zone and the metadata store are of one age
    now = clock()
    with store.transaction() as session:
        audit.record(
            session,
            at=now,
            actor=RESTORE_ACTOR,
            action="backup.restore",
            object=f"backup:{facts['backup']}",
            details={"files": checked["files"], "deliveries": checked["deliveries"], "migrated_from": before},
        )
    return {"backup": facts["backup"], "created_at": manifest["created_at"], "revision": after, **checked}


def _check_fresh(settings: Settings, store: Store) -> None:
    central = settings.central_dir
    taken = [central / name for name in CENTRAL_FILES if (central / name).exists()]
    path = store.sqlite_path
    if path is not None and path.exists() and path.stat().st_size:
        taken.append(path)
    elif path is None and store.current_revision() is not None:
        taken.append(Path(store.shown_url))
    if settings.exports_dir.is_dir() and any(settings.exports_dir.iterdir()):
        taken.append(settings.exports_dir)
    if taken:
        raise UserError(
            f"a restore goes into a fresh home, and {taken[0]} exists already: point TRE_HOME (and TRE_DB_URL) at a new "
            "place, or move the old installation away first"
        )


def _put_in_place(settings: Settings, store: Store, into: Path) -> None:
    ensure_private_dir(settings.home, "TRE_HOME")
    sqlite = into / SQLITE_MEMBER
    if sqlite.exists():
        target = store.sqlite_path
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(sqlite, target)
        os.chmod(target, 0o600)
    elif (into / PG_MEMBER).exists():
        url, env = _libpq(store.url)
        _run(
            ["pg_restore", "--no-owner", "--exit-on-error", f"--dbname={url}", str(into / PG_MEMBER)], env, "pg_restore"
        )
    ensure_private_dir(settings.central_dir, "the central zone (TRE_CENTRAL_DIR)")
    for top, target in (
        ("central", settings.central_dir),
        ("exports", settings.exports_dir),
        ("outputs", getattr(settings, "outputs_dir", None)),
    ):
        source = into / top
        if not source.is_dir() or target is None:
            continue
        ensure_private_dir(Path(target), f"the restored {top} folder")
        for path in sorted(source.rglob("*")):
            destination = Path(target) / path.relative_to(source)
            if path.is_dir():
                ensure_private_dir(destination, f"the restored {top} folder")
            else:
                destination.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
                shutil.move(path, destination)
                os.chmod(destination, 0o600)
