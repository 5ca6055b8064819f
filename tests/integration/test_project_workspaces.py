"""`tre project provision|lock|unlock|status` and the rule for who may open a project server."""

import datetime as dt
import grp
import os
import pwd
import random
import shutil
import stat
import string

import pytest
from factories import make_approval, make_member, make_open_project, make_project, make_user

from tre.enums import ApprovalStatus, ProjectStatus, Role
from tre.errors import PermissionDenied
from tre.os_accounts import PosixAccounts
from tre.workspace import check_server_access

TODAY = dt.date(2026, 11, 26)


@pytest.fixture
def no_isolation(initialised):
    initialised.environ["TRE_HUB_ISOLATION"] = "off"
    return initialised


def _mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


def test_provision_without_isolation_makes_the_layout_and_warns(no_isolation, store, tre_env):
    cli = no_isolation
    with store.transaction() as session:
        make_open_project(session, "alpha", make_user(session, "rita"))
    result = cli("project", "provision", "alpha", "--json", as_user="ada")
    assert result.code == 0, result.err
    assert "OS isolation is off" in result.err
    data = result.json()
    assert data["isolation"] is False and data["accounts"] == {}
    root = os.path.join(tre_env["TRE_PROJECTS_DIR"], "alpha")
    assert sorted(os.listdir(root)) == ["data", "released", "requests", "work"]
    assert os.path.isdir(os.path.join(root, "requests", "queue"))
    assert _mode(os.path.join(root, "data")) == 0o750
    # idempotent
    assert cli("project", "provision", "alpha", as_user="ada").code == 0
    events = cli.ok("audit", "log", "--action", "project.provision", "--oldest-first", "--json", as_user="ada").json()
    assert len(events) == 2 and events[0]["details"]["isolation"] is False


def test_provision_refuses_unknown_and_badly_named_projects(no_isolation):
    unknown = no_isolation("project", "provision", "nope", as_user="ada")
    assert unknown.code == 6 and "unknown project 'nope'" in unknown.err
    researcher_only = no_isolation("project", "status", as_user="nobody")
    assert researcher_only.code == 5


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("useradd"), reason="OS accounts need root")
def test_provision_as_root_makes_one_account_per_member_in_the_project_group_only(initialised, store, tre_env):
    cli = initialised
    prefix = "t" + "".join(random.choices(string.ascii_lowercase, k=4))
    cli.environ.update(TRE_OS_ACCOUNT_PREFIX=prefix, TRE_HUB_ISOLATION="on")
    os.chmod(os.path.dirname(tre_env["TRE_PROJECTS_DIR"]), 0o755)
    with store.transaction() as session:
        rita, olav = make_user(session, "rita"), make_user(session, "olav")
        make_open_project(session, "alpha", rita, olav)
        make_open_project(session, "beta", rita)
    try:
        alpha = cli.ok("project", "provision", "alpha", "--json", as_user="ada").json()
        beta = cli.ok("project", "provision", "beta", "--json", as_user="ada").json()
        assert alpha["accounts"]["rita"] != beta["accounts"]["rita"]  # two projects, two identities
        for result in (alpha, beta):
            gid = grp.getgrnam(result["group"]).gr_gid
            for account in result["accounts"].values():
                entry = pwd.getpwnam(account)
                assert entry.pw_gid == gid and entry.pw_shell == "/usr/sbin/nologin"
                assert os.getgrouplist(account, entry.pw_gid) == [gid]
        root = os.path.join(tre_env["TRE_PROJECTS_DIR"], "alpha")
        gid = grp.getgrnam(alpha["group"]).gr_gid
        assert os.stat(os.path.join(root, "work")).st_gid == gid
        assert _mode(os.path.join(root, "work")) == 0o2770
        assert _mode(os.path.join(root, "data")) == 0o750 and os.stat(os.path.join(root, "data")).st_uid == 0
        status = {r["project"]: r for r in cli.ok("project", "status", "--json", as_user="ada").json()}
        assert {m["user"]: m["os_account"] for m in status["alpha"]["members"]} == alpha["accounts"]
        # a member who leaves: their account is locked, not deleted
        from tre.models import ProjectMember

        with store.transaction() as session:
            for member in session.query(ProjectMember).filter_by(project_id="alpha"):
                if member.os_account == alpha["accounts"]["olav"]:
                    member.active = False
        again = cli.ok("project", "provision", "alpha", "--json", as_user="ada").json()
        assert again["locked_accounts"] == [alpha["accounts"]["olav"]]
        assert pwd.getpwnam(alpha["accounts"]["olav"])
    finally:
        accounts = [p.pw_name for p in pwd.getpwall() if p.pw_name.startswith(prefix + "-")]
        groups = [g.gr_name for g in grp.getgrall() if g.gr_name.startswith(prefix + "-")]
        PosixAccounts().remove(accounts, groups)


