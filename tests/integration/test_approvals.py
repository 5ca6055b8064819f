"""Approval records: check, sync, expiry and locks, deadlines and fees, through the CLI."""

import datetime as dt
import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
NOW = dt.datetime(2026, 11, 26, 12, 0, tzinfo=dt.UTC)
DEMO_USERS = {"rita": "researcher", "reidar": "researcher", "sara": "researcher", "mona": "researcher"}


def clock(moment=NOW):
    return lambda: moment


@pytest.fixture
def tre(initialised, tre_env):
    """A TRE with the demo researchers and the repository's three example approvals."""
    for name, role in DEMO_USERS.items():
        initialised.ok("user", "add", name, "--role", role, as_user="ada")
    approvals = Path(tre_env["TRE_APPROVALS_DIR"])
    shutil.copytree(REPO / "approvals", approvals)
    initialised.approvals = approvals
    return initialised


def test_example_approvals_are_valid(tre):
    result = tre.ok("approvals", "check", "--json", as_user="ada", clock=clock())
    assert result.json()["problems"] == []
    assert sorted(result.json()["records"]) == ["anon43-2026-031", "hrl20-2026-017", "rek-2026-118"]


BROKEN = """
id = "broken-1"
kind = "direct45"
reference = "x"
basis = "hrl20"
legal_basis = "none"
purpose = "insurance"
purpose_description = "premiums"
applicant = "An insurer"
linkage = false
application_complete = 2026-01-01
valid_from = 2026-01-01
valid_until = 2026-06-30
retention_years = 12
date_precision = "week"
colour = "blue"

[project]
id = "ins"
title = "Insurance"

[[members]]
user = "nobody"
role = "pi"

[period]
from = 2024-01-01
to = 2023-01-01

[sources]
kuhr = ["icpc2", "shoe_size"]
vault = ["fnr"]
reservasjon = ["kind"]
"""


def test_check_reports_every_problem_at_once(tre):
    (tre.approvals / "broken.toml").write_text(BROKEN)
    result = tre("approvals", "check", "--json", as_user="ada", clock=clock())
    assert result.code != 0
    problems = {(p["file"], p["field"]): p["message"] for p in result.json()["problems"]}
    expected_fields = {
        "purpose": "never allowed (§ 4-1), not even with the data subjects' consent",
        "basis": "needs REK approval, an hrl § 7 permit or a law",
        "retention_years": "at most 10 years",
        "date_precision": "'week' is not one of",
        "colour": "unknown field",
        "members[0].user": "unknown user 'nobody'",
        "period": "from is after to",
        "sources.kuhr": "unknown variable 'shoe_size'",
        "sources.vault": "unknown source",
        "sources.reservasjon": "central-only",
        "valid_until": "validity ended on 2026-06-30",
        "recipient": "missing",
    }
    for field, text in expected_fields.items():
        assert text in problems[("broken.toml", field)], field
    assert "approvals in" in result.err and "problem(s)" in result.err


def test_sync_versions_revokes_and_locks(tre):
    first = tre.ok("approvals", "sync", "--json", as_user="ada", clock=clock()).json()
    assert sorted(first["added"]) == ["anon43-2026-031", "hrl20-2026-017", "rek-2026-118"]
    assert first["locked_projects"] == []
    again = tre.ok("approvals", "sync", "--json", as_user="ada", clock=clock()).json()
    assert again["added"] == [] and len(again["unchanged"]) == 3

    path = tre.approvals / "hrl20-diabetes-followup.toml"
    path.write_text(path.read_text().replace("retention_years = 5", "retention_years = 7"))
    changed = tre.ok("approvals", "sync", "--json", as_user="ada", clock=clock()).json()
    assert changed["changed"] == ["hrl20-2026-017"]
    listed = {a["id"]: a for a in tre.ok("approvals", "list", "--json", as_user="ada").json()}
    assert listed["hrl20-2026-017"]["version"] == 2

    (tre.approvals / "anon43-bergen-care.toml").unlink()
    removed = tre.ok("approvals", "sync", "--json", as_user="ada", clock=clock()).json()
    assert removed["revoked"] == ["anon43-2026-031"] and removed["locked_projects"] == ["bergen-care"]

    later = clock(dt.datetime(2028, 7, 1, tzinfo=dt.UTC))  # the REK approval ended 2028-06-30
    expired = tre.ok("approvals", "sync", "--json", as_user="ada", clock=later).json()
    assert expired["expired"] == ["rek-2026-118"] and expired["locked_projects"] == ["heartcohort"]

    log = tre.ok("audit", "log", "--json", as_user="ada").json()
    actions = [e["action"] for e in log]
    for action in ("approval.add", "approval.change", "approval.revoke", "approval.expire", "project.lock"):
        assert action in actions
    assert tre.ok("audit", "verify", as_user="ada").code == 0


