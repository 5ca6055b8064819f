"""The identity vault: ID numbers encrypted, apart from the health data, and every use logged.

One DuckDB file in the central zone (`vault.duckdb`):

- `identities`: one row per ID number ever seen: the blind index HMAC-SHA256(K_index, number),
  its first 128 bits as two 64-bit integers (`blind_hi`, `blind_lo`: equality look-ups by fast
  integer joins); `pid`, the person key (a random UUID, not derived from the number); `kind`
  (fnr, d, h, fh); `sealed` = nonce || AES-GCM(K_fnr, number, associated data = the row's pid's
  16 bytes),
  so a ciphertext moved to another row does not decrypt; `delivery` that first brought it.
- `id_changes`: the ID history from the population register as blind indexes (a D-number
  replaced by an FNR, a changed FNR): which number is current.
- `__tre_keys`: the data keys K_fnr and K_index, wrapped by the master key (`tre.linkage.keys`).

Two numbers of one person (a D-number and the FNR that replaced it) have one pid; when both
were seen before the history said so, the register store links one pid to the other.

Every decryption and every look-up writes a person-linked audit event (`subject` = the pid) in
the metadata store before any number is shown; so does a refused attempt.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import duckdb

from tre import audit, idnumbers
from tre import sealed as sealed_secrets
from tre.db import Store
from tre.enums import Role
from tre.errors import IntegrityError, NotFound, PermissionDenied, UserError
from tre.linkage import keys as vault_keys
from tre.linkage.crypto import Crypto, blind_parts
from tre.linkage.store import first, person_pids, resolve_pids
from tre.users import check_role, find_user, get_user

if TYPE_CHECKING:
    from tre.linkage.zone import CentralZone

SCHEMA_VERSION = 1
DELIVERY_TAGGED = ("identities", "id_changes")  # the tables recovery cleans by delivery
KIND_PREFERENCE = ("fnr", "d", "h", "fh")  # which number is a person's current one, on a tie


def schema_statements(schema: str) -> list[str]:
    s = f'"{schema}"'
    return [
        f"CREATE TABLE IF NOT EXISTS {s}.__tre_meta (key VARCHAR PRIMARY KEY, value VARCHAR)",
        f"""CREATE TABLE IF NOT EXISTS {s}.__tre_keys (
            name VARCHAR PRIMARY KEY, wrapped BLOB NOT NULL, master_key_id VARCHAR NOT NULL,
            created_at TIMESTAMPTZ NOT NULL, wrapped_at TIMESTAMPTZ NOT NULL)""",
        f"""CREATE TABLE IF NOT EXISTS {s}.identities (
            blind_hi UBIGINT NOT NULL, blind_lo UBIGINT NOT NULL, pid UUID NOT NULL, kind VARCHAR NOT NULL,
            sealed BLOB NOT NULL, delivery INTEGER NOT NULL)""",
        f"""CREATE TABLE IF NOT EXISTS {s}.id_changes (
            old_hi UBIGINT NOT NULL, old_lo UBIGINT NOT NULL, new_hi UBIGINT NOT NULL, new_lo UBIGINT NOT NULL,
            change_date DATE, reason VARCHAR, delivery INTEGER NOT NULL)""",
        f"INSERT INTO {s}.__tre_meta VALUES ('schema_version', '{SCHEMA_VERSION}') ON CONFLICT DO NOTHING",
    ]


# --- data keys ----------------------------------------------------------------------------


def load_data_keys(
    con: duckdb.DuckDBPyConnection, settings, environ, *, create: bool = False, now: dt.datetime | None = None
) -> vault_keys.DataKeys:
    """Unwrap the vault's data keys with the master key; with `create`, make them on first use.

    Runs on a connection with the vault attached as `vault` (read-write when creating).
    """
    rows = con.execute("SELECT name, wrapped, master_key_id FROM vault.__tre_keys ORDER BY name").fetchall()
    if not rows:
        if not create:
            raise NotFound("the identity vault holds no keys yet: nothing was ever ingested (`tre ingest`)")
        master = vault_keys.load_master_key(settings, environ, create=True)
        keys = vault_keys.DataKeys.generate()
        con.execute("BEGIN")
        for name, key in keys.by_name().items():
            con.execute(
                "INSERT INTO vault.__tre_keys VALUES ($1, $2, $3, $4, $4)",
                [name, master.wrap(key, vault_keys.wrap_context(name)), master.key_id, now or dt.datetime.now(dt.UTC)],
            )
        con.execute("COMMIT")
        return keys
    master = _master_for(rows, settings, environ)
    unwrapped = {name: master.unwrap(bytes(wrapped), vault_keys.wrap_context(name)) for name, wrapped, _ in rows}
    if set(unwrapped) != set(vault_keys.DATA_KEY_NAMES):
        raise IntegrityError(f"the vault's key table holds {sorted(unwrapped)}; expected fnr and index")
    return vault_keys.DataKeys(**unwrapped)


def _master_for(rows, settings, environ) -> vault_keys.MasterKey:
    wanted = {row[2] for row in rows}
    master = vault_keys.load_master_key(settings, environ)
    source = vault_keys.key_source(settings, environ)
    if master.key_id in wanted or source.kind == "kms":
        return master  # a key service unwraps what its earlier key versions wrapped
    if source.kind == "file":
        # A rotation that stopped after the vault changed and before the key file was replaced.
        pending = vault_keys.pending_key_file(source.path)
        if pending.exists():
            successor = vault_keys.read_key_file(pending)
            if successor.key_id in wanted:
                vault_keys.Rotation(successor, source, pending).finish()
                return vault_keys.read_key_file(source.path)
    raise IntegrityError(
        f"the vault's data keys are wrapped by master key {', '.join(sorted(wanted))}, but the master key from "
        f"{source} is {master.key_id}: restore the right key"
    )


def current_master(con: duckdb.DuckDBPyConnection, settings, environ) -> vault_keys.MasterKey | None:
    """The master key that wraps the vault's data keys (None while the vault holds none)."""
    rows = con.execute("SELECT name, wrapped, master_key_id FROM vault.__tre_keys ORDER BY name").fetchall()
    return _master_for(rows, settings, environ) if rows else None


