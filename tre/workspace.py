"""Project workspaces: the folders, the OS identities, and who may open a server on them.

Layout of `<projects_dir>/<id>/` (the contract with the extracts, output-checking and
review modules):

    data/       the read-only extract (data/extract.duckdb + Parquet files), written as root
    work/       the researchers' notebooks; shared by the project's members
    requests/   outputs awaiting review; `tre.safe` writes into requests/queue/<name>/
    released/   what reviewers released; read-only for the project

With OS isolation (root), every project has an OS group and every (member, project) pair its
own OS account in that group only; the hub runs that pair's server as that account:

    project dir, data/, released/   root:<group>  0750 (files in data/ root:<group> 0640)
    work/, requests/, queue/        root:<group>  2770 (setgid: new files stay in the group)

Names fit POSIX's 32 characters and are derived, never chosen:

    group    <prefix>-<project, up to 32-len(prefix)-8 chars>-<6 hex of sha256(project)>
    account  <prefix>-<user>-<project>-<6 hex of sha256(user NUL project)>,
             user and project truncated to share 23-len(prefix) characters

lowercased, with anything but a-z, 0-9 turned into '-'. The hash makes names unique even where
truncation makes them look alike; provisioning refuses a name already used by another pair.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from tre import audit
from tre.config import Settings
from tre.enums import ApprovalStatus, ProjectStatus
from tre.errors import ConfigError, NotFound, PermissionDenied, UnsafeFile, UserError, did_you_mean
from tre.models import Approval, Project, ProjectMember, User
from tre.os_accounts import PosixAccounts, is_root
from tre.project_files import Folder

WORKSPACE_DIRS = ("data", "work", "requests", "released")
QUEUE_DIR = "requests/queue"
EXTRACT_FILE = "data/extract.duckdb"
PROJECT_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
PREFIX_PATTERN = re.compile(r"^[a-z]{1,5}$")
MAX_NAME = 32  # POSIX login and group names (useradd's limit on Linux)


# --- names --------------------------------------------------------------------------------


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "x"


def _hash6(*parts: str) -> str:
    return hashlib.sha256("\0".join(parts).encode("utf-8")).hexdigest()[:6]


def check_prefix(prefix: str) -> None:
    if not PREFIX_PATTERN.fullmatch(prefix):
        raise ConfigError(f"os_account_prefix {prefix!r} must be 1-5 lowercase letters")


def group_name(prefix: str, project_id: str) -> str:
    """The OS group of a project (see the module docstring for the scheme)."""
    check_prefix(prefix)
    room = MAX_NAME - len(prefix) - 8
    return f"{prefix}-{_slug(project_id)[:room].strip('-')}-{_hash6(project_id)}"


def account_name(prefix: str, user: str, project_id: str) -> str:
    """The OS account of one member in one project (see the module docstring)."""
    check_prefix(prefix)
    room = MAX_NAME - len(prefix) - 9
    user_part, project_part = _slug(user), _slug(project_id)
    user_room = max(room - len(project_part), room // 2)
    user_part = user_part[:user_room].strip("-")
    project_part = project_part[: room - len(user_part)].strip("-")
    return f"{prefix}-{user_part}-{project_part}-{_hash6(user, project_id)}"


def check_project_id(project_id: str) -> None:
    if not PROJECT_ID_PATTERN.fullmatch(project_id):
        raise UserError(
            f"invalid project id {project_id!r}: use 1-64 letters, digits, '-' or '_', starting with a letter or digit"
        )


# --- isolation ----------------------------------------------------------------------------


def isolation_enabled(settings: Settings) -> bool:
    """Whether servers get OS accounts and namespaces: `hub_isolation` on/off/auto (auto: root)."""
    mode = settings.hub_isolation.strip().lower()
    if mode not in {"on", "off", "auto"}:
        raise ConfigError(f"hub_isolation must be on, off or auto, got {settings.hub_isolation!r}")
    if mode == "on" and not is_root():
        raise ConfigError('hub_isolation is on, which needs root: run as root or set hub_isolation = "off"')
    return mode == "on" or (mode == "auto" and is_root())


ISOLATION_OFF_WARNING = (
    "WARNING: OS isolation is off (not root, or hub_isolation = off): every project's server runs as "
    "the same OS user, so researchers are separated only by the interface. Use it for development, never "
    "with real data."
)


# --- layout -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Workspace:
    """The folders of one project's workspace on the host."""

    root: Path

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def work(self) -> Path:
        return self.root / "work"

    @property
    def requests(self) -> Path:
        return self.root / "requests"

    @property
    def queue(self) -> Path:
        return self.root / QUEUE_DIR

    @property
    def released(self) -> Path:
        return self.root / "released"

    @property
    def extract(self) -> Path:
        return self.root / EXTRACT_FILE


