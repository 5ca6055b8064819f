"""§ 4-11 storage limits, enforced on a schedule: `tre retention run` (daily, by a timer).

A project's linked data set is kept from its FIRST linkage (the project's first extract that
was built) for the approval's `retention_years`, at most 10 years; a rebuild never restarts the
clock. `run` is idempotent and does, for every project with a linked data set:

- from `retention_warning_days` before the end: one `retention.warn` audit event per project
  and end date, and the end date in the project's `work/README.md` (the README the hub's
  spawner writes shows it too, at every server start);
- at the end: the extract (`data/` and what killed builds left), everything in `work/` (copies,
  some with ID numbers from a § 4-5 delivery), the members' homes for the project, the
  requests not yet released (the project's `requests/` and their central copies; they are
  withdrawn) and the project's key table are deleted, the project is locked, and each step is audited (`retention.delete`, then
  `retention.end`). The release record (§ 4-10) and `released/` stay.

The project's folders are written by the project: they are opened and emptied through
`tre.project_files.Folder`, which never follows a link (a link planted in `work/` is removed,
never what it points to).
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from tre import audit
from tre.config import Settings
from tre.db import Store
from tre.enums import ExtractStatus, RequestStatus
from tre.errors import UnsafeFile
from tre.linkage import pseudonyms
from tre.models import AuditEvent, Extract, OutputRequest, ProjectMember
from tre.project_files import Folder
from tre.workspace import lock_project, project_approval, workspace

MAX_YEARS = 10  # § 4-11: a linked data set is kept at most 10 years
# Requests whose outputs have left, or never will: their files are not "not yet released".
SETTLED = {RequestStatus.RELEASED, RequestStatus.REJECTED, RequestStatus.WITHDRAWN}


def add_years(day: dt.date, years: int) -> dt.date:
    try:
        return day.replace(year=day.year + years)
    except ValueError:  # 29 February
        return day.replace(year=day.year + years, day=28)


def first_linkage(session: Session, project_id: str) -> dt.datetime | None:
    """When the project's data set was first linked: its first extract that was built (a
    replaced or purged one counts; a failed build does not)."""
    return session.execute(
        select(func.min(Extract.built_at)).where(
            Extract.project_id == project_id, Extract.status.in_([ExtractStatus.READY, ExtractStatus.PURGED])
        )
    ).scalar()


def deadline(session: Session, project_id: str, first: dt.datetime | None = None) -> dt.date | None:
    """The last day the project's linked data set may exist, or None without one: the
    approval's retention, at most 10 years, from the first linkage."""
    first = first or first_linkage(session, project_id)
    if first is None:
        return None
    approval = project_approval(session, project_id)
    years = min(MAX_YEARS, approval.retention_years if approval else MAX_YEARS)
    return add_years(first.date(), years)


def run(settings: Settings, metadata: Store, *, actor: str, now: dt.datetime) -> list[dict]:
    """Warn and delete as the module docstring says; one row per project warned, or whose data
    set was deleted now (a project ended earlier is checked again, and shown only when
    something of it had to be deleted again)."""
    with metadata.transaction() as session:
        projects = [p for (p,) in session.execute(select(Extract.project_id).distinct()).all()]
        plans = [(p, deadline(session, p)) for p in sorted(projects)]
    done = []
    for project_id, end in plans:
        if end is None:
            continue
        if now.date() > end:
            ended = _end(settings, metadata, project_id, end, actor=actor, now=now)
            if ended["first"] or any(ended["deleted"].values()):  # else ended on an earlier day
                done.append(ended)
        elif (end - now.date()).days <= settings.retention_warning_days:
            warned = _warn(settings, metadata, project_id, end, actor=actor, now=now)
            if warned:
                done.append(warned)
    return done


def _already(session: Session, action: str, project_id: str, end: dt.date) -> bool:
    events = session.execute(
        select(AuditEvent.details).where(AuditEvent.action == action, AuditEvent.object == f"project:{project_id}")
    ).scalars()
    return any(json.loads(d).get("deadline") == end.isoformat() for d in events)


def _warn(settings: Settings, metadata: Store, project_id: str, end: dt.date, *, actor, now) -> dict | None:
    with metadata.transaction() as session:
        if _already(session, "retention.warn", project_id, end):
            return None
        audit.record(
            session,
            at=now,
            actor=actor,
            action="retention.warn",
            object=f"project:{project_id}",
            details={"deadline": end.isoformat(), "days_left": (end - now.date()).days},
        )
        readme = _readme(session, settings, project_id)
    written = _write_readme(settings, project_id, readme)
    return {"project": project_id, "action": "warned", "deadline": end.isoformat(), "readme": written}


