"""The review page over HTTP: its own login, XSRF, who sees what, and every view audited."""

from __future__ import annotations

import io
import json
import os
import time
import urllib.parse
import zipfile

import pytest
from conftest import CLI
from review_page import Client, flash, review_page
from review_world import PROJECT, build_world

from tre.credentials import current_totp
from tre.hub_config.launch import set_demo_logins

pytestmark = pytest.mark.slow

CONTEXT = {"population": "adults in the cohort", "shows": "persons by municipality and sex", "relation": "first"}


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("page")
    world = build_world(root)
    logins = {
        x.user: x
        for x in set_demo_logins(
            world.store,
            ["rita", "reidar", "olav", "oda", "omar"],
            actor="ada",
            settings=world.settings,
            environ=world.env,
        )
    }
    with review_page(world.env, root / "page.log") as url:
        yield world, logins, url


def _client(setup, name: str) -> Client:
    _, logins, url = setup
    client = Client(url)
    page = client.login(name, logins[name].password, logins[name].totp_secret)
    assert page.status == 200 and name in page.text, page.text[:500]
    return client


def _events(world, action: str) -> list[dict]:
    return CLI(world.env).ok("audit", "log", "--action", action, "--oldest-first", "--json", as_user="ada").json()


def test_the_page_needs_a_login_with_password_and_code(setup):
    world, logins, url = setup
    anonymous = Client(url, follow=False)
    first = anonymous.get("/")
    assert first.status == 302 and first.headers["Location"].startswith("/login?next=")
    client = Client(url)
    client.get("/login")
    wrong = client.post("/login", {"username": "olav", "password": logins["olav"].password, "code": "000000"})
    assert wrong.status == 403 and "Login failed" in wrong.text
    unknown = client.post("/login", {"username": "mallory", "password": "x" * 12, "code": "123456"})
    assert unknown.status == 403
    assert Client(url, follow=False).get("/").status == 302
    reasons = {(e["actor"], e["details"]["reason"]) for e in _events(world, "review.login_failed")}
    assert {("olav", "wrong second-factor code"), ("mallory", "unknown user")} <= reasons
    home = _client(setup, "olav")
    assert "Review queue" in home.get("/").text
    # Five failures lock the name out for five minutes, even with the right password then.
    CLI(world.env).ok("user", "add", "ruth", "--role", "researcher", as_user="ada")
    (right,) = set_demo_logins(world.store, ["ruth"], actor="ada", settings=world.settings, environ=world.env)
    for _ in range(5):
        client.post("/login", {"username": "ruth", "password": "wrong password!", "code": "000000"})
    locked = client.post(
        "/login", {"username": "ruth", "password": right.password, "code": current_totp(right.totp_secret)}
    )
    assert locked.status == 403
    failed = {(e["actor"], e["details"]["reason"]) for e in _events(world, "review.login_failed")}
    assert ("ruth", "locked out") in failed
    assert any(e["actor"] == "olav" for e in _events(world, "review.login"))


def test_forms_need_the_xsrf_token(setup):
    world, _, _ = setup
    rita = _client(setup, "rita")
    refused = rita.post(f"/projects/{PROJECT}/requests", {"title": "no token"}, xsrf=False)
    assert refused.status == 403
    titles = [r["title"] for r in CLI(world.env).ok("request", "status", "--json", as_user="rita").json()]
    assert "no token" not in titles