def rotate_master_key(zone: CentralZone, metadata: Store, *, actor: str, reencrypt: bool = False) -> dict:
    """Put a new master key in force; returns what was done.

    Plain rotation re-wraps the data keys under the new master key: every ciphertext and
    blind index stays, and so whoever holds an old master key and an old copy of the vault
    (a backup) can still read that copy. With `reencrypt` (a key is compromised) the data
    keys are replaced too: every ID number is decrypted and sealed again under a new K_fnr,
    every blind index recomputed under a new K_index, in one vault transaction with the key
    rows; an old master key then opens only old copies.

    Order: the new key is made (the key file's successor written beside it), the vault is
    changed in one transaction, then the successor replaces the key file. A crash in between
    is finished by the next `load_data_keys`.
    """
    settings, environ = zone.settings, zone.environ
    with zone.writing(metadata) as con:
        rows = con.execute("SELECT name, wrapped, master_key_id FROM vault.__tre_keys ORDER BY name").fetchall()
        if not rows:
            raise NotFound("the identity vault holds no keys yet: nothing to rotate")
        current = _master_for(rows, settings, environ)
        rotation = vault_keys.begin_rotation(settings, environ, current)
        new = rotation.new
        if new.key_id == current.key_id:
            raise UserError("the new master key is the same as the current one: give a different key")
        now = zone.clock()
        old_keys = {name: current.unwrap(bytes(wrapped), vault_keys.wrap_context(name)) for name, wrapped, _ in rows}
        data_keys = vault_keys.DataKeys.generate().by_name() if reencrypt else old_keys
        rewrapped = []
        for name, key in data_keys.items():
            context = vault_keys.wrap_context(name)
            blob = new.wrap(key, context)
            if new.unwrap(blob, context) != key:
                raise IntegrityError("the new master key does not unwrap what it wrapped: rotation stopped")
            rewrapped.append((name, blob))
        # The metadata store's sealed secrets (TOTP): their data key wrapped by both keys first.
        with metadata.transaction() as session:
            sealed_secrets.wrap_for(session, current, new, now=now)
        identities = 0
        if reencrypt:
            identities = _reencrypt(
                con, vault_keys.DataKeys(**old_keys), vault_keys.DataKeys(**data_keys), settings.ingest_workers
            )
        else:
            con.execute("BEGIN")
        for name, blob in rewrapped:
            con.execute(
                "UPDATE vault.__tre_keys SET wrapped = $2, master_key_id = $3, wrapped_at = $4 WHERE name = $1",
                [name, blob, new.key_id, now],
            )
        con.execute("COMMIT")
        con.execute("CHECKPOINT vault")
        rotation.finish()
        done = {
            "old_master_key": current.key_id,
            "new_master_key": new.key_id,
            "source": rotation.source.kind,
            "reencrypted_identities": identities if reencrypt else None,
        }
        with metadata.transaction() as session:
            sealed_secrets.forget_other_wraps(session, new)
            audit.record(session, at=now, actor=actor, action="vault.rotate_key", object="vault", details=done)
    return done


