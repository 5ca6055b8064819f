"""Who may do what to an output request: `check_*` functions that raise with the rule's name.

Plain functions of plain data (`Person`, `ProjectInfo`, `RequestState`), so every rule can be
tested without a store. `PermissionDenied` when the person may not act; `InvalidTransition`
when the request is not in a state that allows the step.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from tre.enums import ProjectStatus, RequestStatus, Role, VoteDecision
from tre.errors import InvalidTransition, PermissionDenied
from tre.output_check.workflow import (
    APPROVALS_NEEDED,
    CONTEXT_FIELDS,
    INDEPENDENT,
    INDEPENDENT_REVIEWERS,
    VOTABLE,
    FileDecision,
    OutputFile,
    RequestState,
    ReviewState,
    file_decisions,
)


@dataclass(frozen=True)
class Person:
    name: str
    roles: frozenset[Role]
    active: bool

    def has_role(self, role: Role) -> bool:
        return self.active and role in self.roles

    @property
    def held(self) -> str:
        return ", ".join(sorted(r.value for r in self.roles)) or "no role"


@dataclass(frozen=True)
class ApprovalRef:
    """The approval a release refers to (§ 4-10: on what basis)."""

    id: str
    kind: str
    reference: str
    version: int
    legal_basis: str
    status: str
    valid_until: dt.date
    retention_years: int
    threshold: int | None


@dataclass(frozen=True)
class ProjectInfo:
    id: str
    title: str
    status: ProjectStatus
    members: frozenset[str]  # everyone who ever was a member: none of them reviews
    active_members: frozenset[str]
    approval: ApprovalRef | None

    @property
    def threshold(self) -> int | None:
        return self.approval.threshold if self.approval else None


def check_active(person: Person, action: str) -> None:
    if not person.active or not person.roles:
        raise PermissionDenied(f"{action} refused: {person.name} is not an active TRE user")


def check_member(person: Person, project: ProjectInfo, action: str) -> None:
    """Only the project's active members make and manage its output requests."""
    check_active(person, action)
    if person.name not in project.active_members:
        raise PermissionDenied(
            f"{action} refused: {person.name} is not a member of project {project.id}; "
            "only its members request the release of its outputs"
        )


def check_project_open(project: ProjectInfo, action: str) -> None:
    if project.status != ProjectStatus.ACTIVE:
        raise PermissionDenied(f"{action} refused: project {project.id} is {project.status.value}; ask an admin")


def check_author(person: Person, request: RequestState, action: str) -> None:
    if person.name != request.author:
        raise PermissionDenied(f"only the author of {request.label} ({request.author}) may {action} it")


def check_editable(request: RequestState, action: str) -> None:
    if request.status != RequestStatus.PENDING:
        hint = " (reopen it first)" if request.status == RequestStatus.RETURNED else ""
        raise InvalidTransition(
            f"cannot {action} {request.label}: it is {request.status.name}, and outputs change only while "
            f"it is PENDING{hint}"
        )


def check_context(request: RequestState) -> None:
    """Submission needs at least one output, each with the author's context, and an exception
    request for each whose check failed (why it should leave anyway); names every gap."""
    problems = []
    if not request.files:
        problems.append("it has no outputs (add queued outputs with `tre request add`)")
    for f in request.files:
        missing = f.missing_context()
        if missing:
            problems.append(f"output {f.name} lacks its context: {', '.join(CONTEXT_FIELDS[m] for m in missing)}")
        if f.failed_check and not (f.exception or "").strip():
            problems.append(
                f"output {f.name} failed its check: ask for an exception (why it should leave anyway) "
                "with `tre request exception`, or remove it"
            )
    if problems:
        raise InvalidTransition(f"cannot submit {request.label}: {'; '.join(problems)}")


def check_reviewer(person: Person, request: RequestState, project: ProjectInfo) -> None:
    """Reviewers hold the officer role, are not members of the project, and never the author."""
    action = f"{person.name} cannot review {request.label}"
    check_active(person, action)
    if person.name == request.author:
        raise PermissionDenied(f"{action}: the author never reviews their own request")
    if not person.has_role(Role.OFFICER):
        raise PermissionDenied(f"{action}: reviewers hold the officer role ({person.name} has {person.held})")
    if person.name in project.members:
        raise PermissionDenied(
            f"{action}: {person.name} is a member of project {project.id}, and reviewers are independent of it"
        )


