"""How votes decide a file and a request, and who sees which votes (pure rules, no store)."""

from __future__ import annotations

import datetime as dt

import pytest
from tables import parse_table

from tre.enums import RequestStatus, ReviewStatus, VoteDecision
from tre.errors import InvalidTransition, PermissionDenied
from tre.output_check.workflow import (
    FINAL,
    Actor,
    FileDecision,
    RequestState,
    ReviewState,
    Vote,
    check_transition,
    decide_file,
    decide_request,
    is_vote_visible,
)

NOW = dt.datetime(2026, 11, 26, 12, tzinfo=dt.UTC)

FILES = parse_table(
    """
    votes                            | decision
    ---------------------------------+----------
    (none)                           | undecided
    approve                          | undecided
    approve, approve                 | approved
    approve, changes                 | conflict
    approve, changes, approve        | approved
    approve, changes, changes        | changes
    changes, changes                 | changes
    reject, reject                   | rejected
    changes, reject                  | conflict
    approve, reject, changes         | conflict
    approve, approve, reject, reject | conflict
    """
)


@pytest.mark.parametrize("row", FILES, ids=[r["votes"] for r in FILES])
def test_a_decision_needs_two_votes_and_more_than_any_other(row):
    votes = [] if row["votes"] == "(none)" else [VoteDecision(v.strip()) for v in row["votes"].split(",")]
    assert decide_file(votes) == FileDecision(row["decision"])


REQUESTS = parse_table(
    """
    files                        | request
    -----------------------------+---------
    approved, approved           | APPROVED
    approved, changes            | RETURNED
    changes, rejected            | REJECTED
    approved, conflict           | (none)
    approved, undecided          | (none)
    """
)


@pytest.mark.parametrize("row", REQUESTS, ids=[r["files"] for r in REQUESTS])
def test_one_rejected_file_rejects_one_needing_changes_returns(row):
    decisions = {f"f{i}": FileDecision(d.strip()) for i, d in enumerate(row["files"].split(","))}
    expected = None if row["request"] == "(none)" else RequestStatus[row["request"]]
    assert decide_request(decisions) == expected


def _request(status: RequestStatus, submitted: tuple[bool, bool]) -> RequestState:
    reviews = tuple(
        ReviewState(
            reviewer=name,
            round=1,
            status=ReviewStatus.SUBMITTED if done else ReviewStatus.IN_PROGRESS,
            created_at=NOW,
            submitted_at=NOW if done else None,
            votes={"t1": Vote(name, "t1", VoteDecision.APPROVE, f"{name} agrees", None, NOW)},
        )
        for name, done in zip(("olav", "oda"), submitted, strict=True)
    )
    return RequestState(1, "p", "rita", "", status, 1, NOW, reviews=reviews)


VISIBILITY = parse_table(
    """
    status    | olav submitted | oda submitted | oda sees olav | otto sees olav | rita sees olav
    ----------+----------------+---------------+---------------+----------------+---------------
    IN_REVIEW | no             | no            | no            | no             | no
    IN_REVIEW | yes            | no            | no            | no             | no
    REVIEWED  | yes            | yes           | yes           | yes            | no
    RETURNED  | yes            | yes           | yes           | yes            | yes
    WITHDRAWN | yes            | no            | no            | no             | no
    """
)


@pytest.mark.parametrize("row", VISIBILITY, ids=[f"{r['status']}-{r['olav submitted']}" for r in VISIBILITY])
def test_votes_are_hidden_from_others_until_both_reviews_are_in(row):
    request = _request(RequestStatus[row["status"]], (row["olav submitted"] == "yes", row["oda submitted"] == "yes"))
    vote = request.reviews[0].votes["t1"]
    assert is_vote_visible(request, vote, "olav", officer=True)  # one's own, always
    for viewer, officer in (("oda", True), ("otto", True), ("rita", False)):
        assert is_vote_visible(request, vote, viewer, officer=officer) == (row[f"{viewer} sees olav"] == "yes")


def test_transition_messages_name_the_rule():
    with pytest.raises(InvalidTransition, match="cannot change REQ-3 from RELEASED to PENDING: RELEASED is final"):
        check_transition("REQ-3", RequestStatus.RELEASED, RequestStatus.PENDING, Actor.AUTHOR)
    with pytest.raises(InvalidTransition, match="from PENDING it can only go to SUBMITTED, WITHDRAWN"):
        check_transition("REQ-3", RequestStatus.PENDING, RequestStatus.APPROVED, Actor.SYSTEM)
    with pytest.raises(PermissionDenied, match="cannot approve REQ-3: only the system may"):
        check_transition("REQ-3", RequestStatus.REVIEWED, RequestStatus.APPROVED, Actor.OFFICER)
    assert {RequestStatus.RELEASED, RequestStatus.REJECTED, RequestStatus.WITHDRAWN} == FINAL