def test_a_broken_edit_keeps_the_last_good_version(tre):
    tre.ok("approvals", "sync", as_user="ada", clock=clock())
    path = tre.approvals / "rek-heart-cohort.toml"
    path.write_text(path.read_text().replace('purpose = "research"', 'purpose = "prosecution"'))
    result = tre("approvals", "sync", "--json", as_user="ada", clock=clock())
    assert result.code != 0
    assert result.json()["revoked"] == [] and "rek-2026-118" not in result.json()["changed"]
    listed = {a["id"]: a for a in tre.ok("approvals", "list", "--json", as_user="ada").json()}
    assert listed["rek-2026-118"]["status"] == "active" and listed["rek-2026-118"]["version"] == 1


def _edit(tre, file, **lines):
    """Replace whole lines of an approval file: `old line` -> `new line`."""
    path = tre.approvals / file
    text = path.read_text()
    for old, new in lines.values():
        assert old in text
        text = text.replace(old, new, 1)
    path.write_text(text)


@pytest.mark.parametrize("kind", ["employer", "insurer", "police", "prosecution"])
def test_recipients_that_may_never_have_kpr_data_are_refused_even_with_consent(tre, kind):
    """§ 4-1: an allowed purpose and the data subjects' consent do not open KPR data to an
    employer's HR department, an insurer, the police or the prosecuting authority."""
    tre.ok("approvals", "sync", as_user="ada", clock=clock())
    _edit(
        tre,
        "hrl20-diabetes-followup.toml",
        kind=('kind = "university"', f'kind = "{kind}"'),
        basis=('basis = "hrl20"', 'basis = "consent"'),
    )
    result = tre("approvals", "sync", "--json", as_user="ada", clock=clock())
    assert result.code != 0 and "hrl20-2026-017" not in result.json()["changed"]
    (problem,) = [p for p in result.json()["problems"] if p["field"] == "recipient.kind"]
    assert "may never receive KPR data (§ 4-1" in problem["message"] and "consent" in problem["message"]
    checked = tre("approvals", "check", as_user="ada", clock=clock())
    assert checked.code != 0 and "§ 4-1" in checked.err and "Traceback" not in checked.err


@pytest.mark.parametrize("number", ["100000017", "10000001", "1000000160", "98765432x", "100000106"])
def test_an_invalid_organisation_number_is_refused_with_what_to_do(tre, number):
    _edit(tre, "rek-heart-cohort.toml", org=('org_number = "100000016"', f'org_number = "{number}"'))
    result = tre("approvals", "check", "--json", as_user="ada", clock=clock())
    assert result.code != 0
    (problem,) = [p for p in result.json()["problems"] if p["field"] == "recipient.org_number"]
    assert "mod-11 check digit" in problem["message"] and "Enhetsregisteret" in problem["message"]


