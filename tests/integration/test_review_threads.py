"""Comment threads, exception requests and outputs added together (issue 18), as the CLI and the
review page give them to researchers and officers, and as a hostile member or officer would try
to abuse them."""

from __future__ import annotations

import json

import pytest
from review_page import Client, flash, review_page
from review_world import PROJECT, build_world

from tre.hub_config.launch import set_demo_logins

CONTEXT = ("--population", "adults discharged in 2023", "--shows", "persons by municipality", "--relation", "first")


@pytest.fixture
def world(tmp_path):
    return build_world(tmp_path)


@pytest.fixture
def cli(world):
    return world.cli


def _events(cli, action: str) -> list[dict]:
    return cli.ok("audit", "log", "--action", action, "--oldest-first", "--json", as_user="ada").json()


def _thread(cli, label, user, output=None) -> list[str]:
    data = cli.ok("request", "status", label, "--json", as_user=user).json() if user in ("rita", "reidar") else None
    data = data or cli.ok("review", "show", label, "--json", as_user=user).json()
    where = data["comments"] if output is None else next(f for f in data["files"] if f["name"] == output)["comments"]
    return [c["body"] for c in where]


def test_outputs_added_together_share_a_context_and_a_group_all_or_none(world, cli):
    for i, name in enumerate(("t1", "t2", "t3")):
        world.queue_table(name, seed=i)
    label = cli.ok("request", "new", PROJECT, "--json", as_user="rita").json()["request"]
    added = cli.ok("request", "add", label, "t1", "t2", *CONTEXT, "--group", "cohort", "--json", as_user="rita")
    assert [(o["output"], o["group"], o["missing_context"]) for o in added.json()] == [
        ("t1", "cohort", []),
        ("t2", "cohort", []),
    ]
    cli.ok("request", "describe", label, "--group", "cohort", "--relation", "the second pair", as_user="rita")
    files = {f["name"]: f for f in cli.ok("request", "status", label, "--json", as_user="rita").json()["files"]}
    assert {n: f["context"]["relation"] for n, f in files.items()} == {"t1": "the second pair", "t2": "the second pair"}
    assert [e["details"]["group"] for e in _events(cli, "request.add")] == ["cohort", "cohort"]

    # One output that cannot be added (not queued) leaves the others in the queue, and none in the request.
    refused = cli("request", "add", label, "t3", "nosuch", *CONTEXT, as_user="rita")
    assert refused.code != 0 and "nosuch" in refused.err
    assert [q["name"] for q in cli.ok("request", "outputs", PROJECT, "--json", as_user="rita").json()] == ["t3"]
    assert not (world.settings.outputs_dir / PROJECT / label / "t3").exists()
    bad_group = cli("request", "add", label, "t3", "--group", "a\u202egroup", as_user="rita")
    assert bad_group.code == 2 and "invisible formatting character" in bad_group.err
    several = cli("request", "add", label, "t3", "t1", "--exception", "x", as_user="rita")
    assert several.code == 2 and "--exception goes with one output" in several.err


def test_a_failed_check_needs_an_exception_before_submission(world, cli):
    failing = world.project_dir / "work" / "small.csv"
    failing.parent.mkdir(parents=True, exist_ok=True)
    failing.write_text("region,n\nNord,2\nSor,40\n")
    from tre.safe import Session

    Session(world.project_dir, PROJECT).custom_output(failing, "persons per region", name="small")
    label = cli.ok("request", "new", PROJECT, "--json", as_user="rita").json()["request"]
    added = cli.ok("request", "add", label, "small", *CONTEXT, as_user="rita").out
    assert "its check failed: it needs an exception (`tre request exception`)" in added
    refused = cli("request", "submit", label, as_user="rita")
    assert refused.code == 9 and "output small failed its check: ask for an exception" in refused.err
    why = "the two are municipalities, not persons"
    assert cli.ok("request", "exception", label, "small", why, as_user="rita").out.strip() == (
        "small: exception requested"
    )
    not_author = cli("request", "exception", label, "small", "mine", as_user="reidar")
    assert not_author.code == 5
    cli.ok("request", "submit", label, as_user="rita")
    late = cli("request", "exception", label, "small", "changed my mind", as_user="rita")
    assert late.code == 9 and "PENDING" in late.err
    shown = cli.ok("review", "show", label, "--json", as_user="olav").json()["files"][0]
    assert shown["exception"] == why
    assert "exception requested: the two are municipalities" in cli.ok("review", "show", label, as_user="olav").out
    events = _events(cli, "request.exception")
    assert [(e["actor"], e["details"]["chars"]) for e in events] == [("rita", len(why))]
    assert why not in json.dumps(events)  # the text stays with the output, not in the audit log


