"""The identity vault as key custodians meet it: look-ups, decryption, refusals, key rotation."""

from __future__ import annotations

import json
import uuid

import pytest
from delivery_factory import people, row, write_delivery

from tre.config import load_settings
from tre.db import Store
from tre.errors import IntegrityError, PermissionDenied
from tre.linkage import keys as vault_keys
from tre.linkage import vault
from tre.linkage.zone import CentralZone

REASON = "case 2026-17: correction request from the person"


@pytest.fixture
def persons():
    return people(3, seed=31)


@pytest.fixture
def d_number():
    return people(1, seed=32, d_number=True)[0]


@pytest.fixture
def central(initialised, tmp_path, persons, d_number):
    """Deliveries ingested; `carl` is a key custodian."""
    folder = tmp_path / "deliveries"
    write_delivery(folder, "dsf", [row("dsf", p) for p in persons])
    write_delivery(folder, "dsf_idhistory", [row("dsf_idhistory", persons[0], old_id=d_number.fnr)])
    initialised.ok("ingest", str(folder), as_user="ada")
    initialised.ok("user", "add", "carl", "--role", "custodian", as_user="ada")
    return initialised


def lookup(cli, fnr, as_user="carl", reason=REASON):
    return cli("vault", "lookup", "--fnr", fnr, "--reason", reason, "--json", as_user=as_user)


def test_custodian_looks_up_and_reveals_and_both_are_in_the_persons_access_log(central, persons, d_number):
    pid = lookup(central, persons[0].fnr).json()["pid"]
    assert len(pid) == 36 and str(uuid.UUID(pid)) == pid
    # the D-number that the history replaced belongs to the same person
    assert lookup(central, d_number.fnr).json()["pid"] == pid
    revealed = central.ok("vault", "reveal", "--pid", pid, "--reason", REASON, "--json", as_user="carl").json()
    assert revealed["numbers"] == [
        {"number": persons[0].fnr, "kind": "fnr", "current": True},
        {"number": d_number.fnr, "kind": "d", "current": False},
    ]
    text = central.ok("vault", "reveal", "--pid", pid, "--reason", REASON, as_user="carl").out
    assert f"{persons[0].fnr}  fnr  current" in text
    log = central.ok("audit", "log", "--subject", pid, "--oldest-first", "--json", as_user="ada").json()
    assert [(e["action"], e["actor"], e["details"]["reason"]) for e in log] == [
        ("vault.lookup", "carl", REASON),
        ("vault.lookup", "carl", REASON),
        ("vault.reveal", "carl", REASON),
        ("vault.reveal", "carl", REASON),
    ]
    assert not any(p.fnr in json.dumps(log) for p in persons)


def test_the_number_can_come_from_standard_input(central, persons):
    piped = central.subprocess(
        "vault", "lookup", "--fnr", "-", "--reason", REASON, "--json", "--as", "carl", input=persons[1].fnr + "\n"
    )
    assert piped.code == 0, piped.err
    assert piped.json()["pid"] == lookup(central, persons[1].fnr).json()["pid"]


def test_a_non_custodian_cannot_decrypt_and_the_attempt_is_logged(central, persons):
    pid = lookup(central, persons[1].fnr).json()["pid"]
    for command in (["lookup", "--fnr", persons[1].fnr], ["reveal", "--pid", pid]):
        refused = central("vault", *command, "--reason", REASON, as_user="ada")
        assert refused.code == 5
        assert refused.err.strip() == f"tre: tre vault {command[0]} needs the custodian role; ada has admin"
        assert persons[1].fnr not in refused.out + refused.err and pid not in refused.out + refused.err
    log = central.ok("audit", "log", "--action", "vault.refused", "--oldest-first", "--json", as_user="ada").json()
    assert [(e["actor"], e["object"], e["subject"]) for e in log] == [
        ("ada", "tre vault lookup", pid),
        ("ada", "tre vault reveal", pid),
    ]
    # refused once, logged once: no second, generic refusal event
    assert central.ok("audit", "log", "--action", "access.denied", "--json", as_user="ada").json() == []