def _reencrypt(con, old: vault_keys.DataKeys, new: vault_keys.DataKeys, workers: int) -> int:
    """Seal every ID number again and recompute every blind index under `new`; leaves the
    vault's transaction open (the caller writes the key rows and commits)."""
    import pyarrow as pa

    from tre.linkage.crypto import NUMBER_BYTES, PID_BYTES, SEALED_BYTES
    from tre.linkage.ingest import fixed_binary, fixed_width_bytes

    table = con.sql(
        """SELECT blind_hi, blind_lo, unhex(replace(pid::VARCHAR, '-', '')) AS pid_bytes, pid, kind, sealed, delivery
           FROM vault.identities"""
    ).to_arrow_table()
    n = table.num_rows
    reading, writing = Crypto(old, workers=workers), Crypto(new, workers=workers)
    try:
        pids = fixed_width_bytes(table.column("pid_bytes"), PID_BYTES)
        numbers = reading.unseal_many(fixed_width_bytes(table.column("sealed"), SEALED_BYTES), pids)
        high, low = blind_parts(writing.blind_many(numbers))
        sealed = writing.seal_many(numbers, pids)
        if n and writing.unseal(sealed[:SEALED_BYTES], str(table.column("pid")[0])) != numbers[:NUMBER_BYTES].decode():
            raise IntegrityError("a number sealed again does not decrypt to itself: rotation stopped")
    finally:
        reading.close()
        writing.close()
    del numbers  # the plaintext numbers were only ever in this process's memory
    con.register(
        "__tre_reencrypted",
        pa.table(
            {
                "old_hi": table.column("blind_hi"),
                "old_lo": table.column("blind_lo"),
                "blind_hi": pa.array(high),
                "blind_lo": pa.array(low),
                "pid": table.column("pid"),
                "kind": table.column("kind"),
                "sealed": fixed_binary(sealed, SEALED_BYTES),
                "delivery": table.column("delivery"),
            }
        ),
    )
    con.execute("CREATE TEMP TABLE __tre_reencrypted_rows AS SELECT * FROM __tre_reencrypted")
    con.unregister("__tre_reencrypted")
    con.execute("BEGIN")
    con.execute("DELETE FROM vault.identities")
    con.execute(
        "INSERT INTO vault.identities SELECT blind_hi, blind_lo, pid, kind, sealed::BLOB, delivery FROM __tre_reencrypted_rows"
    )
    for side in ("old", "new"):
        con.execute(
            f"""UPDATE vault.id_changes c SET {side}_hi = r.blind_hi, {side}_lo = r.blind_lo
                FROM __tre_reencrypted_rows r WHERE c.{side}_hi = r.old_hi AND c.{side}_lo = r.old_lo"""
        )
    return n


# --- who may decrypt, and the log of every decryption ---------------------------------------


@dataclass(frozen=True)
class Number:
    """One ID number of a person, decrypted."""

    number: str
    kind: str
    current: bool
    pid: str  # the pid the number was first recorded under


def _crypto(zone: CentralZone, con) -> Crypto:
    return Crypto(load_data_keys(con, zone.settings, zone.environ), workers=1)


def _find_pid(con, crypto: Crypto, fnr: str) -> str | None:
    hi, lo = blind_parts(crypto.blind(fnr))
    row = first(
        con.execute(
            "SELECT pid::VARCHAR FROM vault.identities WHERE blind_hi = $1 AND blind_lo = $2", [int(hi[0]), int(lo[0])]
        )
    )
    return None if row is None else resolve_pids(con, [row[0]])[row[0]]