def workspace(projects_dir: Path, project_id: str) -> Workspace:
    check_project_id(project_id)
    return Workspace(projects_dir / project_id)


def _make_dirs(ws: Workspace, gid: int | None) -> None:
    modes = {ws.root: 0o750, ws.data: 0o750, ws.work: 0o2770, ws.requests: 0o2770, ws.queue: 0o2770, ws.released: 0o750}
    for path, mode in modes.items():
        path.mkdir(parents=True, exist_ok=True)
        if gid is not None:
            os.chown(path, 0, gid)
        # chmod after chown: chown clears the setgid bit.
        path.chmod(mode if gid is not None else mode & 0o777)


def seal_data(ws: Workspace, gid: int | None) -> None:
    """Make data/ read-only for the project: root:<group>, dirs 0750, files 0640.

    The extracts module seals a new extract the same way before it becomes data/.
    """
    seal_folder(ws.data, gid)


def seal_folder(folder: Path, gid: int | None) -> None:
    """`folder` and everything in it read-only for the project group: dirs 0750, files 0640."""
    for path in (folder, *folder.rglob("*")):
        if gid is not None:
            os.chown(path, 0, gid, follow_symlinks=False)
        if not path.is_symlink():
            path.chmod(0o750 if path.is_dir() else 0o640)


# --- provisioning -------------------------------------------------------------------------


@dataclass
class ProvisionResult:
    project_id: str
    path: Path
    isolation: bool
    group: str | None = None
    accounts: dict[str, str] = field(default_factory=dict)  # user -> OS account
    locked_accounts: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {
            "project": self.project_id,
            "path": str(self.path),
            "isolation": self.isolation,
            "group": self.group,
            "accounts": self.accounts,
            "locked_accounts": self.locked_accounts,
        }


def get_project(session: Session, project_id: str) -> Project:
    project = session.execute(
        select(Project)
        .where(Project.id == project_id)
        .options(selectinload(Project.members).selectinload(ProjectMember.user))
    ).scalar_one_or_none()
    if project is None:
        raise NotFound(
            f"unknown project {project_id!r}{suggest_project(session, project_id)}: "
            "`tre project status` lists the projects"
        )
    return project


def suggest_project(session: Session, project_id: str) -> str:
    """ "; did you mean diabetes?" for a mistyped project id, else ""."""
    return did_you_mean(project_id, session.execute(select(Project.id)).scalars())


def provision_project(
    session: Session,
    project_id: str,
    *,
    projects_dir: Path,
    prefix: str,
    accounts: PosixAccounts | None,
    actor: str,
    now: dt.datetime,
    volumes=None,
) -> ProvisionResult:
    """Create (or bring up to date) a project's workspace; idempotent.

    With `accounts` (root), also the project's group and one account per active member, and
    locks the accounts of members no longer active. Without, only the folders. With `volumes`
    (a `tre.volumes.ProjectVolumes`), work/ and requests/ live on the project's own filesystem.
    """
    project = get_project(session, project_id)
    if project.status == ProjectStatus.CLOSED:
        raise UserError(f"project {project_id!r} is closed: it cannot be provisioned again")
    ws = workspace(projects_dir, project_id)
    result = ProvisionResult(project_id, ws.root, isolation=accounts is not None)
    gid = None
    if accounts is not None:
        group = group_name(prefix, project_id)
        gid = accounts.ensure_group(group)
        result.group = project.os_group = group
        _check_names_free(session, project, prefix)
        for member in sorted(project.members, key=lambda m: m.user.name):
            name = account_name(prefix, member.user.name, project_id)
            if member.active and member.user.active:
                accounts.ensure_account(name, group, comment=f"TRE {member.user.name} in {project_id}")
                member.os_account = name
                result.accounts[member.user.name] = name
            elif member.os_account:
                accounts.lock_account(member.os_account)
                result.locked_accounts.append(member.os_account)
    if volumes is not None:
        volumes.ensure(ws.root, project_id)
    _make_dirs(ws, gid)
    seal_data(ws, gid)
    project.provisioned_at = now
    audit.record(
        session,
        at=now,
        actor=actor,
        action="project.provision",
        object=f"project:{project_id}",
        details={
            "isolation": result.isolation,
            "group": result.group,
            "accounts": sorted(result.accounts.values()),
            "locked_accounts": result.locked_accounts,
            "disk_quota": f"{volumes.size >> 20} MiB" if volumes is not None else None,
        },
    )
    return result