def test_bad_look_ups_say_what_is_wrong_without_echoing_the_number(central, persons):
    bad = persons[0].fnr[:10] + str((int(persons[0].fnr[10]) + 1) % 10)
    result = lookup(central, bad)
    assert result.code == 1 and "not a valid ID number" in result.err and bad not in result.err
    assert "at least 10 characters" in lookup(central, persons[0].fnr, reason="why").err
    assert "must not contain an ID number" in lookup(central, persons[0].fnr, reason=f"about {persons[0].fnr}").err
    [stranger] = people(1, seed=33)
    assert lookup(central, stranger.fnr).json() == {"found": False, "pid": None}
    for not_known in (str(uuid.UUID(int=0)), "not-a-pid"):
        unknown = central("vault", "reveal", "--pid", not_known, "--reason", REASON, as_user="carl")
        assert unknown.code == 6 and "no person with that pid" in unknown.err
    log = central.ok("audit", "log", "--action", "vault.*", "--oldest-first", "--json", as_user="ada").json()
    assert [(e["action"], e["details"]["found"]) for e in log] == [
        ("vault.lookup", False),
        ("vault.reveal", False),
        ("vault.reveal", False),
    ]


def test_rotation_rewraps_under_a_new_key_file_and_loses_nothing(central, persons, tre_env):
    settings = load_settings(tre_env)
    before = lookup(central, persons[2].fnr).json()["pid"]
    old_key = settings.master_key_file.read_text()
    assert settings.master_key_file.stat().st_mode & 0o777 == 0o600
    assert not settings.master_key_file.is_relative_to(settings.central_dir)
    secret = central.ok("user", "totp", "carl", "--json", as_user="ada").json()["secret"]  # sealed, master key
    rotated = central.ok("vault", "rotate-key", "--json", as_user="carl").json()
    assert rotated["old_master_key"] != rotated["new_master_key"]
    assert settings.master_key_file.read_text() != old_key
    assert settings.master_key_file.stat().st_mode & 0o777 == 0o600
    assert lookup(central, persons[2].fnr).json()["pid"] == before
    revealed = central.ok("vault", "reveal", "--pid", before, "--reason", REASON, "--json", as_user="carl").json()
    assert revealed["numbers"][0]["number"] == persons[2].fnr
    _assert_totp_secret_opens(central, tre_env, "carl", secret)  # the logins key was re-wrapped too
    # the old key no longer opens the vault
    settings.master_key_file.write_text(old_key)
    stale = lookup(central, persons[2].fnr)
    assert stale.code == 11 and "wrapped by master key" in stale.err
    assert central("vault", "rotate-key", as_user="ada").code == 5  # custodians only


def _assert_totp_secret_opens(cli, env, name, secret):
    from sqlalchemy import select

    from tre.db import Store, utc_now
    from tre.models import LoginCredential, User, WrappedKey
    from tre.sealed import login_box

    settings = load_settings(env)
    with Store(settings.db_url).transaction() as session:
        stored = session.execute(
            select(LoginCredential.totp_secret).join(User, User.id == LoginCredential.user_id).where(User.name == name)
        ).scalar_one()
        assert login_box(settings, cli.environ, session, now=utc_now()).open(stored, f"totp:{name}") == secret
        assert len(session.execute(select(WrappedKey)).scalars().all()) == 1  # the old wrap is gone


