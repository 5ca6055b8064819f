"""The output-request workflow as data: states, the transitions between them, who makes each,
and how reviews decide a file and a request.

    PENDING ──submit──► SUBMITTED ──first vote──► IN_REVIEW ──second review submitted──► REVIEWED
       ▲  (author)                  (officer)     (votes hidden from the     (system)        │
       │                                           other reviewer)                          │ system: the submitted
    reopen (author)                                                                         │ reviews decide every file
       │                                                                                    ▼
    RETURNED ◄──────────────── changes ──────────────────────────── APPROVED / RETURNED / REJECTED
                                                                        │
                                                              release (officer, system)
                                                                        ▼
                                                                     RELEASED

The author may withdraw until the reviews have decided (PENDING, SUBMITTED, IN_REVIEW,
REVIEWED) and from RETURNED. An officer returns an APPROVED request that cannot be released
(a file changed after submission, a newer release differences with it). A file is decided by the votes of the submitted reviews of the
current round: a decision needs at least two votes and more votes than any other decision.
Two reviewers who disagree leave the file in conflict; the request stays REVIEWED and a third
reviewer settles it.

Plain data and pure functions: the rules that need people and projects are in `policies`,
the steps that change state in `requests`.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum

from tre.enums import CommentVisibility, RequestStatus, ReviewStatus, VoteDecision
from tre.errors import InvalidTransition, NotFound, PermissionDenied

S = RequestStatus


class Actor(StrEnum):
    """Who makes a transition."""

    AUTHOR = "author"  # the researcher who made the request
    OFFICER = "officer"  # a disclosure officer allowed to review this request
    SYSTEM = "system"  # the workflow itself, as a consequence of another step (or an admin's automation)


@dataclass(frozen=True)
class Transition:
    source: RequestStatus
    target: RequestStatus
    actors: frozenset[Actor]
    verb: str  # what the step is called in messages and the audit log

    def allows(self, actor: Actor) -> bool:
        return actor in self.actors


def _t(source, target, verb, *actors) -> Transition:
    return Transition(source, target, frozenset(actors), verb)


TRANSITIONS: tuple[Transition, ...] = (
    _t(S.PENDING, S.SUBMITTED, "submit", Actor.AUTHOR),
    _t(S.PENDING, S.WITHDRAWN, "withdraw", Actor.AUTHOR),
    _t(S.SUBMITTED, S.IN_REVIEW, "start reviewing", Actor.OFFICER),
    _t(S.SUBMITTED, S.WITHDRAWN, "withdraw", Actor.AUTHOR),
    _t(S.IN_REVIEW, S.REVIEWED, "finish the independent reviews of", Actor.SYSTEM),
    _t(S.IN_REVIEW, S.WITHDRAWN, "withdraw", Actor.AUTHOR),
    _t(S.REVIEWED, S.APPROVED, "approve", Actor.SYSTEM),
    _t(S.REVIEWED, S.RETURNED, "return", Actor.SYSTEM),
    _t(S.REVIEWED, S.REJECTED, "reject", Actor.SYSTEM),
    _t(S.REVIEWED, S.WITHDRAWN, "withdraw", Actor.AUTHOR),
    _t(S.RETURNED, S.PENDING, "reopen", Actor.AUTHOR),
    _t(S.RETURNED, S.WITHDRAWN, "withdraw", Actor.AUTHOR),
    _t(S.APPROVED, S.RELEASED, "release", Actor.OFFICER, Actor.SYSTEM),
    # An approved request whose files changed, or that a newer release differences with, cannot
    # be released: an officer returns it to its author.
    _t(S.APPROVED, S.RETURNED, "return", Actor.OFFICER),
)

# airlock's VALID_STATE_TRANSITIONS: the states each state may move to.
VALID_STATE_TRANSITIONS: dict[RequestStatus, frozenset[RequestStatus]] = {
    status: frozenset(t.target for t in TRANSITIONS if t.source == status) for status in RequestStatus
}
FINAL = frozenset(s for s, targets in VALID_STATE_TRANSITIONS.items() if not targets)
EDITABLE = frozenset({S.PENDING})  # the author may add, remove and describe outputs
INDEPENDENT = frozenset({S.SUBMITTED, S.IN_REVIEW})  # reviewers do not see each other's votes
VOTABLE = frozenset({S.SUBMITTED, S.IN_REVIEW, S.REVIEWED})
DECIDED = frozenset({S.APPROVED, S.RETURNED, S.REJECTED, S.RELEASED})
INDEPENDENT_REVIEWERS = 2  # reviews per round before anyone sees another's votes
APPROVALS_NEEDED = 2  # distinct approving reviews per file


def transition(source: RequestStatus, target: RequestStatus) -> Transition | None:
    for t in TRANSITIONS:
        if t.source == source and t.target == target:
            return t
    return None


def check_transition(label: str, source: RequestStatus, target: RequestStatus, actor: Actor) -> Transition:
    """The transition from `source` to `target`, or raise naming the rule it breaks."""
    found = transition(source, target)
    if found is None:
        allowed = VALID_STATE_TRANSITIONS[source]
        why = (
            f"{source.name} is final"
            if not allowed
            else f"from {source.name} it can only go to {', '.join(sorted(s.name for s in allowed))}"
        )
        raise InvalidTransition(f"cannot change {label} from {source.name} to {target.name}: {why}")
    if not found.allows(actor):
        who = " or ".join(sorted(a.value for a in found.actors))
        raise PermissionDenied(f"cannot {found.verb} {label}: only the {who} may (you act as the {actor.value})")
    return found


# --- the state of a request, as the rules see it ------------------------------------------


@dataclass(frozen=True)
class Vote:
    reviewer: str
    file: str
    decision: VoteDecision
    comment: str
    override: str | None
    voted_at: dt.datetime


@dataclass(frozen=True)
class ReviewState:
    reviewer: str
    round: int
    status: ReviewStatus
    created_at: dt.datetime
    submitted_at: dt.datetime | None
    votes: dict[str, Vote] = field(default_factory=dict)  # by file name

    @property
    def is_submitted(self) -> bool:
        return self.status == ReviewStatus.SUBMITTED


class WrittenAs(StrEnum):
    """As whom a comment was written."""

    MEMBER = "member"  # a member of the project (the author, or another member)
    OFFICER = "officer"  # an officer independent of the project


@dataclass(frozen=True)
class Comment:
    """One comment of a request's thread (`output` None) or of one output's thread."""

    id: int
    author: str
    written_as: WrittenAs
    visibility: CommentVisibility
    round: int
    output: str | None
    body: str
    created_at: dt.datetime


CONTEXT_FIELDS = {
    "population": "the population (who is counted)",
    "shows": "what it shows",
    "relation": "how it relates to earlier outputs",
}
MIN_CONTEXT = 3  # characters: "n/a" is an answer, an empty box is not


@dataclass(frozen=True)
class OutputFile:
    """One output of a request: a queued output directory with its files and check report."""

    name: str
    kind: str
    sha256: str  # digest of `contents`, fixed at submission
    check_status: str  # pass, fail, review
    report: dict
    context: dict
    contents: tuple[dict, ...]  # {"name", "sha256", "size"} per file
    meta: dict
    added_at: dt.datetime
    exception: str | None = None  # the author's exception request (SACRO's): why it should leave anyway
    group: str | None = None  # added together with other outputs that share its context

    @property
    def failed_check(self) -> bool:
        return self.check_status == "fail"

    @property
    def summary(self) -> str:
        """The check's one line: the queued check's, unless the re-check at intake changed the verdict."""
        recheck = self.report.get("recheck") or {}
        if recheck and recheck.get("status") != self.report.get("status"):
            return str(recheck.get("summary", ""))
        return str(self.report.get("summary") or recheck.get("summary", ""))

    def missing_context(self) -> list[str]:
        return [k for k in CONTEXT_FIELDS if len(str(self.context.get(k) or "").strip()) < MIN_CONTEXT]


@dataclass(frozen=True)
class RequestState:
    id: int
    project_id: str
    author: str
    title: str
    status: RequestStatus
    round: int
    created_at: dt.datetime
    submitted_at: dt.datetime | None = None
    decided_at: dt.datetime | None = None
    returned_reason: str | None = None
    files: tuple[OutputFile, ...] = ()
    reviews: tuple[ReviewState, ...] = ()
    comments: tuple[Comment, ...] = ()

    @property
    def label(self) -> str:
        return f"REQ-{self.id}"

    def file(self, name: str) -> OutputFile:
        for f in self.files:
            if f.name == name:
                return f
        names = ", ".join(f.name for f in self.files) or "none"
        raise NotFound(f"{self.label} has no output {name!r} (its outputs: {names})")

    def has_file(self, name: str) -> bool:
        return any(f.name == name for f in self.files)

    @property
    def current_reviews(self) -> list[ReviewState]:
        return [r for r in self.reviews if r.round == self.round]

    @property
    def submitted_reviews(self) -> list[ReviewState]:
        return [r for r in self.current_reviews if r.is_submitted]

    def review_of(self, reviewer: str) -> ReviewState | None:
        for r in self.current_reviews:
            if r.reviewer == reviewer:
                return r
        return None

    def votes_on(self, file: str) -> list[Vote]:
        """The votes on `file` of this round's submitted reviews."""
        return [r.votes[file] for r in self.submitted_reviews if file in r.votes]