def _check_names_free(session: Session, project: Project, prefix: str) -> None:
    wanted = {account_name(prefix, m.user.name, project.id): m.id for m in project.members}
    clashes = session.execute(
        select(ProjectMember).where(ProjectMember.os_account.in_(wanted), ProjectMember.project_id != project.id)
    ).scalars()
    problems = [f"account {m.os_account} is already used in project {m.project_id}" for m in clashes]
    if problems:
        raise UserError(f"cannot provision {project.id}: {'; '.join(problems)}; change os_account_prefix")


# --- locking ------------------------------------------------------------------------------


def lock_project(session: Session, project_id: str, reason: str, *, actor: str, now: dt.datetime) -> bool:
    """Lock a project: no server may start; running ones are stopped by the caller. Returns changed."""
    project = get_project(session, project_id)
    if not reason.strip():
        raise UserError("a lock needs a reason: pass --reason TEXT")
    if project.status == ProjectStatus.LOCKED:
        return False
    project.status = ProjectStatus.LOCKED
    project.locked_at, project.lock_reason = now, reason.strip()
    audit.record(
        session, at=now, actor=actor, action="project.lock", object=f"project:{project_id}", details={"reason": reason}
    )
    return True


def unlock_project(session: Session, project_id: str, *, actor: str, now: dt.datetime) -> bool:
    project = get_project(session, project_id)
    if project.status != ProjectStatus.LOCKED:
        return False
    project.status, project.locked_at, project.lock_reason = ProjectStatus.ACTIVE, None, None
    audit.record(session, at=now, actor=actor, action="project.unlock", object=f"project:{project_id}")
    return True


# --- who may open a server ----------------------------------------------------------------


def valid_approvals(session: Session, project_id: str, today: dt.date) -> list[Approval]:
    """The project's approvals that are active and valid on `today`."""
    return list(
        session.execute(
            select(Approval).where(
                Approval.project_id == project_id,
                Approval.status == ApprovalStatus.ACTIVE,
                Approval.valid_from <= today,
                Approval.valid_until >= today,
            )
        ).scalars()
    )


def project_approval(session: Session, project_id: str) -> Approval | None:
    """The approval a project's work rests on: an active one if any, else the latest."""
    approvals = list(session.execute(select(Approval).where(Approval.project_id == project_id)).scalars())
    if not approvals:
        return None
    return max(approvals, key=lambda a: (a.status == ApprovalStatus.ACTIVE, a.valid_until, a.id))


def approval_threshold(approval: Approval | None) -> int | None:
    """An approval's own output threshold (`threshold` in its record), or None for the default."""
    value = (approval.document or {}).get("threshold") if approval is not None else None
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def disclosure_threshold(session: Session, project_id: str) -> int | None:
    """The project's output threshold, decided centrally: the one value that the kernel (through
    the server's environment and the extract's manifest), intake, the CLI and the review page
    all use. None: the default of the output-check parameters."""
    return approval_threshold(project_approval(session, project_id))


def _no_approval_reason(session: Session, project_id: str, today: dt.date) -> str:
    approvals = list(session.execute(select(Approval).where(Approval.project_id == project_id)).scalars())
    if not approvals:
        return f"project {project_id} has no approval"
    latest = max(approvals, key=lambda a: a.valid_until)
    if latest.status != ApprovalStatus.ACTIVE:
        return f"the approval of project {project_id} is {latest.status.value}"
    if latest.valid_from > today:
        return f"the approval of project {project_id} is valid from {latest.valid_from}"
    return f"the approval of project {project_id} ended on {latest.valid_until}"


@dataclass(frozen=True)
class ServerGrant:
    """Permission to run one (user, project) server, with what the spawner needs."""

    user: str
    project_id: str
    os_account: str | None
    os_group: str | None


