"""Two-person review and release through the CLI, as researchers and officers use it."""

from __future__ import annotations

import json
import zipfile

import pytest
from conftest import CLI
from factories import make_request
from review_world import PROJECT, build_world

from tre.enums import RequestStatus
from tre.errors import InvalidTransition
from tre.models import Project, ReleaseRecord, User
from tre.output_check import policies
from tre.output_check.reports import sha256_file
from tre.output_check.storage import SqlRequestStore
from tre.output_check.workflow import RequestState

CONTEXT = [
    "--population",
    "adults in the cohort, 2023",
    "--shows",
    "persons by municipality and sex",
    "--relation",
    "the first output of the project",
]


@pytest.fixture
def world(tmp_path):
    return build_world(tmp_path)


@pytest.fixture
def cli(world):
    return CLI(world.env)


def _submitted(world, cli, *outputs: str) -> str:
    """A request with `outputs` (queued as tables unless already queued), submitted by rita."""
    label = cli.ok("request", "new", PROJECT, "--title", "diabetes follow-up", "--json", as_user="rita").json()
    label = label["request"]
    for i, name in enumerate(outputs):
        if not (world.project_dir / "requests" / "queue" / name).exists():
            world.queue_table(name, seed=i)
        cli.ok("request", "add", label, name, *CONTEXT, as_user="rita")
    cli.ok("request", "submit", label, as_user="rita")
    return label


def _approve_all(cli, label: str, outputs, *officers: str) -> None:
    for officer in officers:
        for name in outputs:
            cli.ok("review", "vote", label, name, "approve", "--comment", f"{officer}: safe", as_user=officer)
        cli.ok("review", "submit", label, as_user=officer)


def _events(cli, action: str) -> list[dict]:
    return cli.ok("audit", "log", "--action", action, "--oldest-first", "--json", as_user="ada").json()