# --- how reviews decide ---------------------------------------------------------------------


class FileDecision(StrEnum):
    UNDECIDED = "undecided"  # fewer than two submitted votes
    CONFLICT = "conflict"  # the votes disagree: another reviewer settles it
    APPROVED = "approved"
    CHANGES = "changes"
    REJECTED = "rejected"


_BY_VOTE = {
    VoteDecision.APPROVE: FileDecision.APPROVED,
    VoteDecision.CHANGES: FileDecision.CHANGES,
    VoteDecision.REJECT: FileDecision.REJECTED,
}


def decide_file(decisions: Iterable[VoteDecision]) -> FileDecision:
    """A decision needs at least two votes and more votes than any other decision."""
    counts = Counter(decisions)
    if sum(counts.values()) < 2:
        return FileDecision.UNDECIDED
    ranked = counts.most_common()
    top, n = ranked[0]
    if n >= 2 and (len(ranked) == 1 or ranked[1][1] < n):
        return _BY_VOTE[top]
    return FileDecision.CONFLICT


def file_decisions(request: RequestState) -> dict[str, FileDecision]:
    return {f.name: decide_file(v.decision for v in request.votes_on(f.name)) for f in request.files}


def decide_request(decisions: dict[str, FileDecision]) -> RequestStatus | None:
    """What the reviews make of the request, or None while a file is undecided or in conflict.

    One rejected file rejects the request; otherwise one file needing changes returns it."""
    values = set(decisions.values())
    if not values or values & {FileDecision.UNDECIDED, FileDecision.CONFLICT}:
        return None
    if FileDecision.REJECTED in values:
        return S.REJECTED
    if FileDecision.CHANGES in values:
        return S.RETURNED
    return S.APPROVED