def check_review_slot(request: RequestState, reviewer: str) -> None:
    """A new review may start while fewer than two are under way, or to settle a conflict."""
    if request.status not in VOTABLE:
        raise InvalidTransition(
            f"cannot review {request.label}: it is {request.status.name}; requests are reviewed once SUBMITTED"
        )
    if request.review_of(reviewer) is not None:
        return
    started = request.current_reviews
    if request.status in INDEPENDENT and len(started) >= INDEPENDENT_REVIEWERS:
        names = ", ".join(r.reviewer for r in started)
        raise InvalidTransition(
            f"cannot start a third review of {request.label}: two independent reviews are under way ({names}); "
            "a third reviewer settles a conflict once both are submitted"
        )


def check_open_review(request: RequestState, review: ReviewState | None) -> None:
    if review is not None and review.is_submitted:
        raise InvalidTransition(
            f"your review of {request.label} was submitted at {review.submitted_at:%Y-%m-%d %H:%M}: its votes are final"
        )


def check_vote(
    request: RequestState, output: OutputFile, decision: VoteDecision, comment: str, override: str | None
) -> None:
    """A vote's own rules, every problem at once."""
    problems = []
    comment, override = comment.strip(), (override or "").strip()
    if decision == VoteDecision.APPROVE and output.failed_check and not override:
        problems.append(
            f"its automatic check failed ({_summary(output)}): approving it needs an override justification "
            "(--override TEXT), recorded with your vote"
        )
    if override and decision != VoteDecision.APPROVE:
        problems.append("an override justifies approving a failed check: it goes with approve only")
    if override and not output.failed_check:
        problems.append(f"its automatic check did not fail ({output.check_status}): there is nothing to override")
    if decision != VoteDecision.APPROVE and not comment:
        problems.append(f"a '{decision.value}' vote needs a comment telling the author why (--comment TEXT)")
    if problems:
        raise InvalidTransition(f"cannot record your vote on {output.name} of {request.label}: {'; '.join(problems)}")


def check_review_complete(request: RequestState, review: ReviewState | None) -> None:
    """An independent review votes on every output; a settling review on every one in conflict."""
    if review is None:
        raise InvalidTransition(f"you have not reviewed {request.label}: vote on its outputs first")
    check_open_review(request, review)
    if request.status in INDEPENDENT:
        needed = [f.name for f in request.files]
    else:
        open_files = {FileDecision.CONFLICT, FileDecision.UNDECIDED}
        needed = [name for name, d in file_decisions(request).items() if d in open_files]
    missing = [name for name in needed if name not in review.votes]
    if missing:
        raise InvalidTransition(f"cannot submit your review of {request.label}: no vote on {', '.join(missing)}")


def check_releasable(request: RequestState) -> None:
    """Every output has two distinct approving reviews from this round."""
    problems = []
    for f in request.files:
        approving = {v.reviewer for v in request.votes_on(f.name) if v.decision == VoteDecision.APPROVE}
        if len(approving) < APPROVALS_NEEDED:
            reviews = "review" if len(approving) == 1 else "reviews"
            problems.append(f"file {f.name} has {len(approving)} approving {reviews}, needs {APPROVALS_NEEDED}")
    if not request.files:
        problems.append("it has no outputs")
    if problems:
        raise InvalidTransition(f"cannot release {request.label}: {'; '.join(problems)}")


def check_releaser(person: Person, request: RequestState, project: ProjectInfo) -> None:
    """An officer independent of the project releases; an admin may run the release as the system."""
    action = f"{person.name} cannot release {request.label}"
    check_active(person, action)
    if not (person.has_role(Role.OFFICER) or person.has_role(Role.ADMIN)):
        raise PermissionDenied(f"{action}: releasing needs the officer or admin role ({person.name} has {person.held})")
    if person.name == request.author or person.name in project.members:
        raise PermissionDenied(f"{action}: {person.name} is a member of project {project.id}")


def check_viewer(person: Person, request: RequestState, project: ProjectInfo) -> None:
    """Members see their project's requests; officers and admins see every request once submitted."""
    check_active(person, f"viewing {request.label}")
    if person.name in project.active_members:
        return
    if (person.has_role(Role.OFFICER) or person.has_role(Role.ADMIN)) and request.status != RequestStatus.PENDING:
        return
    raise PermissionDenied(
        f"{person.name} may not see {request.label}: it belongs to project {project.id}"
        + (" and is not submitted yet" if request.status == RequestStatus.PENDING else "")
    )


def _summary(output: OutputFile) -> str:
    summary = output.summary
    return summary[:160] + ("..." if len(summary) > 160 else "")
