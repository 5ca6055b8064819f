"""The CLI as a user meets it: roles, refusals, bad input, the audit commands."""

import os
import sqlite3
import subprocess

import pytest

from tre.models import AuditEvent


def test_first_user_must_be_an_admin(cli):
    cli.ok("init")
    refused = cli("user", "add", "rita", "--role", "researcher")
    assert refused.code != 0 and "first user must be an admin" in refused.err
    cli.ok("user", "add", "ada", "--role", "admin")
    # once an admin exists, nobody adds users without acting as an admin
    anonymous = cli("user", "add", "bob", "--role", "researcher")
    assert anonymous.code == 5 and "--as NAME" in anonymous.err


def test_roles_are_checked_and_refusals_audited(initialised):
    cli = initialised
    cli.ok("user", "add", "rita", "--role", "researcher", as_user="ada")
    refused = cli("user", "list", as_user="rita")
    assert refused.code == 5
    assert refused.err.strip() == "tre: tre user list needs the admin role; rita has researcher"
    log = cli.ok("audit", "log", "--action", "access.denied", "--json", as_user="ada").json()
    assert [(e["actor"], e["object"]) for e in log] == [("rita", "tre user list")]


def test_unknown_acting_user_is_refused_and_audited(initialised):
    cli = initialised
    refused = cli("user", "list", as_user="mallory")
    assert refused.code == 5 and "'mallory' is not a TRE user" in refused.err
    log = cli.ok("audit", "log", "--actor", "mallory", "--json", as_user="ada").json()
    assert len(log) == 1 and log[0]["action"] == "access.denied"


def test_tre_user_environment_names_the_actor(initialised, tre_env):
    initialised.environ = {**tre_env, "TRE_USER": "ada"}
    users = initialised.ok("user", "list", "--json").json()
    assert [u["name"] for u in users] == ["ada"]


def test_granting_a_second_role_and_revoking(initialised):
    cli = initialised
    cli.ok("user", "add", "kari", "--role", "officer", as_user="ada")
    again = cli.ok("user", "add", "kari", "--role", "officer", "--json", as_user="ada").json()
    assert again["changed"] is False
    cli.ok("user", "add", "kari", "--role", "custodian", as_user="ada")
    roles = {u["name"]: u["roles"] for u in cli.ok("user", "list", "--json", as_user="ada").json()}
    assert roles["kari"] == ["custodian", "officer"]
    cli.ok("user", "revoke", "kari", "--role", "officer", as_user="ada")
    last_admin = cli("user", "revoke", "ada", "--role", "admin", as_user="ada")
    assert last_admin.code == 1 and "last admin" in last_admin.err


@pytest.mark.parametrize(
    "argv, message",
    [
        (["user", "add", "bob", "--role", "king"], "invalid choice: 'king'"),
        (["user", "add", "Bob Smith", "--role", "admin"], "invalid user name"),
        (["frobnicate"], "invalid choice: 'frobnicate'"),
        (["audit", "log", "--since", "yesterday"], "not a date or time"),
        (["user", "add"], "the following arguments are required"),
    ],
)
def test_bad_arguments_give_one_line_and_nonzero_exit(initialised, argv, message):
    result = initialised(*argv, as_user="ada")
    assert result.code != 0
    assert message in result.err
    assert len(result.err.strip().splitlines()) == 1


def test_no_traceback_from_the_real_console_script(cli, tmp_path):
    blocked = tmp_path / "blocked"
    blocked.write_text("a file, not a directory")
    cli.environ["TRE_HOME"] = str(blocked / "home")
    result = cli.subprocess("init")
    assert result.code == 3
    assert result.err.startswith("tre: cannot create TRE_HOME")
    assert "Traceback" not in result.err and len(result.err.splitlines()) == 1


def test_store_not_initialised(cli):
    result = cli("user", "list", as_user="ada")
    assert result.code == 4 and "run `tre init`" in result.err


def test_corrupted_store_is_reported_in_one_line(initialised, tre_env):
    path = os.path.join(tre_env["TRE_HOME"], "tre.sqlite")
    for suffix in ("-wal", "-shm"):
        if os.path.exists(path + suffix):
            os.remove(path + suffix)
    with open(path, "r+b") as f:
        f.write(b"this is not a database at all" * 200)
    result = initialised.subprocess("user", "list", "--as", "ada")
    assert result.code == 4
    assert "corrupted" in result.err and "Traceback" not in result.err
    assert len(result.err.splitlines()) == 1


def test_audit_verify_cli_names_the_edited_event(initialised, tre_env):
    cli = initialised
    cli.ok("user", "add", "rita", "--role", "researcher", as_user="ada")
    assert cli.ok("audit", "verify", as_user="ada").out.startswith("audit chain intact: 2 events, head ")
    db = sqlite3.connect(os.path.join(tre_env["TRE_HOME"], "tre.sqlite"))
    db.execute(f"UPDATE {AuditEvent.__tablename__} SET actor = 'someone-else' WHERE seq = 2")
    db.commit()
    db.close()
    result = cli("audit", "verify", as_user="ada")
    assert result.code == 11
    assert result.err.strip() == "tre: audit chain broken at event 2: content does not match its hash (edited)"


def test_central_zone_and_home_are_private(initialised, tre_env):
    home = tre_env["TRE_HOME"]
    assert os.stat(home).st_mode & 0o777 == 0o700
    assert os.stat(os.path.join(home, "central")).st_mode & 0o777 == 0o700
    assert os.stat(os.path.join(home, "tre.sqlite")).st_mode & 0o077 == 0


def test_concurrent_writers_keep_the_chain_intact(initialised, tre_env):
    """Two processes adding users at once: every event lands, the chain stays whole."""
    procs = [
        subprocess.Popen(
            [
                "bash",
                "-c",
                f"for i in $(seq 1 8); do tre user add {prefix}$i --role researcher --as ada || exit 1; done",
            ],
            env={**tre_env, "PATH": f"{os.path.dirname(__import__('sys').executable)}:{tre_env['PATH']}"},
        )
        for prefix in ("a", "b")
    ]
    assert [p.wait(timeout=300) for p in procs] == [0, 0]
    verified = initialised.ok("audit", "verify", "--json", as_user="ada").json()
    assert verified["ok"] is True and verified["events"] == 17 and len(verified["head_hash"]) == 64