def test_threads_follow_the_rules_of_the_votes(world, cli):
    world.queue_table("t1")
    label = cli.ok("request", "new", PROJECT, "--json", as_user="rita").json()["request"]
    cli.ok("request", "add", label, "t1", *CONTEXT, as_user="rita")
    cli.ok("request", "comment", label, "--text", "the notebook shows how the cohort was drawn", as_user="rita")
    pending = cli("review", "comment", label, "--text", "too early", as_user="olav")
    assert pending.code == 5  # officers do not see a PENDING request
    cli.ok("request", "submit", label, as_user="rita")

    # Reviewers: each reads the project's comments at once, the other's only once both reviews are in.
    cli.ok("review", "comment", label, "t1", "--text", "olav: is 0301 all of Oslo?", as_user="olav")
    cli.ok("review", "comment", label, "--text", "olav: between us officers", "--officers-only", as_user="olav")
    assert _thread(cli, label, "olav") == ["the notebook shows how the cohort was drawn", "olav: between us officers"]
    assert _thread(cli, label, "oda", "t1") == []
    assert _thread(cli, label, "oda") == ["the notebook shows how the cohort was drawn"]
    assert _thread(cli, label, "rita", "t1") == [] and "between us" not in str(_thread(cli, label, "reidar"))
    for officer in ("olav", "oda"):
        cli.ok("review", "vote", label, "t1", "changes", "--comment", f"{officer}: merge small areas", as_user=officer)
        cli.ok("review", "submit", label, as_user=officer)
    assert cli.ok("request", "status", label, "--json", as_user="rita").json()["status"] == "returned"

    def view(name, officer="olav"):
        return [r["request"] for r in cli.ok("review", "queue", "--view", name, "--json", as_user=officer).json()]

    assert label in view("reviewed-by-me") and label in view("returned") and label not in view("waiting-for-me")
    assert label not in view("reviewed-by-me", "otto") and label not in view("open")
    bad = cli("review", "queue", "--view", "everything", as_user="olav")
    assert bad.code == 2 and "invalid choice" in bad.err
    # Decided: the project reads the reviewers' comments, never the officers-only one.
    assert _thread(cli, label, "rita", "t1") == ["olav: is 0301 all of Oslo?"]
    assert _thread(cli, label, "reidar") == ["the notebook shows how the cohort was drawn"]
    assert _thread(cli, label, "oda") == ["the notebook shows how the cohort was drawn", "olav: between us officers"]
    cli.ok("request", "comment", label, "t1", "--text", "yes: all of Oslo, one municipality", as_user="rita")
    assert _thread(cli, label, "oda", "t1") == ["olav: is 0301 all of Oslo?", "yes: all of Oslo, one municipality"]

    # Who may not write: a member as an officer, an officer who is a member, a stranger; nor in a closed thread.
    private = cli("request", "comment", label, "--text", "x", as_user="reidar")
    assert private.code == 0
    member_private = cli("review", "comment", label, "--text", "x", "--officers-only", as_user="omar")
    assert member_private.code == 5
    empty = cli("request", "comment", label, "--text", "   ", as_user="rita")
    assert empty.code == 2 and "is empty" in empty.err
    bidi = cli("request", "comment", label, "--text", "ok \u202etxt.exe", as_user="rita")
    assert bidi.code == 2 and "invisible formatting character" in bidi.err
    cli.ok("request", "withdraw", label, as_user="rita")
    closed = cli("request", "comment", label, "--text", "after the end", as_user="rita")
    assert closed.code == 9 and "threads are closed" in closed.err
    events = _events(cli, "request.comment")
    assert [(e["actor"], e["details"]["written_as"], e["details"]["visibility"]) for e in events][:3] == [
        ("rita", "member", "everyone"),
        ("olav", "officer", "everyone"),
        ("olav", "officer", "officers"),
    ]
    assert "Oslo" not in json.dumps(events)


@pytest.mark.slow
def test_the_page_filters_the_queue_and_carries_threads_and_exceptions(world, cli, tmp_path):
    world.queue_table("t1")
    world.queue_table("t2", seed=1)
    logins = {x.user: x for x in set_demo_logins(world.store, ["rita", "olav", "oda"], actor="ada")}
    with review_page(world.env, tmp_path / "page.log") as url:
        rita = Client(url)
        rita.login("rita", logins["rita"].password, logins["rita"].totp_secret)
        page = rita.post(f"/projects/{PROJECT}/requests", {"title": "two tables"})
        label = page.url.rsplit("/", 1)[-1]
        context = {"population": "adults", "shows": "persons by municipality", "relation": "first"}
        added = rita.post(f"/requests/{label}/outputs", {"output": ["t1", "t2"], **context, "group": "pair"})
        assert flash(added) == "added t1 (check protected), t2 (check protected)"
        assert rita.post(f"/requests/{label}/outputs/t1/exception", {"exception": "needed"}).status == 200
        assert rita.post(f"/requests/{label}/comments", {"text": "<script>alert(1)</script>"}).status == 200
        shown = rita.get(f"/requests/{label}").text
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in shown and "<script>" not in shown
        rita.post(f"/requests/{label}/submit")

        olav = Client(url)
        olav.login("olav", logins["olav"].password, logins["olav"].totp_secret)
        assert label in olav.get("/?view=waiting-for-me").text
        assert label not in olav.get("/?view=released").text
        assert olav.get("/?view=everything").status == 400
        page = olav.get(f"/requests/{label}").text
        assert '<div class="report" id="report-t1">' in page and 'iframe class="report"' not in page
        assert "needed</blockquote>" in page
        olav.post(f"/requests/{label}/comments", {"text": "olav: fine", "output": "t1", "officers_only": "yes"})
        for name in ("t1", "t2"):
            olav.post(f"/requests/{label}/outputs/{name}/vote", {"decision": "approve", "comment": "ok"})
        olav.post(f"/requests/{label}/review")
        assert label in olav.get("/?view=reviewed-by-me").text and label not in olav.get("/?view=waiting-for-me").text
        assert 'id="why-not"' not in olav.get(f"/requests/{label}").text
        stranger = Client(url)
        stranger.login("rita", logins["rita"].password, logins["rita"].totp_secret)
        forged = stranger.post(f"/requests/{label}/comments", {"text": "x", "officers_only": "yes"})
        assert "written by officers, not by the project" in flash(forged)