def test_other_purposes_need_consent_or_a_law(tre):
    """§ 4-1 second paragraph: outside the § 1-1 purposes only with the data subjects' consent
    (or where a law says so); the forbidden purposes stay forbidden even then."""
    file = "hrl20-diabetes-followup.toml"
    _edit(tre, file, purpose=('purpose = "research"', 'purpose = "patient_education"'))
    refused = tre("approvals", "check", "--json", as_user="ada", clock=clock())
    assert refused.code != 0
    messages = {p["field"]: p["message"] for p in refused.json()["problems"]}
    assert "needs the data subjects' consent" in messages["purpose"]
    _edit(tre, file, basis=('basis = "hrl20"', 'basis = "consent"'))
    allowed = tre("approvals", "check", "--json", as_user="ada", clock=clock())
    assert [p for p in allowed.json()["problems"] if p["file"] == file] == []
    assert "hrl20-2026-017" in tre.ok("approvals", "sync", "--json", as_user="ada", clock=clock()).json()["added"]
    _edit(tre, file, purpose=('purpose = "patient_education"', 'purpose = "insurance"'))
    assert "never allowed (§ 4-1)" in tre("approvals", "check", as_user="ada", clock=clock()).err


@pytest.mark.parametrize("reference", ["REK 2026/118833", "2026/118833", "REK sør 2026/118833", "REK vest 2026"])
def test_a_rek_approval_needs_a_reference_in_reks_form(tre, reference):
    """The key custodian approves a § 4-5 build against the REK reference (§ 5-2): it must be one."""
    _edit(tre, "rek-heart-cohort.toml", ref=('reference = "REK sør-øst 2026/118833"', f'reference = "{reference}"'))
    result = tre("approvals", "check", "--json", as_user="ada", clock=clock())
    assert result.code != 0
    messages = {(p["file"], p["field"]): p["message"] for p in result.json()["problems"]}
    assert "is not a REK reference" in messages[("rek-heart-cohort.toml", "reference")]


def test_only_admins_sync(tre):
    refused = tre("approvals", "sync", as_user="rita")
    assert refused.code == 5 and "needs the admin role" in refused.err


def test_deadlines_and_preliminary_reply(tre):
    tre.ok("approvals", "sync", as_user="ada", clock=clock())
    rows = {
        r["approval_id"]: r for r in tre.ok("approvals", "deadlines", "--json", as_user="ada", clock=clock()).json()
    }
    assert rows["hrl20-2026-017"]["due"] == "2027-01-14" and rows["hrl20-2026-017"]["status"] == "on time"
    assert rows["rek-2026-118"]["due"] == "2026-11-16" and rows["rek-2026-118"]["status"] == "overdue"
    assert rows["anon43-2026-031"]["due"] == "2026-12-14" and rows["anon43-2026-031"]["status"] == "on time"
    soon = clock(dt.datetime(2026, 12, 8, 9, tzinfo=dt.UTC))
    rows = {r["approval_id"]: r for r in tre.ok("approvals", "deadlines", "--json", as_user="ada", clock=soon).json()}
    assert rows["anon43-2026-031"]["status"] == "due soon"

    tre.ok(
        "approvals",
        "reply",
        "rek-2026-118",
        "--preliminary",
        "--reason",
        "linkage with NPR delayed",
        "--expected",
        "2026-12-18",
        as_user="ada",
        clock=clock(),
    )
    rows = {
        r["approval_id"]: r for r in tre.ok("approvals", "deadlines", "--json", as_user="ada", clock=clock()).json()
    }
    assert (
        rows["rek-2026-118"]["preliminary_reply"] == "2026-11-26" and rows["rek-2026-118"]["expected"] == "2026-12-18"
    )
    past = tre(
        "approvals",
        "reply",
        "rek-2026-118",
        "--preliminary",
        "--reason",
        "x",
        "--expected",
        "2026-01-01",
        as_user="ada",
        clock=clock(),
    )
    assert past.code != 0 and "must be after today" in past.err