def test_a_request_from_the_queue_to_a_released_bundle(world, cli):
    world.queue_table("by_kommune")
    world.queue_file("note", "The table counts persons by municipality and sex.\n")
    queued = cli.ok("request", "outputs", PROJECT, "--json", as_user="rita").json()
    assert [(q["name"], q["status"]) for q in queued] == [("by_kommune", "protected"), ("note", "review")]

    label = cli.ok("request", "new", PROJECT, "--title", "Follow-up", "--json", as_user="rita").json()["request"]
    added = cli.ok("request", "add", label, "by_kommune", *CONTEXT, "--json", as_user="rita").json()
    assert added["check_status"] == "protected" and added["missing_context"] == []
    assert not (world.project_dir / "requests" / "queue" / "by_kommune").exists()
    assert not (world.project_dir / "requests" / label).exists()  # requests have no folder in the project
    assert (world.leaving(label, "by_kommune") / "cells.csv").is_file()
    cli.ok("request", "add", label, "note", "--population", "all persons in the extract", as_user="rita")

    refused = cli("request", "submit", label, as_user="rita")
    assert refused.code == 9
    assert refused.err == (
        f"tre: cannot submit {label}: output note lacks its context: what it shows, how it relates to earlier outputs\n"
    )
    cli.ok(
        "request",
        "describe",
        label,
        "note",
        "--shows",
        "a sentence about the table",
        "--relation",
        "describes by_kommune",
        as_user="rita",
    )
    cli.ok("request", "submit", label, as_user="rita")

    queue = cli.ok("review", "queue", "--json", as_user="olav").json()
    assert [(r["request"], r["status"], r["may_review"], r["next"]) for r in queue] == [
        (label, "submitted", True, "review")
    ]
    cli.ok("review", "vote", label, "note", "approve", "--comment", "free text, no numbers", as_user="olav")
    _approve_all(cli, label, ["by_kommune"], "olav")
    early = cli("release", label, as_user="olav")
    assert early.code == 9 and "cannot change" in early.err and "IN_REVIEW" in early.err
    _approve_all(cli, label, ["by_kommune", "note"], "oda")
    assert cli.ok("request", "status", label, "--json", as_user="rita").json()["status"] == "approved"

    done = cli.ok("release", label, "--json", as_user="olav").json()
    bundle = world.settings.exports_dir / PROJECT / f"{label}.zip"
    assert done["bundle"] == str(bundle) and done["bundle_sha256"] == sha256_file(bundle)
    assert not bundle.is_relative_to(world.settings.projects_dir)
    assert (bundle.stat().st_mode & 0o777, world.settings.exports_dir.stat().st_mode & 0o777) == (0o600, 0o700)

    with zipfile.ZipFile(bundle) as z:
        names = set(z.namelist())
        manifest = json.loads(z.read(f"{label}/manifest.json"))
        for f in manifest["files"]:
            assert sha256_file_bytes(z.read(f"{label}/{f['path']}")) == f["sha256"]
        record = json.loads(z.read(f"{label}/checks/by_kommune.json"))
    assert names == {
        f"{label}/manifest.json",
        f"{label}/outputs/by_kommune/table.csv",
        f"{label}/outputs/by_kommune/cells.csv",
        f"{label}/outputs/by_kommune/cells.csv.json",
        f"{label}/outputs/note/note.txt",
        f"{label}/checks/by_kommune.json",
        f"{label}/checks/note.json",
    }  # never the kernel's report.json / report.html, nor meta.json (it names the OS account)
    assert {f["path"] for f in manifest["files"]} == {n.split("/", 1)[1] for n in names} - {"manifest.json"}
    assert record["format"] == "tre-check-record/1" and record["status"] == "protected"
    assert all("value" not in c for c in record["cells"])
    assert not any("evidence." in n for n in names)  # the evidence (records with pseudonyms) never leaves
    assert manifest["approval"]["reference"] == "REF-2026-0001"
    assert manifest["released_by"] == "olav" and manifest["project"]["id"] == PROJECT
    assert "2026.1/threshold=5" in manifest["check_parameters"]
    by_name = {o["name"]: o for o in manifest["outputs"]}
    assert by_name["note"]["context"]["relation"] == "describes by_kommune"
    assert [(v["reviewer"], v["decision"]) for v in by_name["by_kommune"]["votes"]] == [
        ("olav", "approve"),
        ("oda", "approve"),
    ]
    assert "comment" not in by_name["by_kommune"]["votes"][1]  # officers' comments stay central

    released = world.project_dir / "released" / label / "outputs" / "by_kommune"
    sidecar = json.loads((released / "cells.csv.json").read_text())
    assert sidecar["name"] == f"{label}/by_kommune" and sidecar["release"] == label
    assert (released / "cells.csv").read_bytes() == (world.leaving(label, "by_kommune") / "cells.csv").read_bytes()
    with zipfile.ZipFile(bundle) as z:  # released/ holds exactly what the bundle holds
        assert {
            p.relative_to(released.parents[1]).as_posix() for p in released.parents[1].rglob("*") if p.is_file()
        } == {n.split("/", 1)[1] for n in z.namelist()}
    verified = cli.ok("bundle", "verify", str(bundle), "--json", as_user=None).json()
    assert verified["ok"] is True and verified["files"] == len(manifest["files"])
    with world.store.transaction() as session:
        record = session.query(ReleaseRecord).one()
        assert (record.kind.value, record.reference, record.persons) == ("output", label, None)
        assert record.keep_until.year == record.released_at.year + 5
    assert cli.ok("request", "status", label, "--json", as_user="rita").json()["status"] == "released"
    actions = [e["action"] for e in _events(cli, "*") if e["object"] == f"request:{label}"]
    for expected in (
        "request.create",
        "request.add",
        "request.context",
        "request.submit",
        "review.start",
        "review.vote",
        "review.submit",
        "request.reviewed",
        "request.decide",
        "release.release",
    ):
        assert expected in actions, expected
    assert cli.ok("audit", "verify", "--json", as_user="ada").json()["ok"] is True


def sha256_file_bytes(data: bytes) -> str:
    import hashlib

    return hashlib.sha256(data).hexdigest()