def _known_pid(con, pid: str) -> str | None:
    """The canonical pid of `pid` when the vault knows it, else None."""
    canonical = resolve_pids(con, [pid])[pid]
    if canonical is None:
        return None
    found = first(
        con.execute("SELECT 1 FROM vault.identities WHERE pid = ANY($1::UUID[]) LIMIT 1", [person_pids(con, canonical)])
    )
    return canonical if found else None


def _check_reason(reason: str) -> str:
    reason = (reason or "").strip()
    if len(reason) < 10:
        raise UserError("give a reason of at least 10 characters (--reason): it goes to the person's access log")
    if audit._ID_NUMBER.search(reason) or idnumbers.count_in_text(reason):
        raise UserError("the reason must not contain an ID number: describe the case instead")
    return reason


def _guard(metadata: Store, *, actor: str, roles: Iterable[Role], action: str, subject, details: dict, at) -> None:
    """Check the acting user's role; a refusal is audited (person-linked when the person is
    known), marked as audited, and raised."""
    refusal = None
    with metadata.transaction() as session:
        try:
            check_role(get_user(session, actor), roles, action)
        except PermissionDenied as e:
            audit.record(
                session,
                at=at,
                actor=actor,
                action="vault.refused",
                object=action,
                subject=subject,
                details={**details, "refusal": str(e)},
            )
            e.audited = True
            refusal = e
    if refusal is not None:
        raise refusal


def _custodian_approved(
    metadata: Store, build: int, *, actor: str, reference: str, pids: list[str], at, valid_days: int
) -> None:
    """Refuse (audited) unless a key custodian other than `actor` approved `build`, for exactly
    these persons (the digest of the sorted pids the custodian was shown), within `valid_days`,
    not spent yet, and the extract `reference` names is the one that used the approval. The
    approval is spent here, in the transaction that allows the decryption: it decrypts once."""
    from tre.linkage.extracts import build_approval_expired
    from tre.linkage.releases import persons_digest
    from tre.models import BuildApproval

    persons = len(pids)
    with metadata.transaction() as session:
        row = session.get(BuildApproval, build) if build is not None else None
        approver = find_user(session, row.approved_by) if row is not None and row.approved_by else None
        if approver is None:
            problem = "no key custodian approved this build"
        elif row.approved_by == actor:
            problem = "the build's approver is the admin who runs it"
        elif not approver.has_role(Role.CUSTODIAN):
            problem = f"{row.approved_by} is not a key custodian"
        elif row.persons != persons or row.persons_digest != persons_digest(pids):
            problem = f"the custodian approved other persons ({row.persons}), not these {persons}"
        elif row.extract_id is None or f"extract-{row.extract_id}" != reference:
            problem = "the approval belongs to another build"
        elif row.decrypted_at is not None:
            problem = "the approval was spent by its decryption (it decrypts once)"
        elif build_approval_expired(row, at, valid_days):
            problem = f"the approval is more than {valid_days} days old (TRE_BUILD_APPROVAL_DAYS)"
        else:
            row.decrypted_at = at
            return
        audit.record(
            session,
            at=at,
            actor=actor,
            action="vault.refused",
            object="decrypt for release",
            details={"reference": reference, "persons": persons, "refusal": problem},
        )
    raise PermissionDenied(f"no ID number is decrypted: {problem} (§ 5-2: tre extract approve)")


def _custodian_access(metadata: Store, *, actor: str, command: str, subject: str | None, reason: str, at) -> None:
    """A custodian's look-up or reveal: refused and logged unless `actor` is a custodian, else
    logged (`vault.lookup` / `vault.reveal`, subject = the person) before anything is shown."""
    details = {"reason": reason}
    _guard(metadata, actor=actor, roles=[Role.CUSTODIAN], action=command, subject=subject, details=details, at=at)
    with metadata.transaction() as session:
        audit.record(
            session,
            at=at,
            actor=actor,
            action="vault." + command.rsplit(" ", 1)[1],
            object="vault",
            subject=subject,
            details={**details, "found": subject is not None},
        )