def test_an_expired_or_revoked_approval_shows_so_in_deadlines_not_on_time(tre):
    """An approval whose validity ended before its due date, nothing delivered, has no deadline
    left: `expired` (before and after a sync marks it), `revoked` once its file is gone."""
    path = tre.approvals / "hrl20-diabetes-followup.toml"
    path.write_text(path.read_text().replace("valid_until = 2029-12-31", "valid_until = 2026-12-01"))
    tre.ok("approvals", "sync", as_user="ada", clock=clock())

    def status(moment, approval="hrl20-2026-017"):
        rows = tre.ok("approvals", "deadlines", "--json", as_user="ada", clock=clock(moment)).json()
        return {r["approval_id"]: r["status"] for r in rows}[approval]

    assert status(NOW) == "on time"  # due 2027-01-14, still valid
    later = dt.datetime(2026, 12, 10, 9, tzinfo=dt.UTC)
    assert status(later) == "expired"  # not yet synced: its validity ended on 1 December
    tre.ok("approvals", "sync", as_user="ada", clock=clock(later))
    assert status(later) == "expired"
    assert "expired" in tre.ok("approvals", "deadlines", as_user="ada", clock=clock(later)).out
    (tre.approvals / "anon43-bergen-care.toml").unlink()
    tre.ok("approvals", "sync", as_user="ada", clock=clock())
    assert status(NOW, "anon43-2026-031") == "revoked"


def test_invoices_never_exceed_the_actual_cost(tre):
    tre.ok("approvals", "sync", as_user="ada", clock=clock())
    tre.ok(
        "fees", "record", "hrl20-2026-017", "--hours", "10", "--rate", "950", "--note", "case handling", as_user="ada"
    )
    tre.ok("fees", "record", "hrl20-2026-017", "--cost", "2500", "--note", "extraction compute", as_user="ada")
    over = tre("fees", "invoice", "hrl20-2026-017", "--amount", "12000.01", as_user="ada")
    assert over.code != 0 and "§ 4-9 allows at most the actual cost" in over.err
    tre.ok("fees", "invoice", "hrl20-2026-017", "--amount", "10000", as_user="ada")
    second = tre("fees", "invoice", "hrl20-2026-017", "--amount", "2000.01", as_user="ada")
    assert second.code != 0
    account = tre.ok("fees", "invoice", "hrl20-2026-017", "--amount", "2000", "--json", as_user="ada").json()
    assert account["actual_cost_nok"] == 12000 and account["invoiced_nok"] == 12000
    bad = tre("fees", "record", "hrl20-2026-017", "--hours", "2", as_user="ada")
    assert bad.code == 2 and "--hours with --rate" in bad.err


def test_a_misspelt_key_inside_a_table_is_a_problem(tre):
    """A key the schema does not know is reported wherever it is: a misspelt `age.min` would
    otherwise be ignored and the cohort wider than approved."""
    path = tre.approvals / "rek-heart-cohort.toml"
    text = path.read_text().replace("min = 18", "minimum = 18")
    text = text.replace("[period]\n", "[period]\nuntil = 2025-01-01\n").replace(
        "[project]\n", '[project]\nowner = "x"\n'
    )
    path.write_text(text)
    result = tre("approvals", "check", "--json", as_user="ada", clock=clock())
    assert result.code != 0
    problems = {(p["file"], p["field"]): p["message"] for p in result.json()["problems"]}
    for field in ("cohort.age.minimum", "period.until", "project.owner"):
        assert problems[("rek-heart-cohort.toml", field)] == "unknown field", field


