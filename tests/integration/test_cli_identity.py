"""Who may act as whom on the command line (cli_identity = os), and the demo mode's mark."""

from __future__ import annotations

import os
import pwd

import pytest

from tre import identity

ME = pwd.getpwuid(os.getuid()).pw_name


@pytest.fixture
def os_mode(cli):
    cli.environ = {**cli.environ, "TRE_CLI_IDENTITY": "os"}
    cli.ok("init")
    first = cli.ok("user", "add", "ada", "--role", "admin", "--json").json()
    assert first["os_login"] == ME  # the first admin acts from the account that made them
    cli.ok("user", "add", "rita", "--role", "researcher", as_user="ada")
    cli.ok("user", "add", "olav", "--role", "officer", as_user="ada")
    return cli


def test_a_name_not_bound_to_the_os_account_is_refused_and_audited(os_mode):
    cli = os_mode
    refused = cli("review", "queue", as_user="olav")  # this account was never bound to olav
    assert refused.code != 0 and len(refused.err.splitlines()) == 1
    assert f"the OS account {ME!r} may not act as TRE user 'olav'" in refused.err
    assert "tre user bind-os olav" in refused.err
    events = cli.ok("audit", "log", "--action", "cli.identity_refused", "--json", as_user="ada").json()
    assert [(e["actor"], e["object"], e["details"]["os_user"]) for e in events] == [("olav", "tre review queue", ME)]
    cli.ok("user", "bind-os", "olav", ME, as_user="ada")
    assert cli("review", "queue", as_user="olav").code == 0
    cli.ok("user", "unbind-os", "olav", ME, as_user="ada")
    assert cli("review", "queue", as_user="olav").code != 0
    listed = {u["name"]: u["os_logins"] for u in cli.ok("user", "list", "--json", as_user="ada").json()}
    assert listed == {"ada": [ME], "olav": [], "rita": []}


def test_under_sudo_the_account_sudo_authenticated_is_the_caller(os_mode):
    cli = os_mode
    if os.getuid() != 0:
        pytest.skip("sudo's variables count only for a process running as root")
    nobody = pwd.getpwnam("nobody")
    cli.environ = {**cli.environ, "SUDO_USER": "nobody", "SUDO_UID": str(nobody.pw_uid)}
    refused = cli("audit", "verify", as_user="ada")  # root's binding does not cover nobody via sudo
    assert refused.code != 0 and "'nobody' may not act as TRE user 'ada'" in refused.err
    # A SUDO_USER that does not match SUDO_UID is not believed.
    cli.environ["SUDO_UID"] = "12345"
    assert identity.caller(cli.environ) == ME
    assert cli("audit", "verify", as_user="ada").code == 0


def test_demo_mode_is_explicit_and_marks_every_event(os_mode):
    cli = os_mode
    cli.environ = {**cli.environ, "TRE_CLI_IDENTITY": "demo"}
    cli.ok("user", "add", "nils", "--role", "researcher", as_user="ada")
    assert cli("review", "queue", as_user="olav").code == 0  # asserted, not checked
    cli.environ["TRE_CLI_IDENTITY"] = "os"
    events = cli.ok("audit", "log", "--json", as_user="ada").json()
    added = next(e for e in events if e["action"] == "user.add" and e["object"] == "user:nils")
    assert added["details"]["cli_identity"] == "asserted (demo mode)"
    first = next(e for e in events if e["object"] == "user:ada")
    assert "cli_identity" not in first["details"]
    cli.environ["TRE_CLI_IDENTITY"] = "whoever"
    bad = cli("audit", "verify", as_user="ada")
    assert bad.code != 0 and "cli_identity must be os or demo" in bad.err