def lookup(zone: CentralZone, metadata: Store, *, actor: str, fnr: str, reason: str) -> str | None:
    """The pid of the person with ID number `fnr` (custodian only), or None; audited either way."""
    reason = _check_reason(reason)
    if not idnumbers.is_valid(fnr.strip()):
        raise UserError("--fnr is not a valid ID number (11 digits with valid check digits)")
    now = zone.clock()
    with zone.reading(metadata, vault=True) as con:
        pid = _find_pid(con, _crypto(zone, con), fnr.strip())
    _custodian_access(metadata, actor=actor, command="tre vault lookup", subject=pid, reason=reason, at=now)
    return pid


def reveal(zone: CentralZone, metadata: Store, *, actor: str, pid: str, reason: str) -> list[Number]:
    """Decrypt every ID number of the person `pid` (custodian only); audited before it happens."""
    reason = _check_reason(reason)
    now = zone.clock()
    with zone.reading(metadata, vault=True) as con:
        canonical = _known_pid(con, pid.strip())
        _custodian_access(metadata, actor=actor, command="tre vault reveal", subject=canonical, reason=reason, at=now)
        if canonical is None:
            raise NotFound("no person with that pid in the vault")
        return _numbers_by_person(con, _crypto(zone, con), [canonical])[canonical]


def _numbers_by_person(con, crypto: Crypto, persons: list[str]) -> dict[str, list[Number]]:
    """Every ID number of each person (canonical pids), decrypted, the current one first."""
    preference = ", ".join(f"'{k}'" for k in KIND_PREFERENCE)
    rows = con.execute(
        f"""SELECT coalesce(m.canonical_pid, i.pid)::VARCHAR AS person, i.pid::VARCHAR, i.kind, i.sealed,
                   NOT EXISTS (SELECT 1 FROM vault.id_changes c WHERE c.old_hi = i.blind_hi AND c.old_lo = i.blind_lo)
                       AS current
            FROM vault.identities i LEFT JOIN __tre_person_map m ON m.pid = i.pid
            WHERE coalesce(m.canonical_pid, i.pid) = ANY($1::UUID[])
            ORDER BY person, current DESC, list_position([{preference}], i.kind), i.delivery DESC""",
        [persons],
    ).fetchall()
    numbers: dict[str, list[Number]] = {p: [] for p in persons}
    for person, pid, kind, sealed, current in rows:
        numbers[person].append(Number(crypto.unseal(bytes(sealed), pid), kind, current, pid))
    return numbers


def decrypt_for_release(
    zone: CentralZone, metadata: Store, pids: Iterable[str], *, actor: str, reference: str, reason: str, build: int
) -> dict[str, str | None]:
    """Each person's current ID number, for a § 4-5 delivery with ID numbers (the extracts' path).

    The acting user must be an admin, and `build` a key custodian's approval (§ 5-2 third
    paragraph) given by someone else, of exactly these persons (their digest), unspent and
    unexpired, used by the extract `reference` names (`extract-<id>`); it is spent by this call. One person-linked audit event per person
    (`vault.decrypt`, subject = the person's canonical pid, details = the reference and reason),
    in one transaction with the decryption's authorisation. Returns {pid: number or None}.
    """
    reason = _check_reason(reason)
    pids = list(dict.fromkeys(pids))
    now = zone.clock()
    with zone.reading(metadata, vault=True) as con:
        _guard(
            metadata,
            actor=actor,
            roles=[Role.ADMIN],
            action="decrypt for release",
            subject=None,
            details={"reference": reference, "persons": len(pids)},
            at=now,
        )
        _custodian_approved(
            metadata,
            build,
            actor=actor,
            reference=reference,
            pids=[str(p) for p in pids],
            at=now,
            valid_days=zone.settings.build_approval_days,
        )
        canonical = resolve_pids(con, pids)
        numbers = _numbers_by_person(con, _crypto(zone, con), sorted({c for c in canonical.values() if c}))
        result: dict[str, str | None] = {}
        with metadata.transaction() as session:
            for pid in pids:
                found = numbers.get(canonical[pid], [])
                result[pid] = found[0].number if found else None
                audit.record(
                    session,
                    at=now,
                    actor=actor,
                    action="vault.decrypt",
                    object=f"release:{reference}",
                    subject=canonical[pid],
                    details={"reference": reference, "reason": reason, "found": bool(found)},
                )
    return result