def is_vote_visible(request: RequestState, vote: Vote, viewer: str, *, officer: bool) -> bool:
    """Whether `viewer` may see `vote`.

    Everyone sees their own votes. Others see only votes of submitted reviews: officers once
    two reviews of the round are in (REVIEWED and after), the author and the project's members
    once the reviews have decided the request. Votes of earlier rounds were decided: visible.
    """
    if vote.reviewer == viewer:
        return True
    review = next((r for r in request.reviews if r.reviewer == vote.reviewer and r.votes.get(vote.file) is vote), None)
    if review is None or not review.is_submitted:
        return False
    if review.round < request.round:
        return True
    if officer and viewer != request.author:
        return request.status in DECIDED | {S.REVIEWED}
    return request.status in DECIDED


COMMENTABLE = frozenset(RequestStatus) - FINAL  # a thread closes with the request


def is_comment_visible(request: RequestState, comment: Comment, viewer: str, *, officer: bool, member: bool) -> bool:
    """Whether `viewer` may read `comment`; the rules of the votes (`is_vote_visible`).

    Everyone reads their own comments, and everyone reads the members'. An officer's comment
    of the current round stays with its author while the two reviews are independent; then the
    officers read it, and the project too once the reviews have decided the request (or the
    round is over), unless it is for officers only, which the project never reads.
    """
    if comment.author == viewer:
        return True
    if comment.written_as == WrittenAs.MEMBER:
        return member or officer
    if comment.visibility == CommentVisibility.OFFICERS and (member or not officer):
        return False
    earlier = comment.round < request.round
    if officer and not member:
        return earlier or request.status not in INDEPENDENT
    return member and (earlier or request.status in DECIDED)
