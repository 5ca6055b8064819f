"""Factories: build any state in the metadata store directly, inside a session.

Plain functions with sensible defaults; each returns the object it made. Use them where the
code that normally makes the state (approvals sync, extracts) is not what the test is about.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from pathlib import Path

from tre.db import utc_now
from tre.enums import (
    ApprovalKind,
    ApprovalStatus,
    MemberRole,
    ProjectStatus,
    RequestStatus,
    ReviewStatus,
    Role,
    VoteDecision,
)
from tre.models import (
    Approval,
    OutputRequest,
    Project,
    ProjectMember,
    Release,
    RequestFile,
    Review,
    User,
    UserRole,
    Vote,
)


def make_user(session, name: str, *roles: Role, active: bool = True) -> User:
    user = User(name=name, active=active, created_at=utc_now())
    user.roles = [UserRole(role=r, granted_at=utc_now(), granted_by="factory") for r in (roles or (Role.RESEARCHER,))]
    session.add(user)
    session.flush()
    return user


def make_project(
    session, project_id: str, title: str | None = None, status: ProjectStatus = ProjectStatus.ACTIVE
) -> Project:
    project = Project(id=project_id, title=title or f"Project {project_id}", status=status, created_at=utc_now())
    session.add(project)
    session.flush()
    return project


def make_member(
    session, project: Project, user: User, role: MemberRole = MemberRole.RESEARCHER, active: bool = True
) -> ProjectMember:
    member = ProjectMember(project_id=project.id, user_id=user.id, role=role, active=active, added_at=utc_now())
    session.add(member)
    session.flush()
    return member


def make_approval(
    session,
    project: Project,
    *,
    approval_id: str | None = None,
    valid_from: dt.date | None = None,
    valid_until: dt.date | None = None,
    status: ApprovalStatus = ApprovalStatus.ACTIVE,
    kind: ApprovalKind = ApprovalKind.HRL20,
    threshold: int | None = None,
) -> Approval:
    today = dt.date.today()
    approval = Approval(
        id=approval_id or f"approval-{project.id}",
        project_id=project.id,
        kind=kind,
        status=status,
        reference="REF-2026-0001",
        legal_basis="hrl § 20",
        purpose="research",
        valid_from=valid_from or today - dt.timedelta(days=30),
        valid_until=valid_until or today + dt.timedelta(days=365),
        retention_years=5,
        sha256="0" * 64,
        path=f"approvals/{project.id}.toml",
        document={"members": [m.user.name for m in project.members]}
        | ({"threshold": threshold} if threshold is not None else {}),
        synced_at=utc_now(),
    )
    session.add(approval)
    session.flush()
    return approval


def make_open_project(session, project_id: str, *members: User) -> Project:
    """A project with an approval valid today and the given users as active members."""
    project = make_project(session, project_id)
    for user in members:
        make_member(session, project, user)
    make_approval(session, project)
    return project


# --- output requests in any state -----------------------------------------------------------

REVIEWED_STATES = {
    # status: the decision each of the two reviewers gives every file
    RequestStatus.REVIEWED: (VoteDecision.APPROVE, VoteDecision.CHANGES),  # a conflict
    RequestStatus.APPROVED: (VoteDecision.APPROVE, VoteDecision.APPROVE),
    RequestStatus.RETURNED: (VoteDecision.CHANGES, VoteDecision.CHANGES),
    RequestStatus.REJECTED: (VoteDecision.REJECT, VoteDecision.REJECT),
    RequestStatus.RELEASED: (VoteDecision.APPROVE, VoteDecision.APPROVE),
}


def make_request_file(
    session,
    request: OutputRequest,
    name: str,
    *,
    check_status: str = "pass",
    context: bool = True,
    body: bytes = b"",
    outputs_dir: Path | None = None,
    call: str = "crosstab",
) -> RequestFile:
    """One output of a request, as intake records it; its file is written into the central
    output store (received and leaving copies) when `outputs_dir` is given."""
    from tre.output_check.intake import contents_digest

    body = body or f"kommune,n\n0301,{len(name) + 10}\n".encode()
    if outputs_dir is not None:
        for copy in ("received", "leaving"):
            folder = Path(outputs_dir) / request.project_id / f"REQ-{request.id}" / name / copy
            folder.mkdir(parents=True, exist_ok=True)
            (folder / "cells.csv").write_bytes(body)
    contents = [{"name": "cells.csv", "sha256": hashlib.sha256(body).hexdigest(), "size": len(body)}]
    summary = "fail: 1 cell(s) under the threshold" if check_status == "fail" else f"{check_status}: no check failed"
    report = {
        "format": "tre-output-check/1",
        "kind": "frequency",
        "status": check_status,
        "summary": summary,
        "parameters": {"version": "2026.1", "threshold": 5},
        "findings": [],
        "cells": [],
    }
    row = RequestFile(
        request_id=request.id,
        name=name,
        kind="frequency",
        sha256=contents_digest(contents),
        check_status=check_status,
        report={**report, "recheck": {**report}},
        context={"population": "adults in the cohort", "shows": "counts by municipality", "relation": "first output"}
        if context
        else {},
        contents=contents,
        meta={"name": name, "kind": "frequency", "call": call},
        added_at=utc_now(),
    )
    session.add(row)
    session.flush()
    return row


def make_request(
    session,
    project: Project,
    author: User,
    status: RequestStatus = RequestStatus.PENDING,
    *,
    files: tuple[str, ...] = ("table1",),
    reviewers: tuple[User, ...] = (),
    decisions: tuple[VoteDecision, ...] | None = None,
    check_status: str = "pass",
    context: bool = True,
    title: str = "",
    outputs_dir: Path | None = None,
    call: str = "crosstab",
) -> OutputRequest:
    """A request of `project` by `author` in `status`, with the reviews that state implies.

    IN_REVIEW has one review in progress (the first reviewer voted approve on every file); the
    decided states have two submitted reviews whose votes make that decision (REVIEWED: a
    conflict). `decisions` overrides the two reviewers' votes. RELEASED has a Release row.
    With `outputs_dir`, the outputs' files are written where intake would have copied them.
    `call` is the tre.safe call the outputs' meta names (they have no evidence: a table's
    central recheck against other open outputs cannot rebuild them, a custom output's can).
    """
    now = utc_now()
    request = OutputRequest(
        project_id=project.id, author_id=author.id, title=title, status=status, round=1, created_at=now
    )
    session.add(request)
    session.flush()
    rows = [
        make_request_file(
            session, request, n, check_status=check_status, context=context, outputs_dir=outputs_dir, call=call
        )
        for n in files
    ]
    if status != RequestStatus.PENDING:
        request.submitted_at = now
    needed = 1 if status == RequestStatus.IN_REVIEW else 2 if status in REVIEWED_STATES else 0
    if len(reviewers) < needed:
        raise ValueError(f"a {status.name} request needs {needed} reviewer(s)")
    votes = decisions or REVIEWED_STATES.get(status, (VoteDecision.APPROVE,))
    for i, reviewer in enumerate(reviewers[:needed]):
        submitted = status != RequestStatus.IN_REVIEW
        review = Review(
            request_id=request.id,
            reviewer_id=reviewer.id,
            round=1,
            created_at=now,
            status=ReviewStatus.SUBMITTED if submitted else ReviewStatus.IN_PROGRESS,
            submitted_at=now if submitted else None,
        )
        session.add(review)
        session.flush()
        for row in rows:
            override = "checked by hand: the flagged cell is a margin" if check_status == "fail" else None
            decision = votes[i]
            session.add(
                Vote(
                    review_id=review.id,
                    file_id=row.id,
                    decision=decision,
                    comment=f"{decision} by factory",
                    override=override if decision == VoteDecision.APPROVE else None,
                    voted_at=now,
                )
            )
    if status in {
        RequestStatus.APPROVED,
        RequestStatus.RETURNED,
        RequestStatus.REJECTED,
        RequestStatus.RELEASED,
        RequestStatus.WITHDRAWN,
    }:
        request.decided_at = now
    if status == RequestStatus.RELEASED:
        session.add(
            Release(
                request_id=request.id,
                released_at=now,
                released_by=reviewers[0].name,
                bundle_path=f"/nonexistent/{project.id}/REQ-{request.id}.zip",
                bundle_sha256="0" * 64,
                manifest={},
            )
        )
    session.flush()
    return request