def check_server_access(
    session: Session, user_name: str, project_id: str, today: dt.date, *, isolation: bool
) -> ServerGrant:
    """Raise PermissionDenied unless `user_name` may run a server on `project_id` today.

    The rule: an active TRE user, an active member of the project, the project not locked or
    closed, an active approval valid today, and (with isolation) an OS account provisioned.
    """
    if not project_id:
        raise PermissionDenied("open a project: every server belongs to one project (choose one on the home page)")
    if not PROJECT_ID_PATTERN.fullmatch(project_id):
        raise PermissionDenied(f"no project named {project_id!r}")
    user = session.execute(select(User).where(User.name == user_name)).scalar_one_or_none()
    if user is None or not user.active:
        raise PermissionDenied(f"{user_name!r} is not an active TRE user")
    project = session.get(Project, project_id)
    member = session.execute(
        select(ProjectMember).where(ProjectMember.project_id == project_id, ProjectMember.user_id == user.id)
    ).scalar_one_or_none()
    if project is None or member is None or not member.active:
        raise PermissionDenied(f"{user_name} is not a member of project {project_id}")
    if project.status != ProjectStatus.ACTIVE:
        why = f" ({project.lock_reason})" if project.lock_reason else ""
        raise PermissionDenied(f"project {project_id} is {project.status.value}{why}: ask an admin")
    if not valid_approvals(session, project_id, today):
        raise PermissionDenied(f"{_no_approval_reason(session, project_id, today)}: no server can start")
    if isolation and not (member.os_account and project.os_group):
        raise PermissionDenied(
            f"project {project_id} is not provisioned for {user_name}: an admin runs `tre project provision {project_id}`"
        )
    return ServerGrant(user_name, project_id, member.os_account, project.os_group)


def user_projects(session: Session, user_name: str) -> list[Project]:
    """Projects `user_name` is an active member of (open or not), by id."""
    return list(
        session.execute(
            select(Project)
            .join(ProjectMember, ProjectMember.project_id == Project.id)
            .join(User, User.id == ProjectMember.user_id)
            .where(User.name == user_name, ProjectMember.active.is_(True))
            .order_by(Project.id)
        ).scalars()
    )


# --- first spawn --------------------------------------------------------------------------


NOTEBOOKS_MARKER = ".tre-notebooks-copied"
TEST_ONLY = "tre:test-only"  # a cell with this tag is left out of the copy a project gets


@dataclass(frozen=True)
class Seeded:
    copied: list[str]  # notebooks copied into work/
    refused: list[str]  # names in work/ that are not regular files (a planted link): left alone
    readme: bool = False  # work/README.md written (or brought up to date)


def project_notebooks(notebooks_dir: Path, project_id: str) -> list[Path]:
    """The example notebooks of a project: those whose metadata names it (`"tre": {"projects":
    [...]}`), and those that name no project (for every project). A notebook that cannot be
    read is nobody's."""
    found = []
    for path in sorted(notebooks_dir.glob("*.ipynb")) if notebooks_dir.is_dir() else []:
        try:
            meta = json.loads(path.read_text(encoding="utf-8")).get("metadata") or {}
        except (OSError, ValueError, AttributeError):
            continue
        projects = (meta.get("tre") or {}).get("projects") if isinstance(meta.get("tre"), dict) else None
        if projects is None or (isinstance(projects, list) and project_id in projects):
            found.append(path)
    return found


def notebook_for_project(path: Path) -> bytes:
    """A notebook as a project gets it: without cells tagged `tre:test-only`, outputs cleared."""
    notebook = json.loads(path.read_text(encoding="utf-8"))
    cells = []
    for cell in notebook.get("cells", []):
        if TEST_ONLY in ((cell.get("metadata") or {}).get("tags") or []):
            continue
        if cell.get("cell_type") == "code":
            cell = {**cell, "outputs": [], "execution_count": None}
        cells.append(cell)
    return (json.dumps({**notebook, "cells": cells}, indent=1, ensure_ascii=False) + "\n").encode("utf-8")


def seed_notebooks(
    ws: Workspace, notebooks_dir: Path, owner: tuple[int, int] | None, *, readme: str | None = None
) -> Seeded:
    """Copy the project's example notebooks into work/ once (at the first server start), and
    write `readme` as work/README.md at every start.

    A marker file remembers the notebooks were copied, so notebooks a researcher deleted do not
    come back. The README is replaced only while it is the TRE's (its first line is
    `README_MARK`): one the researchers wrote over stays. work/ belongs to the project, and
    this runs as root: work/ is opened without following links and every file is created new
    (`O_EXCL | O_NOFOLLOW`) and renamed into place, so a name the project planted (a dangling
    link to anywhere on the host) is never written through; it is left alone and reported in
    `refused`.
    """
    from tre.project_readme import README

    if not ws.root.is_dir():
        return Seeded([], [])
    copied, refused, wrote = [], [], False
    with Folder.open(ws.root, "") as root:
        if not root.exists("work"):
            return Seeded([], [])
        with root.folder("work") as work:
            sources = project_notebooks(notebooks_dir, ws.root.name)
            for name in [NOTEBOOKS_MARKER, *(s.name for s in sources), *([README] if readme else [])]:
                entry = work.entry(name)
                if entry is not None and not entry.is_file:
                    refused.append(name)
            if readme and README not in refused:
                try:
                    wrote = _replace_readme(work, readme, owner)
                except UnsafeFile:  # a hard link, or a name the project raced in: left alone
                    refused.append(README)
            if work.entry(NOTEBOOKS_MARKER) is not None:
                return Seeded([], refused, wrote)
            for source in sources:
                if work.exists(source.name):
                    continue
                work.write_new(source.name, notebook_for_project(source), 0o660, owner)
                copied.append(source.name)
            work.write_new(
                NOTEBOOKS_MARKER, b"The example notebooks were copied here at the first server start.\n", 0o660, owner
            )
    return Seeded(copied, refused, wrote)