def test_rotation_with_the_key_in_the_environment(initialised, tmp_path, tre_env, persons):
    old, new = vault_keys.encode_key(b"\x01" * 32), vault_keys.encode_key(b"\x02" * 32)
    initialised.environ = {**tre_env, "TRE_MASTER_KEY": old}
    write_delivery(tmp_path / "d", "dsf", [row("dsf", p) for p in persons])
    initialised.ok("ingest", str(tmp_path / "d"), as_user="ada")
    initialised.ok("user", "add", "carl", "--role", "custodian", as_user="ada")
    assert not load_settings(tre_env).master_key_file.exists()  # no key file when the key is in the environment
    pid = lookup(initialised, persons[0].fnr).json()["pid"]
    missing = initialised("vault", "rotate-key", as_user="carl")
    assert missing.code == 3 and "TRE_NEW_MASTER_KEY" in missing.err
    initialised.environ["TRE_NEW_MASTER_KEY"] = new
    assert (
        "now put the value of TRE_NEW_MASTER_KEY in TRE_MASTER_KEY"
        in initialised.ok("vault", "rotate-key", as_user="carl").out
    )
    initialised.environ = {**tre_env, "TRE_MASTER_KEY": new}
    assert lookup(initialised, persons[0].fnr).json()["pid"] == pid
    initialised.environ = {**tre_env, "TRE_MASTER_KEY": old}
    assert lookup(initialised, persons[0].fnr).code == 11


def test_an_external_key_service_through_the_kms_hook(initialised, tmp_path, tre_env, persons):
    initialised.environ = {**tre_env, "TRE_KMS": "central_kms:open_kms"}
    write_delivery(tmp_path / "d", "dsf", [row("dsf", p) for p in persons])
    initialised.ok("ingest", str(tmp_path / "d"), as_user="ada")
    initialised.ok("user", "add", "carl", "--role", "custodian", as_user="ada")
    pid = lookup(initialised, persons[0].fnr).json()["pid"]
    rotated = initialised.ok("vault", "rotate-key", "--json", as_user="carl").json()
    assert (rotated["old_master_key"], rotated["new_master_key"]) == ("folder-kms-v1", "folder-kms-v2")
    assert lookup(initialised, persons[0].fnr).json()["pid"] == pid
    broken = {**tre_env, "TRE_KMS": "central_kms:nothing_here"}
    initialised.environ = broken
    assert "cannot be imported" in lookup(initialised, persons[0].fnr).err


def test_an_interrupted_rotation_is_finished_by_the_next_use(central, persons, tre_env, monkeypatch):
    """A crash after the vault was re-wrapped and before the key file was replaced."""
    pid = lookup(central, persons[0].fnr).json()["pid"]
    settings = load_settings(tre_env)

    real_replace = vault_keys.os.replace

    def crash(source, target):
        if str(target) == str(settings.master_key_file):
            raise KeyboardInterrupt("killed")  # as if the process died here
        real_replace(source, target)

    with monkeypatch.context() as patch:
        patch.setattr(vault_keys.os, "replace", crash)
        assert central("vault", "rotate-key", as_user="carl").code == 130
    pending = vault_keys.pending_key_file(settings.master_key_file)
    assert pending.exists()
    assert lookup(central, persons[0].fnr).json()["pid"] == pid  # finishes the rotation
    assert not pending.exists()
    assert lookup(central, persons[0].fnr).json()["pid"] == pid


def test_an_admin_alone_cannot_decrypt_for_a_release(central, persons, tre_env):
    """§ 5-2 third paragraph: decrypting for a § 4-5 delivery needs a key custodian's approval
    of that build (`tre extract approve`, tests/integration/test_extracts.py); without one the
    vault refuses an admin, audits the refusal and decrypts nothing."""
    settings = load_settings(tre_env)
    store = Store(settings.db_url)
    zone = CentralZone(settings, environ=tre_env)
    pids = [lookup(central, p.fnr).json()["pid"] for p in persons]
    for build in (None, 1):
        with pytest.raises(PermissionDenied, match="no key custodian approved this build"):
            vault.decrypt_for_release(
                zone, store, pids, actor="ada", reference="extract-7", reason="§ 4-5 delivery", build=build
            )
    assert central.ok("audit", "log", "--action", "vault.decrypt", "--json", as_user="ada").json() == []
    with pytest.raises(PermissionDenied):
        vault.decrypt_for_release(
            zone, store, pids, actor="carl", reference="extract-7", reason="§ 4-5 delivery", build=None
        )
    refused = central.ok("audit", "log", "--action", "vault.refused", "--json", as_user="ada").json()
    assert sorted(e["actor"] for e in refused) == ["ada", "ada", "carl"]


