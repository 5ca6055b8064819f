"""Every step of the review workflow from every state: done, or refused naming the rule.

Each cell builds a request in the column's state (factories) and takes the row's step through
the workflow on a real metadata store and real files. `ok` means the step is done; `state`
means refused as an invalid transition (InvalidTransition); `who` means refused because of
who acts (PermissionDenied).
"""

from __future__ import annotations

import pytest
from factories import make_request
from review_world import PROJECT, build_world
from tables import parse_table

from tre.enums import RequestStatus
from tre.errors import InvalidTransition, PermissionDenied
from tre.models import Project, User

S = RequestStatus

STEPS = parse_table(
    """
    step           | by   | PENDING | SUBMITTED | IN_REVIEW | REVIEWED | APPROVED | RETURNED | REJECTED | RELEASED | WITHDRAWN
    ---------------+------+---------+-----------+-----------+----------+----------+----------+----------+----------+----------
    add output     | rita | ok      | state     | state     | state    | state    | state    | state    | state    | state
    submit         | rita | ok      | state     | state     | state    | state    | state    | state    | state    | state
    withdraw       | rita | ok      | ok        | ok        | ok       | state    | ok       | state    | state    | state
    reopen         | rita | state   | state     | state     | state    | state    | ok       | state    | state    | state
    vote           | otto | state   | ok        | ok        | ok       | state    | state    | state    | state    | state
    submit review  | olav | state   | state     | ok        | state    | state    | state    | state    | state    | state
    return         | otto | state   | state     | state     | state    | ok       | state    | state    | state    | state
    release        | otto | state   | state     | state     | state    | ok       | state    | state    | state    | state
    submit         | otto | who     | who       | who       | who      | who      | who      | who      | who      | who
    withdraw       | olav | who     | who       | who       | who      | who      | who      | who      | who      | who
    vote           | omar | who     | who       | who       | who      | who      | who      | who      | who      | who
    vote           | rita | who     | who       | who       | who      | who      | who      | who      | who      | who
    release        | rita | who     | who       | who       | who      | who      | who      | who      | who      | who
    """
)


def _step(wf, step: str, by: str, label: str):
    if step == "add output":
        return wf.add(label, by, "extra", {"population": "all persons", "shows": "counts", "relation": "first"})
    if step == "submit":
        return wf.submit(label, by)
    if step == "withdraw":
        return wf.withdraw(label, by)
    if step == "reopen":
        return wf.reopen(label, by)
    if step == "vote":
        return wf.vote(label, by, "table1", "approve")
    if step == "submit review":
        return wf.submit_review(label, by)
    if step == "return":
        return wf.return_approved(label, by, "a newer release differences with table1")
    if step == "release":
        return wf.release(label, by)
    raise AssertionError(step)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    return build_world(tmp_path_factory.mktemp("transitions"))


CASES = [(row["step"], row["by"], S[status], row[status]) for row in STEPS for status in S.__members__]


@pytest.mark.parametrize(
    ("step", "by", "status", "expected"), CASES, ids=[f"{c[0]}-by-{c[1]}-{c[2].name}" for c in CASES]
)
def test_step_from_state(world, step, by, status, expected):
    with world.store.transaction() as session:
        project = session.get(Project, PROJECT)
        users = {u.name: u for u in session.query(User).all()}
        reviewers = (users["olav"], users["oda"])
        # Files without evidence, as custom outputs are: the world's open requests hold real
        # tables too (added by "add output"), which a release re-audits them against.
        request = make_request(
            session,
            project,
            users["rita"],
            status,
            reviewers=reviewers,
            outputs_dir=world.settings.outputs_dir,
            call="custom_output",
        )
        label = f"REQ-{request.id}"
    if step == "add output" and expected == "ok":
        world.queue_table("extra", seed=request.id)
    before = world.run(lambda wf: wf.store.request(request.id))
    if expected == "ok":
        world.run(lambda wf: _step(wf, step, by, label))
        after = world.run(lambda wf: wf.store.request(request.id))
        assert after != before
        return
    error = InvalidTransition if expected == "state" else PermissionDenied
    with pytest.raises(error) as refused:
        world.run(lambda wf: _step(wf, step, by, label))
    message = str(refused.value)
    assert label in message or by in message, message
    assert world.run(lambda wf: wf.store.request(request.id)) == before  # nothing changed