def test_the_author_never_reviews_and_an_officer_who_is_a_member_neither(world, cli):
    label = _submitted(world, cli, "t1")
    cli.ok("user", "add", "rita", "--role", "officer", as_user="ada")
    mine = cli("review", "vote", label, "t1", "approve", as_user="rita")
    assert mine.code == 5
    assert mine.err == f"tre: rita cannot review {label}: the author never reviews their own request\n"
    member = cli("review", "vote", label, "t1", "approve", as_user="omar")
    assert member.code == 5
    assert "omar is a member of project diabetes, and reviewers are independent of it" in member.err
    researcher = cli("review", "vote", label, "t1", "approve", as_user="reidar")
    assert researcher.code == 5 and "needs the officer role" in researcher.err
    denied = [e["actor"] for e in _events(cli, "access.denied")]
    assert {"rita", "omar", "reidar"} <= set(denied)
    assert cli.ok("request", "status", label, "--json", as_user="rita").json()["reviews"]["started"] == 0


def test_votes_are_hidden_until_both_reviews_are_submitted(world, cli):
    label = _submitted(world, cli, "t1")
    cli.ok("review", "vote", label, "t1", "changes", "--comment", "merge the small municipalities", as_user="olav")

    def seen(name):
        return cli.ok(
            "request" if name == "rita" else "review",
            "status" if name == "rita" else "show",
            label,
            "--json",
            as_user=name,
        ).json()

    def seen_by(name):
        return seen(name)["files"][0]

    assert [v["reviewer"] for v in seen_by("olav")["votes"]] == ["olav"]
    assert seen_by("oda")["votes"] == [] and seen_by("oda")["decision"] is None
    cli.ok("review", "submit", label, as_user="olav")
    assert seen_by("oda")["votes"] == []  # one review in: still independent
    assert seen_by("rita")["votes"] == []
    cli.ok("review", "vote", label, "t1", "approve", "--comment", "fine as it is", as_user="oda")
    assert [v["reviewer"] for v in seen_by("oda")["votes"]] == ["oda"]
    cli.ok("review", "submit", label, as_user="oda")

    # Both in, and they disagree: the officers see both votes and the conflict; the author waits.
    assert {v["reviewer"] for v in seen_by("olav")["votes"]} == {"olav", "oda"}
    assert seen_by("olav")["decision"] == "conflict"
    assert seen_by("rita")["votes"] == [] and seen("rita")["status"] == "reviewed"
    queue = {r["request"]: r for r in cli.ok("review", "queue", "--json", as_user="otto").json()}
    assert queue[label]["next"] == "settle the conflict"
    cli.ok("review", "vote", label, "t1", "changes", "--comment", "agree with olav", as_user="otto")
    cli.ok("review", "submit", label, as_user="otto")
    assert seen("rita")["status"] == "returned"
    status = seen_by("rita")
    assert status["decision"] == "changes"
    assert [v["comment"] for v in status["votes"]] == [
        "merge the small municipalities",
        "fine as it is",
        "agree with olav",
    ]


def test_one_approval_is_not_enough(world, cli):
    label = _submitted(world, cli, "t1")
    _approve_all(cli, label, ["t1"], "olav")
    assert cli.ok("request", "status", label, "--json", as_user="rita").json()["status"] == "in_review"
    refused = cli("release", label, as_user="otto")
    assert refused.code == 9 and "from IN_REVIEW" in refused.err
    # Even a request marked APPROVED is not released on one approving review.
    with world.store.transaction() as session:
        users = {u.name: u for u in session.query(User).all()}
        from tre.enums import VoteDecision

        row = make_request(
            session,
            session.get(Project, PROJECT),
            users["rita"],
            RequestStatus.APPROVED,
            files=("table2.csv",),
            reviewers=(users["olav"], users["oda"]),
            decisions=(VoteDecision.APPROVE, VoteDecision.CHANGES),
        )
        state: RequestState = SqlRequestStore(session).request(row.id)
    with pytest.raises(InvalidTransition) as refused:
        policies.check_releasable(state)
    assert str(refused.value) == f"cannot release REQ-{row.id}: file table2.csv has 1 approving review, needs 2"