def test_a_researcher_and_two_officers_through_the_page(setup):
    world, _, _ = setup
    world.queue_table("by_sex", seed=7)
    rita = _client(setup, "rita")
    project = rita.get(f"/projects/{PROJECT}")
    assert project.status == 200 and "by_sex" in project.text
    made = rita.post(f"/projects/{PROJECT}/requests", {"title": "page flow"})
    label = made.url.rsplit("/", 1)[-1]
    assert label.startswith("REQ-") and "add outputs from the queue" in flash(made)
    added = rita.post(f"/requests/{label}/outputs", {"output": "by_sex", **CONTEXT})
    assert flash(added) == "added by_sex (check protected)"
    assert "Check report" in added.text and '<table class="grid">' in added.text  # the table's preview
    assert flash(rita.post(f"/requests/{label}/submit")).endswith("submitted: two officers review it independently")

    # Another project member sees it; an officer who is a member may not review it.
    assert _client(setup, "reidar").get(f"/requests/{label}").status == 200
    omar = _client(setup, "omar")
    page = omar.get(f"/requests/{label}")
    assert "omar is a member of project diabetes" in page.text and "Record your vote" not in page.text
    refused = omar.post(f"/requests/{label}/outputs/by_sex/vote", {"decision": "approve", "comment": ""})
    assert "omar is a member of project diabetes" in flash(refused)

    olav, oda = _client(setup, "olav"), _client(setup, "oda")
    assert (
        flash(
            olav.post(
                f"/requests/{label}/outputs/by_sex/vote", {"decision": "changes", "comment": "olav wants tertials"}
            )
        )
        == "your vote on by_sex: changes"
    )
    assert "olav wants tertials" not in oda.get(f"/requests/{label}").text  # hidden while independent
    olav.post(f"/requests/{label}/outputs/by_sex/vote", {"decision": "approve", "comment": "olav: fine"})
    assert "waits for the second review" in flash(olav.post(f"/requests/{label}/review"))
    oda.post(f"/requests/{label}/outputs/by_sex/vote", {"decision": "approve", "comment": "oda: fine"})
    assert "APPROVED" in flash(oda.post(f"/requests/{label}/review"))
    assert "olav: fine" in oda.get(f"/requests/{label}").text  # both in: visible

    # The report and a file are views of files: audited.
    report = olav.get(f"/requests/{label}/outputs/by_sex/report")
    assert report.status == 200 and "sandbox" in report.headers["Content-Security-Policy"]
    assert olav.get(f"/requests/{label}/outputs/by_sex/files/cells.csv").text.startswith("kommune,sex,count")
    assert olav.get(f"/requests/{label}/outputs/by_sex/files/../../../data/extract.duckdb").status == 404
    views = [e["details"] for e in _events(world, "request.view_file") if e["object"] == f"request:{label}"]
    assert {"output": "by_sex", "file": "report.json", "project": PROJECT} in views

    released = olav.post(f"/requests/{label}/release")
    assert flash(released).startswith(f"{label} released: bundle {label}.zip")
    bundle = rita.get(f"/requests/{label}/bundle")
    assert bundle.status == 200 and bundle.headers["Content-Type"] == "application/zip"
    manifest = json.loads(zipfile.ZipFile(io.BytesIO(bundle.body)).read(f"{label}/manifest.json"))
    assert [v["reviewer"] for v in manifest["outputs"][0]["votes"]] == ["olav", "oda"]
    assert "olav: fine" not in json.dumps(manifest)  # officers' comments stay central
    downloads = [e for e in _events(world, "release.download") if e["object"] == f"request:{label}"]
    assert [e["actor"] for e in downloads] == ["rita"]


def test_pages_of_others_are_refused_and_the_refusal_audited(setup):
    world, _, _ = setup
    world.queue_table("private", seed=9)
    cli = CLI(world.env)
    label = cli.ok("request", "new", PROJECT, "--json", as_user="rita").json()["request"]
    olav = _client(setup, "olav")
    page = olav.get(f"/requests/{label}")  # PENDING: not submitted, not for officers yet
    assert page.status == 403 and "olav may not see" in page.text
    assert olav.get(f"/projects/{PROJECT}").status == 403
    denied = [e for e in _events(world, "access.denied") if e["actor"] == "olav"]
    assert any(e["object"] == f"review-page:/requests/{label}" for e in denied)


def test_officers_see_the_checked_report_and_no_pseudonyms(setup):
    from tre.output_check.sources import read_pseudonyms

    world, _, _ = setup
    pseudonym = sorted(read_pseudonyms(world.project_dir / "data" / "extract.duckdb"))[0]
    world.queue_file("leaky", f"The first person in the cohort is {pseudonym}.\n")
    folder = world.project_dir / "requests" / "queue" / "leaky"
    (folder / "report.html").write_text("<h1>FORGED: nothing to see</h1>")  # the project can write its queue
    cli = CLI(world.env)
    label = cli.ok("request", "new", PROJECT, "--json", as_user="rita").json()["request"]
    context = [x for k, v in CONTEXT.items() for x in (f"--{k}", v)]
    cli.ok("request", "add", label, "leaky", *context, "--exception", "officers decide", as_user="rita")
    cli.ok("request", "submit", label, as_user="rita")
    olav = _client(setup, "olav")
    page = olav.get(f"/requests/{label}")
    assert "(redacted pseudonym)" in page.text and pseudonym not in page.text
    report = olav.get(f"/requests/{label}/outputs/leaky/report").text
    assert "FORGED" not in report and "PseudonymCheck" in report and pseudonym not in report
    raw = olav.get(f"/requests/{label}/outputs/leaky/files/leaky.txt").text
    assert pseudonym not in raw and "(redacted pseudonym)" in raw


