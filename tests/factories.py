"""Factories: build any state in the metadata store directly, inside a session.

Plain functions with sensible defaults; each returns the object it made. Use them where the
code that normally makes the state (approvals sync, extracts) is not what the test is about.
"""

from __future__ import annotations

import datetime as dt

from tre.db import utc_now
from tre.enums import ApprovalKind, ApprovalStatus, MemberRole, ProjectStatus, Role
from tre.models import Approval, Project, ProjectMember, User, UserRole


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
        document={"members": [m.user.name for m in project.members]},
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