def test_lock_unlock_and_status(no_isolation, store):
    cli = no_isolation
    with store.transaction() as session:
        make_open_project(session, "alpha", make_user(session, "rita"))
    no_reason = cli("project", "lock", "alpha", as_user="ada")
    assert no_reason.code == 2 and "--reason" in no_reason.err
    locked = cli.ok("project", "lock", "alpha", "--reason", "approval under review", "--json", as_user="ada").json()
    assert locked == {"project": "alpha", "changed": True, "hub_running": False, "stopped": []}
    status = cli.ok("project", "status", "alpha", "--json", as_user="ada").json()[0]
    assert (status["status"], status["lock_reason"]) == ("locked", "approval under review")
    assert cli.ok("project", "unlock", "alpha", "--json", as_user="ada").json()["changed"] is True
    assert cli.ok("project", "status", "--json", as_user="ada").json()[0]["status"] == "active"
    actions = [
        e["action"]
        for e in cli.ok("audit", "log", "--action", "project.*", "--oldest-first", "--json", as_user="ada").json()
    ]
    assert actions == ["project.lock", "project.unlock"]


# The rule, one row per case: who asks, for which project, and what they are told.
ACCESS_CASES = [
    ("rita", "open", None),
    ("nils", "open", "nils is not a member of project open"),
    ("olav", "open", "olav is not a member of project open"),  # membership ended
    ("rita", "locked", "project locked is locked (audit finding)"),
    ("rita", "expired", "the approval of project expired ended on 2026-11-25"),
    ("rita", "future", "the approval of project future is valid from 2026-12-01"),
    ("rita", "revoked", "the approval of project revoked is revoked"),
    ("rita", "unprovisioned", "project unprovisioned is not provisioned for rita"),
    ("rita", "missing", "rita is not a member of project missing"),
    ("rita", "", "open a project"),
    ("rita", "../etc", "no project named '../etc'"),
    ("gone", "open", "'gone' is not an active TRE user"),
]


@pytest.mark.parametrize("user, project, refusal", ACCESS_CASES)
def test_who_may_open_a_project_server(store, user, project, refusal):
    with store.transaction() as session:
        rita, olav = make_user(session, "rita"), make_user(session, "olav")
        make_user(session, "nils", Role.RESEARCHER)
        make_user(session, "gone", Role.RESEARCHER, active=False)
        for pid in ("open", "locked", "expired", "future", "revoked", "unprovisioned"):
            project_row = make_project(
                session, pid, status=ProjectStatus.LOCKED if pid == "locked" else ProjectStatus.ACTIVE
            )
            if pid == "locked":
                project_row.lock_reason = "audit finding"
            rita_member = make_member(session, project_row, rita)
            if pid != "unprovisioned":
                rita_member.os_account, project_row.os_group = f"tre-rita-{pid}", f"tre-{pid}"
            window = {
                "expired": (TODAY - dt.timedelta(days=100), TODAY - dt.timedelta(days=1)),
                "future": (dt.date(2026, 12, 1), dt.date(2027, 12, 1)),
            }.get(pid, (TODAY - dt.timedelta(days=10), TODAY + dt.timedelta(days=10)))
            make_approval(
                session,
                project_row,
                valid_from=window[0],
                valid_until=window[1],
                status=ApprovalStatus.REVOKED if pid == "revoked" else ApprovalStatus.ACTIVE,
            )
            if pid == "open":
                make_member(session, project_row, olav, active=False)
    with store.transaction() as session:
        if refusal is None:
            grant = check_server_access(session, user, project, TODAY, isolation=True)
            assert (grant.os_account, grant.os_group) == ("tre-rita-open", "tre-open")
        else:
            with pytest.raises(PermissionDenied) as refused:
                check_server_access(session, user, project, TODAY, isolation=True)
            assert refusal in str(refused.value)