def test_the_page_never_serves_a_file_through_a_link_the_project_planted(setup, tmp_path_factory):
    """Hole 1: a researcher replaced an output's folder in a PENDING request with a link to a
    host folder, and the page (as root) served the host's files. The page now serves the
    central copy only, and reads the queue without following links."""
    world, _, _ = setup
    host = tmp_path_factory.mktemp("host")
    (host / "master.key").write_text("MASTER-KEY-BYTES\n")
    (host / "cells.csv").write_text("kommune,sex,count\nHOST-SECRET,F,1\n")
    (host / "report.json").write_text(json.dumps({"format": "tre-output-check/1", "summary": "HOST-REPORT"}))
    world.queue_table("linked", seed=11)
    cli = CLI(world.env)
    label = cli.ok("request", "new", PROJECT, "--json", as_user="rita").json()["request"]
    cli.ok("request", "add", label, "linked", *[x for k, v in CONTEXT.items() for x in (f"--{k}", v)], as_user="rita")
    planted = world.project_dir / "requests" / label
    planted.mkdir()
    (planted / "linked").symlink_to(host)
    (world.project_dir / "requests" / "queue" / "evil").symlink_to(host)
    rita = _client(setup, "rita")
    served = rita.get(f"/requests/{label}/outputs/linked/files/cells.csv")
    assert served.status == 200 and "HOST-SECRET" not in served.text
    assert served.body == (world.leaving(label, "linked") / "cells.csv").read_bytes()
    key = rita.get(f"/requests/{label}/outputs/linked/files/master.key")
    assert key.status == 404 and b"MASTER-KEY" not in key.body
    queued = rita.get(f"/projects/{PROJECT}/queue/evil/report")
    assert queued.status == 400 and "HOST-REPORT" not in queued.text
    assert "requests/queue/evil: is a symbolic link" in queued.text
    assert rita.get(f"/projects/{PROJECT}").status == 200  # the queue listing leaves the link out
    refused = [e for e in _events(world, "project.file_refused") if e["actor"] == "rita"]
    assert any("requests/queue/evil" in e["details"]["reason"] for e in refused)


def test_a_fifo_in_the_queue_blocks_no_page(setup):
    """A FIFO where the page reads (a queued output's report.json, another's meta.json) used to
    hang root's page for everyone; it is refused without being opened for a blocking read."""
    world, _, _ = setup
    world.queue_table("stuck", seed=12)
    stuck = world.project_dir / "requests" / "queue" / "stuck"
    (stuck / "report.json").unlink()
    os.mkfifo(stuck / "report.json")
    other = world.project_dir / "requests" / "queue" / "stuck2"
    other.mkdir()
    os.mkfifo(other / "meta.json")
    rita, olav = _client(setup, "rita"), _client(setup, "olav")
    started = time.monotonic()
    listing = rita.get(f"/projects/{PROJECT}")
    assert listing.status == 200 and "stuck" in listing.text and "stuck2" not in listing.text
    report = rita.get(f"/projects/{PROJECT}/queue/stuck/report")
    assert report.status == 400 and "requests/queue/stuck/report.json: is a FIFO" in report.text
    assert olav.get("/").status == 200
    assert time.monotonic() - started < 10


@pytest.mark.parametrize("name", ["t" * 300, "a\nb", "x\u202egnp.exe"])
def test_bad_output_names_get_a_message_never_a_500(setup, name):
    world, _, _ = setup
    rita = _client(setup, "rita")
    made = rita.post(f"/projects/{PROJECT}/requests", {"title": "names"})
    label = made.url.rsplit("/", 1)[-1]
    added = rita.post(f"/requests/{label}/outputs", {"output": name, **CONTEXT})
    assert added.status == 200 and "is refused: it" in flash(added)
    assert rita.get(f"/projects/{PROJECT}/queue/{urllib.parse.quote(name)}/report").status in (400, 404)
    titled = rita.post(f"/projects/{PROJECT}/requests", {"title": name + "\n" + name})
    assert titled.status == 200 and "request title" in flash(titled)