def _readme(session: Session, settings: Settings, project_id: str) -> str:
    from tre.project_readme import build_project_readme
    from tre.workspace import project_notebooks

    ws = workspace(settings.projects_dir, project_id)
    notebooks = [n.name for n in project_notebooks(settings.hub_notebooks_dir, project_id)]
    return build_project_readme(session, project_id, ws, notebooks)


def _write_readme(settings: Settings, project_id: str, readme: str) -> bool:
    """The README with the end date into work/, as the spawner writes it (one the researchers
    wrote over stays; a planted name is never written through)."""
    from tre.workspace import _replace_readme

    ws = workspace(settings.projects_dir, project_id)
    if not ws.work.is_dir():
        return False
    try:
        with Folder.open(ws.root, "") as root, root.folder("work") as work:
            return _replace_readme(work, readme, None)
    except (UnsafeFile, OSError):
        return False


def _end(settings: Settings, metadata: Store, project_id: str, end: dt.date, *, actor, now) -> dict:
    """Delete the project's linked data set and every copy of it; lock the project."""
    from tre.linkage.extracts import remove_extract_files

    ws = workspace(settings.projects_dir, project_id)
    steps: dict[str, int | bool] = {}
    with metadata.transaction() as session:
        extracts = session.execute(
            select(Extract).where(Extract.project_id == project_id, Extract.status == ExtractStatus.READY)
        ).scalars()
        had_data = ws.data.exists()
        remove_extract_files(settings, project_id)
        for extract in extracts:
            extract.status, extract.purged_at = ExtractStatus.PURGED, now
        steps["data"] = had_data
        steps["work"] = _empty(ws.root, "work")
        steps["requests"] = _empty(ws.root, "requests", keep={"queue"}) + _empty(ws.root, "requests/queue")
        steps["homes"] = _remove_homes(settings, session, project_id)
        steps["central_request_copies"] = _withdraw_requests(session, settings, project_id, now)
        steps["key_table"] = pseudonyms.purge(settings.central_dir, project_id)
        for step, removed in steps.items():
            if removed:
                audit.record(
                    session,
                    at=now,
                    actor=actor,
                    action="retention.delete",
                    object=f"project:{project_id}",
                    details={"step": step, "removed": removed, "deadline": end.isoformat()},
                )
        lock_project(session, project_id, f"§ 4-11: its retention ended on {end.isoformat()}", actor=actor, now=now)
        first = not _already(session, "retention.end", project_id, end)
        if first:
            audit.record(
                session,
                at=now,
                actor=actor,
                action="retention.end",
                object=f"project:{project_id}",
                details={"deadline": end.isoformat(), **{k: v for k, v in steps.items() if v}},
            )
    return {"project": project_id, "action": "deleted", "deadline": end.isoformat(), "deleted": steps, "first": first}


def _empty(trusted: Path, relative: str, keep: frozenset[str] | set[str] = frozenset()) -> int:
    """Remove everything in the project-writable folder `relative` below the TRE's own folder
    `trusted` (but the names in `keep`); links are removed, never followed. Returns how many
    entries went."""
    if not (trusted / relative).is_dir():
        return 0
    with Folder.open(trusted, "") as root, root.folder(relative) as folder:
        gone = [e.name for e in folder.entries() if e.name not in keep or not e.is_dir]
        for name in gone:
            folder.remove_tree(name)
    return len(gone)


def _remove_homes(settings: Settings, session: Session, project_id: str) -> int:
    """The members' homes for this project (copies end up there too): every home in the
    project's volume (`$TRE_HOME/volumes/<project>/homes/`, tre.volumes), and without volumes
    each member's `$TRE_HUB_DIR/homes/<account>` (the spawner's names: the member's OS account
    for the project, else `<user>-<project>`). Homes of other projects stay."""
    removed = _empty(settings.home / "volumes" / project_id, "homes")
    homes = settings.hub_dir / "homes"
    if not homes.is_dir():
        return removed
    members = session.execute(select(ProjectMember).where(ProjectMember.project_id == project_id)).scalars()
    names = {n for m in members for n in (m.os_account, f"{m.user.name}-{project_id}") if n}
    with Folder.open(homes, "") as folder:
        for name in sorted(names):
            if folder.entry(name) is not None:
                folder.remove_tree(name)
                removed += 1
    return removed


def _withdraw_requests(session: Session, settings: Settings, project_id: str, now: dt.datetime) -> int:
    """Requests not yet released are withdrawn and their central copies deleted."""
    withdrawn = 0
    for request in session.execute(
        select(OutputRequest).where(OutputRequest.project_id == project_id, OutputRequest.status.not_in(SETTLED))
    ).scalars():
        request.status, request.decided_at = RequestStatus.WITHDRAWN, now
        shutil.rmtree(settings.outputs_dir / project_id / request.label, ignore_errors=True)
        withdrawn += 1
    return withdrawn