def _replace_readme(work: Folder, readme: str, owner: tuple[int, int] | None) -> bool:
    """Write work/README.md unless the researchers wrote their own; True when written."""
    from tre.project_readme import README, README_MARK

    if work.entry(README) is not None and not work.read_bytes(README, 1 << 20).startswith(README_MARK.encode()):
        return False
    staged = f".{README}.{secrets.token_hex(8)}.new"
    work.write_new(staged, readme.encode("utf-8"), 0o660, owner)
    work.rename(staged, README)  # replaces the name (a link planted meanwhile too), never writes through it
    return True


# --- status -------------------------------------------------------------------------------


def project_statuses(session: Session, projects_dir: Path, today: dt.date, only: Iterable[str] = ()) -> list[dict]:
    """One row per project: state, approval, members and their OS accounts, workspace."""
    query = select(Project).options(selectinload(Project.members).selectinload(ProjectMember.user)).order_by(Project.id)
    if only:
        query = query.where(Project.id.in_(list(only)))
    rows = []
    for project in session.execute(query).scalars():
        valid = valid_approvals(session, project.id, today)
        ws = Workspace(projects_dir / project.id)
        rows.append(
            {
                "project": project.id,
                "title": project.title,
                "status": project.status.value,
                "lock_reason": project.lock_reason,
                "approval_valid_today": bool(valid),
                "approval_until": max((a.valid_until for a in valid), default=None),
                "provisioned_at": project.provisioned_at,
                "os_group": project.os_group,
                "workspace": str(ws.root) if ws.root.is_dir() else None,
                "extract": ws.extract.is_file(),
                "members": [
                    {"user": m.user.name, "role": m.role.value, "active": m.active, "os_account": m.os_account}
                    for m in sorted(project.members, key=lambda m: m.user.name)
                ],
            }
        )
    return rows


# --- the researcher's side ----------------------------------------------------------------


def connect(path: str | Path | None = None):
    """A read-only DuckDB connection to this project's extract: `con = tre.connect()`.

    The TRE starts each server with `TRE_EXTRACT` (the extract's path) and `TRE_PROJECT_DIR`;
    `path` overrides both (scripts and tests). A data frame it returns with a unit column
    (`pseudonym`) gets row labels that tell `tre.safe` each row's person
    (`tre.output_check.units`).
    """
    import duckdb

    if path is None:
        if os.environ.get("TRE_EXTRACT"):
            path = os.environ["TRE_EXTRACT"]
        elif os.environ.get("TRE_PROJECT_DIR"):
            path = Path(os.environ["TRE_PROJECT_DIR"]) / EXTRACT_FILE
        else:
            raise UserError(
                "tre.connect() needs TRE_EXTRACT or TRE_PROJECT_DIR (the TRE sets them when it starts your server); "
                "outside the TRE, pass the extract's path"
            )
    path = Path(path)
    if not path.is_file():
        raise NotFound(f"no extract at {path}: the TRE's administrators build it with `tre extract build`")
    from tre.output_check.sources import read_pseudonyms
    from tre.output_check.units import REGISTRY, TracedConnection, Tracer, declared_unit_columns

    # frames with a unit column carry their rows' persons, so tre.safe counts persons, not records
    tracer = Tracer(
        REGISTRY,
        declared_unit_columns(path.parent / "manifest.json"),
        lambda: read_pseudonyms(path),
        (duckdb.DuckDBPyConnection, duckdb.DuckDBPyRelation),
    )
    return TracedConnection(duckdb.connect(str(path), read_only=True), tracer)