def test_two_approval_files_for_one_project_are_refused(tre):
    """Each approval sets the project's members: two files for one project would take turns
    at it on every sync. Both are reported; the one in force stays, the new one is not loaded."""
    tre.ok("approvals", "sync", as_user="ada", clock=clock())
    text = (tre.approvals / "rek-heart-cohort.toml").read_text()
    renewal = text.replace('id = "rek-2026-118"', 'id = "rek-2027-004"').replace('user = "rita"', 'user = "reidar"')
    (tre.approvals / "rek-heart-renewal.toml").write_text(renewal)
    checked = tre("approvals", "check", "--json", as_user="ada", clock=clock())
    problems = {(p["file"], p["field"]): p["message"] for p in checked.json()["problems"]}
    assert "rek-2027-004 (rek-heart-renewal.toml)" in problems[("rek-heart-cohort.toml", "project.id")]
    assert "rek-2026-118 (rek-heart-cohort.toml)" in problems[("rek-heart-renewal.toml", "project.id")]
    for _ in range(2):
        synced = tre("approvals", "sync", "--json", as_user="ada", clock=clock())
        assert synced.code != 0 and synced.json()["added"] == [] and synced.json()["revoked"] == []
    listed = {a["id"] for a in tre.ok("approvals", "list", "--json", as_user="ada").json()}
    assert "rek-2027-004" not in listed
    status = {s["project"]: s for s in tre.ok("project", "status", "--json", as_user="ada", clock=clock()).json()}
    assert {m["user"] for m in status["heartcohort"]["members"] if m["active"]} == {"sara", "rita"}
    members = tre.ok("audit", "log", "--action", "project.member.remove", "--json", as_user="ada").json()
    assert members == []


@pytest.mark.parametrize("amount", ["nan", "inf"])
def test_fees_and_estimates_are_finite_numbers(tre, amount):
    tre.ok("approvals", "sync", as_user="ada", clock=clock())
    for argv in (("--cost", amount), ("--hours", amount, "--rate", "950"), ("--hours", "2", "--rate", amount)):
        refused = tre("fees", "record", "hrl20-2026-017", *argv, as_user="ada")
        assert refused.code == 1 and "must be a number more than 0" in refused.err, (argv, refused.err)
    refused = tre("fees", "invoice", "hrl20-2026-017", "--amount", amount, as_user="ada")
    assert refused.code == 1 and "must be a number more than 0" in refused.err
    assert tre.ok("fees", "show", "hrl20-2026-017", "--json", as_user="ada").json()["actual_cost_nok"] == 0
    path = tre.approvals / "hrl20-diabetes-followup.toml"
    path.write_text(path.read_text().replace("fee_estimate_nok = ", f"fee_estimate_nok = {amount} # was "))
    checked = tre("approvals", "check", "--json", as_user="ada", clock=clock())
    problems = {(p["file"], p["field"]): p["message"] for p in checked.json()["problems"]}
    assert "finite" in problems[("hrl20-diabetes-followup.toml", "fee_estimate_nok")]


def test_an_approval_not_yet_valid_does_not_lock_and_a_renewal_unlocks(tre):
    path = tre.approvals / "anon43-bergen-care.toml"
    path.write_text(path.read_text().replace("valid_from = 2026-11-01", "valid_from = 2027-01-01"))
    first = tre.ok("approvals", "sync", "--json", as_user="ada", clock=clock()).json()
    assert "bergen-care" not in first["locked_projects"]  # it starts later: nothing to lock yet

    after_end = clock(dt.datetime(2028, 1, 2, tzinfo=dt.UTC))  # valid until 2027-12-31
    expired = tre.ok("approvals", "sync", "--json", as_user="ada", clock=after_end).json()
    assert "bergen-care" in expired["locked_projects"]

    path.write_text(path.read_text().replace("valid_until = 2027-12-31", "valid_until = 2028-12-31"))
    renewed = tre.ok("approvals", "sync", "--json", as_user="ada", clock=after_end).json()
    assert renewed["unlocked_projects"] == ["bergen-care"]

    tre.ok("project", "lock", "bergen-care", "--reason", "audit of the municipality's use", as_user="ada")
    again = tre.ok("approvals", "sync", "--json", as_user="ada", clock=after_end).json()
    assert again["unlocked_projects"] == []  # an admin's own lock stays