def test_a_ciphertext_moved_to_another_person_does_not_decrypt(central, persons, tre_env):
    """The associated data binds each encrypted number to its pid."""
    import duckdb

    settings = load_settings(tre_env)
    pids = [lookup(central, p.fnr).json()["pid"] for p in persons[:2]]
    with duckdb.connect(str(settings.central_dir / "vault.duckdb")) as con:
        sealed = con.execute("SELECT sealed FROM identities WHERE pid = $1", [pids[0]]).fetchall()[0][0]
        con.execute("UPDATE identities SET sealed = $1 WHERE pid = $2", [sealed, pids[1]])
    with pytest.raises(IntegrityError):
        zone = CentralZone(settings, environ=tre_env)
        vault.reveal(zone, Store(settings.db_url), actor="carl", pid=pids[1], reason=REASON)


def vault_rows(tre_env) -> dict:
    import duckdb

    path = load_settings(tre_env).central_dir / "vault.duckdb"
    with duckdb.connect(str(path), read_only=True) as con:
        return {
            "identities": con.execute("SELECT blind_hi, blind_lo, pid::VARCHAR, sealed FROM identities").fetchall(),
            "changes": con.execute("SELECT old_hi, old_lo, new_hi, new_lo FROM id_changes").fetchall(),
            "keys": dict(con.execute("SELECT name, wrapped FROM __tre_keys").fetchall()),
        }


def test_a_compromised_key_is_replaced_by_encrypting_everything_again(central, persons, d_number, tmp_path, tre_env):
    """`--reencrypt`: new data keys; every ID number sealed again, every blind index recomputed
    (the ID history's too), the same persons behind the same numbers; an old master key with an
    old copy of the vault opens only that copy."""
    settings = load_settings(tre_env)
    pid = lookup(central, persons[0].fnr).json()["pid"]
    before = vault_rows(tre_env)
    old_vault = (settings.central_dir / "vault.duckdb").read_bytes()
    old_key = settings.master_key_file.read_text()
    done = central.ok("vault", "rotate-key", "--reencrypt", "--json", as_user="carl").json()
    assert done["reencrypted_identities"] == len(before["identities"]) == 4
    after = vault_rows(tre_env)
    assert {r[2] for r in after["identities"]} == {r[2] for r in before["identities"]}  # the same pids
    assert not {(r[0], r[1]) for r in after["identities"]} & {(r[0], r[1]) for r in before["identities"]}
    assert not {bytes(r[3]) for r in after["identities"]} & {bytes(r[3]) for r in before["identities"]}
    assert after["changes"] != before["changes"] and len(after["changes"]) == 1
    assert {bytes(v) for v in after["keys"].values()}.isdisjoint(bytes(v) for v in before["keys"].values())
    # The same persons behind the same numbers, the history's current number still current.
    assert lookup(central, persons[0].fnr).json()["pid"] == pid
    assert lookup(central, d_number.fnr).json()["pid"] == pid
    revealed = central.ok("vault", "reveal", "--pid", pid, "--reason", REASON, "--json", as_user="carl").json()
    assert revealed["numbers"] == [
        {"number": persons[0].fnr, "kind": "fnr", "current": True},
        {"number": d_number.fnr, "kind": "d", "current": False},
    ]
    # A delivery ingested now finds its persons by the new blind indexes.
    write_delivery(tmp_path / "kuhr", "kuhr", [row("kuhr", p) for p in persons])
    [outcome] = central.ok("ingest", str(tmp_path / "kuhr"), "--json", as_user="ada").json()
    assert outcome["report"]["new_identities"] == 0 and outcome["report"]["rows_stored"] == 3
    # The old master key opens the old copy and nothing else.
    settings.master_key_file.write_text(old_key)
    assert lookup(central, persons[0].fnr).code == 11
    (settings.central_dir / "vault.duckdb").write_bytes(old_vault)
    (settings.central_dir / "vault.duckdb.wal").unlink(missing_ok=True)
    assert lookup(central, persons[0].fnr).json()["pid"] == pid