def test_approving_a_failed_check_needs_a_recorded_override(world, cli):
    failing = world.project_dir / "work" / "municipalities.csv"
    failing.parent.mkdir(parents=True, exist_ok=True)
    failing.write_text("region,n\nNord,2\nSor,40\n")
    from tre.safe import Session

    Session(world.project_dir, PROJECT).custom_output(failing, "municipalities per region", name="regions")
    label = cli.ok("request", "new", PROJECT, "--json", as_user="rita").json()["request"]
    cli.ok("request", "add", label, "regions", *CONTEXT, as_user="rita")
    unexplained = cli("request", "submit", label, as_user="rita")
    assert unexplained.code == 9 and "output regions failed its check: ask for an exception" in unexplained.err
    cli.ok("request", "exception", label, "regions", "two municipalities, not two persons", as_user="rita")
    cli.ok("request", "submit", label, as_user="rita")
    refused = cli("review", "vote", label, "regions", "approve", "--comment", "fine", as_user="olav")
    assert refused.code == 9
    assert "its automatic check failed (fail: municipalities.csv: column 'n': 1" in refused.err  # the central verdict
    assert "needs an override justification" in refused.err
    blank = cli("review", "vote", label, "regions", "approve", "--override", "  ", as_user="olav")
    assert blank.code == 9
    misplaced = cli("review", "vote", label, "regions", "reject", "--override", "x", as_user="olav")
    assert misplaced.code == 9 and "goes with approve only" in misplaced.err and "needs a comment" in misplaced.err
    why = "the counts are municipalities, not persons"
    cli.ok("review", "vote", label, "regions", "approve", "--override", why, as_user="olav")
    cli.ok("review", "submit", label, as_user="olav")
    cli.ok("review", "vote", label, "regions", "approve", "--override", "agree: 2 municipalities", as_user="oda")
    cli.ok("review", "submit", label, as_user="oda")
    shown = cli.ok("review", "show", label, "--json", as_user="olav").json()["files"][0]
    assert [v["override"] for v in shown["votes"]] == [why, "agree: 2 municipalities"]
    assert shown["threshold"] == 5 and shown["findings"]  # officers see the central check's parameters and findings
    overrides = _events(cli, "review.override")
    assert [(e["actor"], e["details"]["output"]) for e in overrides] == [("olav", "regions"), ("oda", "regions")]
    assert why not in json.dumps(overrides)  # the text stays with the vote, not in the audit log


def test_what_leaves_is_the_central_copy_and_a_changed_copy_is_not_released(world, cli):
    label = _submitted(world, cli, "t1")
    _approve_all(cli, label, ["t1"], "olav", "oda")
    # Whatever the project writes where a request's folder used to be changes nothing.
    planted = world.project_dir / "requests" / label / "t1"
    planted.mkdir(parents=True)
    (planted / "cells.csv").write_text("kommune,sex,count\n0301,F,2\n")
    # A central copy changed after review (a disk fault, a slip of an administrator) stops the release.
    cells = world.leaving(label, "t1") / "cells.csv"
    cells.write_text(cells.read_text().replace("Total", "Totalt", 1))
    refused = cli("release", label, as_user="otto")
    assert refused.code == 9
    assert refused.err == (
        f"tre: cannot release {label}: the files are not the reviewed files: t1/cells.csv changed after it was "
        "reviewed (sha256 differs); return the request to its author (`tre review return`)\n"
    )
    assert not (world.settings.exports_dir / PROJECT / f"{label}.zip").exists()
    assert not (world.project_dir / "released" / label).exists()
    assert cli.ok("request", "status", label, "--json", as_user="rita").json()["status"] == "approved"
    cli.ok("review", "return", label, "--reason", "t1 changed after review: add it again", as_user="otto")
    returned = cli.ok("request", "status", label, "--json", as_user="rita").json()
    assert (returned["status"], returned["returned_reason"]) == ("returned", "t1 changed after review: add it again")
    cli.ok("request", "reopen", label, as_user="rita")
    cli.ok("request", "remove", label, "t1", as_user="rita")
    back = world.project_dir / "requests" / "queue" / "t1"
    assert back.is_dir() and not (world.settings.outputs_dir / PROJECT / label / "t1").exists()
    assert "Totalt" not in (back / "cells.csv").read_text()  # back as it was queued, from the exact copy
    cli.ok("request", "add", label, "t1", *CONTEXT, as_user="rita")
    world.queue_table("t1b")
    cli.ok("request", "add", label, "t1b", *CONTEXT, as_user="rita")
    cli.ok("request", "submit", label, as_user="rita")
    status = cli.ok("request", "status", label, "--json", as_user="rita").json()
    assert (status["status"], status["round"], status["reviews"]) == ("submitted", 2, {"started": 0, "submitted": 0})
    _approve_all(cli, label, ["t1", "t1b"], "olav", "oda")  # the same officers review the new round
    assert cli.ok("release", label, "--json", as_user="ada").json()["request"] == label  # an admin, as the system


def test_released_tables_are_seen_by_the_differencing_check_of_later_outputs(world, cli):
    from output_check_factories import records

    from tre.safe import Session

    data = records(400, seed=0, persons=world.people)
    fewer = data.drop(data.index[data.kommune == "0301"][:2])  # the same persons but two

    def queue_fewer(name):
        Session(world.project_dir, PROJECT).crosstab(fewer.kommune, fewer.sex, name=name)
        return json.loads((world.project_dir / "requests" / "queue" / name / "report.json").read_text())

    queue_fewer("almost_all")  # checked before anything was released
    queue_fewer("added_late")
    first = _submitted(world, cli, "all_persons")  # 400 persons by municipality and sex
    _approve_all(cli, first, ["all_persons"], "olav", "oda")

    # Added while the first is open (not released), it is audited as if the first were released.
    second = cli.ok("request", "new", PROJECT, "--json", as_user="rita").json()["request"]
    added = cli.ok("request", "add", second, "almost_all", "--json", as_user="rita").json()
    assert added["check_status"] == "review"
    shown = cli.ok("request", "status", second, "--json", as_user="rita").json()["files"][0]
    assert any(
        f["check"] == "DifferencingCheck"
        and "not yet released" in f["message"]
        and f"{first}/all_persons" in f["message"]
        for f in shown["findings"]
    )
    cli.ok("release", first, as_user="otto")

    # Checked before the release but added to a request after it, the same table fails its re-check.
    label = cli.ok("request", "new", PROJECT, "--json", as_user="rita").json()["request"]
    added = cli.ok("request", "add", label, "added_late", "--json", as_user="rita").json()
    assert added["check_status"] == "fail"
    shown = cli.ok("request", "status", label, "--json", as_user="rita").json()["files"][0]
    assert any(f["check"] == "DifferencingCheck" and f"{first}/all_persons" in f["message"] for f in shown["findings"])

    # Made after the release, the kernel's check sees it and suppresses the differing cells.
    report = queue_fewer("made_after")
    assert {"release": f"{first}/all_persons", "relation": "this output's persons are within it",
            "dimensions": ["kommune", "sex"]} in report["relations"]  # fmt: skip
    flagged = [c for c in report["cells"] if "DifferencingCheck" in c["checks"]]
    assert flagged and all(c["published"] is None for c in flagged)


def test_a_release_writes_the_ledger_and_a_planted_link_is_not_followed(world, cli):
    """The release ledger is written centrally; the project's copy in released/.ledger/ replaces
    a link the project planted there instead of writing through it."""
    elsewhere = world.project_dir.parent / "elsewhere"
    elsewhere.mkdir()
    (world.project_dir / "released").mkdir(exist_ok=True)
    (world.project_dir / "released" / ".ledger").symlink_to(elsewhere)
    label = _submitted(world, cli, "by_kommune")
    _approve_all(cli, label, ["by_kommune"], "olav", "oda")
    cli.ok("release", label, as_user="otto")
    stem = f"{label}__by_kommune"
    central = world.settings.ledger_dir / PROJECT
    assert {p.name for p in central.iterdir()} == {f"{stem}.json", f"{stem}.parquet"}
    mirror = world.project_dir / "released" / ".ledger"
    assert not mirror.is_symlink() and {p.name for p in mirror.iterdir()} == {f"{stem}.json", f"{stem}.parquet"}
    assert list(elsewhere.iterdir()) == []


def test_intake_rechecks_the_published_table_that_the_kernel_wrote(world, cli):
    """A project's code writes its own queue: a table changed along with its meta.json, or a
    report that passes a small count, is caught when the output joins a request."""
    from tre.output_check.reports import sha256_file as digest

    for name in ("edited_table", "edited_report"):
        world.queue_table(name)
        folder = world.project_dir / "requests" / "queue" / name
        cells, report_path = folder / "cells.csv", folder / "report.json"
        lines = cells.read_text().splitlines()
        hidden = next(i for i, line in enumerate(lines) if line.endswith(","))
        key = lines[hidden].split(",")[:-1]
        lines[hidden] += "2"  # a suppressed cell, published after all
        cells.write_text("\n".join(lines) + "\n")
        meta = json.loads((folder / "meta.json").read_text())
        if name == "edited_report":
            report = json.loads(report_path.read_text())
            for cell in report["cells"]:
                if [cell["key"][d] for d in report["dimensions"]] == key:
                    cell["published"], cell["status"] = 2, "ok"
            report_path.write_text(json.dumps(report))
            meta["report_sha256"] = digest(report_path)
        for entry in meta["files"]:
            entry["sha256"] = digest(folder / entry["name"])
        (folder / "meta.json").write_text(json.dumps(meta))

    label = cli.ok("request", "new", PROJECT, "--json", as_user="rita").json()["request"]
    for name in ("edited_table", "edited_report"):
        assert cli.ok("request", "add", label, name, "--json", as_user="rita").json()["check_status"] == "fail"
    files = {f["name"]: f for f in cli.ok("request", "status", label, "--json", as_user="rita").json()["files"]}
    messages = {n: " ".join(x["message"] for x in f["findings"]) for n, f in files.items()}
    for name in ("edited_table", "edited_report"):
        assert "cells.csv is not what the central check publishes" in messages[name]


def test_an_output_named_like_an_id_number_is_refused(world, cli):
    world.queue_table("t12345678901")
    label = cli.ok("request", "new", PROJECT, "--json", as_user="rita").json()["request"]
    refused = cli("request", "add", label, "t12345678901", as_user="rita")
    assert refused.code == 1 and "11 digits in a row" in refused.err and "12345678901" not in refused.err


def test_an_output_folder_with_a_link_is_refused(world, cli):
    world.queue_table("linked")
    folder = world.project_dir / "requests" / "queue" / "linked"
    (folder / "extract.duckdb").symlink_to(world.project_dir / "data" / "extract.duckdb")
    label = cli.ok("request", "new", PROJECT, "--json", as_user="rita").json()["request"]
    refused = cli("request", "add", label, "linked", as_user="rita")
    assert refused.code == 12
    assert refused.err == ("tre: requests/queue/linked/extract.duckdb: is a symbolic link (links are never followed)\n")
    assert folder.is_dir()  # still in the queue, nothing moved
    assert not (world.settings.outputs_dir / PROJECT / label / "linked").exists()
    refusals = _events(cli, "project.file_refused")
    assert [(e["actor"], e["object"]) for e in refusals] == [("rita", "tre request add")]


def test_a_kernel_that_weakened_its_parameters_is_caught_at_intake(world, cli):
    """The kernel raised nk_k (and dropped p%) in safe.session().params: its report
    passes a dominated cell. Intake rebuilds the output from its evidence with the project's
    parameters: the published files differ, the verdict is fail, and only that verdict is kept."""
    import dataclasses

    from output_check_factories import records

    from tre.safe import Session

    session = Session(world.project_dir, PROJECT)
    session.params = dataclasses.replace(session.params, nk_k=1.5, p_ratio=0.0)
    data = records(400, seed=1, persons=world.people)
    data.loc[data.index[data.kommune == "4601"][0], "cost"] = 5_000_000
    shown = session.pivot_table(data, values="cost", index="kommune", aggfunc="sum", name="weakened")
    assert shown.loc["4601", "cost"] > 5_000_000  # the dominated total, published by the weakened kernel
    label = cli.ok("request", "new", PROJECT, "--json", as_user="rita").json()["request"]
    added = cli.ok("request", "add", label, "weakened", *CONTEXT, "--json", as_user="rita").json()
    assert added["check_status"] == "fail"
    output = cli.ok("request", "status", label, "--json", as_user="rita").json()["files"][0]
    messages = " ".join(f["message"] for f in output["findings"])
    assert "not what the central check publishes" in messages
    assert not any(f["check"] == "NKCheck" and f["status"] == "pass" for f in output["findings"])
