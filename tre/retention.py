"""§ 4-11 storage limits, enforced on a schedule: `tre retention run` (daily, by a timer).

A project's linked data set is kept from its FIRST linkage (the project's first extract that
was built) for the approval's `retention_years`, at most 10 years; a rebuild never restarts the
clock. `run` is idempotent and does, for every project with a linked data set:

- from `retention_warning_days` before the end: one `retention.warn` audit event per project
  and end date, and the end date in the project's `work/README.md` (the README the hub's
  spawner writes shows it too, at every server start);
- at the end: the project is locked and its running servers stopped first (through the
  running hub; without one the lock refuses every start), its key table purged, then the
  extract (`data/` and what killed builds left), everything in `work/` (copies, some with ID
  numbers from a § 4-5 delivery), the members' homes for the project, the project's
  `requests/` (requests not yet released are withdrawn) and every central copy of its
  requests but the released `leaving/` files the § 4-10 record needs (evidence and the
  kernel's reports go, of released requests too) are deleted, and each step is audited
  (`retention.delete`, naming the central copies that went, then `retention.end`). The
  release record (§ 4-10) and `released/` stay.

Nothing a project wrote stops this: what resists deletion (an immutable file, a folder moved
while it is removed, a writer) is named in a `retention.incomplete` event, everything else goes,
the other projects are done, the run exits non-zero and the next run tries again.

The project's folders are written by the project: they are opened and emptied through
`tre.project_files.Folder`, which never follows a link (a link planted in `work/` is removed,
never what it points to).
"""

from __future__ import annotations

import datetime as dt
import json
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
from tre.output_check.intake import LEAVING
from tre.project_files import Folder, shown
from tre.workspace import lock_project, project_approval, workspace

STEPS = ("data", "work", "requests", "homes", "central_request_copies", "key_table")
MAX_SHOWN = 20  # what stayed, named in an audit event (and how many in all)
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
        try:
            if now.date() > end:
                ended = _end(settings, metadata, project_id, end, actor=actor, now=now)
                if ended["first"] or any(ended["deleted"].values()) or ended["stayed"]:  # else ended earlier
                    done.append(ended)
            elif (end - now.date()).days <= settings.retention_warning_days:
                warned = _warn(settings, metadata, project_id, end, actor=actor, now=now)
                if warned:
                    done.append(warned)
        except Exception as e:  # noqa: BLE001 - one project's failure never stops the others
            done.append(_failed(metadata, project_id, end, e, actor=actor, now=now))
    return done


def incomplete(done: list[dict]) -> list[str]:
    """One line per project of a run whose retention could not finish (what stayed, or why)."""
    lines = []
    for d in done:
        if d.get("error"):
            lines.append(f"{d['project']}: {d['error']}")
        elif d.get("stayed"):
            more = f" and {len(d['stayed']) - 1} more" if len(d["stayed"]) > 1 else ""
            lines.append(f"{d['project']}: {d['stayed'][0]}{more} could not be deleted")
        if d.get("servers"):
            lines.append(f"{d['project']}: its servers could not be stopped ({d['servers']})")
    return lines


def _failed(metadata: Store, project_id: str, end: dt.date, error: Exception, *, actor, now) -> dict:
    """A project whose retention step failed: audited, shown, tried again on the next run."""
    why = shown(f"{error.__class__.__name__}: {error}", 200)
    try:
        with metadata.transaction() as session:
            _record_incomplete(session, project_id, end, {"error": why}, actor=actor, now=now)
    except Exception:  # noqa: BLE001, S110 - the store itself failing is shown in the result
        pass
    return {"project": project_id, "action": "failed", "deadline": end.isoformat(), "error": why, "first": True}


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
    """Lock the project and stop its servers first; purge its key table; then delete its
    linked data set and every copy of it. A file the project made resist (an immutable file, a
    folder moved while it was removed, a writer) never stops the rest: what stayed is named in
    a `retention.incomplete` event and tried again on the next run."""
    from tre.hub_config.enforcer import stop_project_servers
    from tre.linkage.extracts import NEW, OLD

    reason = f"§ 4-11: its retention ended on {end.isoformat()}"
    with metadata.transaction() as session:
        lock_project(session, project_id, reason, actor=actor, now=now)
    # Through the running hub when there is one (the enforcer's next round would too); without
    # a hub, the lock refuses every server start.
    try:
        stop_project_servers(
            settings, metadata, project_id, f"project {project_id} is locked ({reason})", actor=actor, now=now
        )
    except Exception as e:  # noqa: BLE001 - the hub's trouble must not keep the data set
        stopped_error = f"{e.__class__.__name__}: {e}"
    else:
        stopped_error = None
    ws = workspace(settings.projects_dir, project_id)
    steps: dict[str, int | bool] = dict.fromkeys(STEPS, 0)  # shown in this order
    left: list[str] = []
    with metadata.transaction() as session:
        steps["key_table"] = pseudonyms.purge(settings.central_dir, project_id)
        extracts = session.execute(
            select(Extract).where(Extract.project_id == project_id, Extract.status == ExtractStatus.READY)
        ).scalars()
        for extract in extracts:
            extract.status, extract.purged_at = ExtractStatus.PURGED, now
        had_data = ws.data.exists()
        _remove(settings.central_dir / "building", [project_id], left, "central/building")
        _remove(ws.root, ["data", NEW, OLD], left)
        steps["data"] = had_data
        steps["work"] = _empty(ws.root, "work", left)
        steps["requests"] = _empty(ws.root, "requests", left, keep={"queue"}) + _empty(ws.root, "requests/queue", left)
        steps["homes"] = _remove_homes(settings, session, project_id, left)
        copies = _central_copies(session, settings, project_id, now, left)
        steps["central_request_copies"] = len(copies)
        for step, removed in steps.items():
            if removed:
                audit.record(
                    session,
                    at=now,
                    actor=actor,
                    action="retention.delete",
                    object=f"project:{project_id}",
                    details={
                        "step": step,
                        "removed": removed,
                        "deadline": end.isoformat(),
                        **({"copies": copies[:MAX_SHOWN]} if step == "central_request_copies" else {}),
                    },
                )
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
        if left or stopped_error:
            stayed = {"stayed": left[:MAX_SHOWN], "stayed_count": len(left)}
            if stopped_error:
                stayed["servers"] = stopped_error
            _record_incomplete(session, project_id, end, stayed, actor=actor, now=now)
    return {
        "project": project_id,
        "action": "deleted",
        "deadline": end.isoformat(),
        "deleted": steps,
        "first": first,
        "stayed": left,
        **({"servers": stopped_error} if stopped_error else {}),
    }


def _record_incomplete(session: Session, project_id: str, end: dt.date, details: dict, *, actor, now) -> None:
    audit.record(
        session,
        at=now,
        actor=actor,
        action="retention.incomplete",
        object=f"project:{project_id}",
        details={"deadline": end.isoformat(), **details},
    )


def _remove(trusted: Path, names: list[str], left: list[str], where: str = "") -> None:
    """Remove the names below the TRE's own folder `trusted` (and all below them), never
    following a link; what stays is added to `left`."""
    if not trusted.is_dir():
        return
    with Folder.open(trusted, where) as folder:
        for name in names:
            left += folder.remove_all(name)


def _empty(
    trusted: Path, relative: str, left: list[str] | None = None, keep: frozenset[str] | set[str] = frozenset()
) -> int:
    """Remove everything in the project-writable folder `relative` below the TRE's own folder
    `trusted` (but the names in `keep`); links are removed, never followed; what stays is added
    to `left` (a folder swapped for a link on the way is named there too). Returns how many
    entries went."""
    left = [] if left is None else left
    if not (trusted / relative).is_dir():
        return 0
    try:
        with Folder.open(trusted, "") as root, root.folder(relative) as folder:
            gone = [e.name for e in folder.entries() if e.name not in keep or not e.is_dir]
            stayed = []
            for name in gone:
                stayed += folder.remove_all(name)
    except (UnsafeFile, OSError) as e:
        left.append(f"{relative} ({e})")
        return 0
    left += stayed
    return len(gone)


def _remove_homes(settings: Settings, session: Session, project_id: str, left: list[str]) -> int:
    """The members' homes for this project (copies end up there too): every home in the
    project's volume (`$TRE_HOME/volumes/<project>/homes/`, tre.volumes), and without volumes
    each member's `$TRE_HUB_DIR/homes/<account>` (the spawner's names: the member's OS account
    for the project, else `<user>-<project>`). Homes of other projects stay."""
    removed = _empty(settings.home / "volumes" / project_id, "homes", left)
    homes = settings.hub_dir / "homes"
    if not homes.is_dir():
        return removed
    members = session.execute(select(ProjectMember).where(ProjectMember.project_id == project_id)).scalars()
    names = {n for m in members for n in (m.os_account, f"{m.user.name}-{project_id}") if n}
    with Folder.open(homes, "homes") as folder:
        for name in sorted(names):
            if folder.entry(name) is not None:
                left += folder.remove_all(name)
                removed += 1
    return removed


def _central_copies(
    session: Session, settings: Settings, project_id: str, now: dt.datetime, left: list[str]
) -> list[str]:
    """Requests not yet released are withdrawn; then every central copy of the project's
    requests goes but what the § 4-10 release record needs, the `leaving/` files of released
    requests: the received copies (evidence with the project's pseudonyms, the kernel's
    reports), settled requests' included, and everything of requests that never released.
    Returns what went (`<label>/<output>/<entry>`, or `<label>` for a whole request)."""
    requests = session.execute(select(OutputRequest).where(OutputRequest.project_id == project_id)).scalars().all()
    for request in requests:
        if request.status not in SETTLED:
            request.status, request.decided_at = RequestStatus.WITHDRAWN, now
    released = {r.label for r in requests if r.status == RequestStatus.RELEASED}
    store = settings.outputs_dir / project_id
    if not store.is_dir():
        return []
    gone: list[str] = []
    with Folder.open(store, f"outputs/{project_id}") as folder:
        for request in folder.entries():
            if request.name not in released or not request.is_dir:
                left += folder.remove_all(request.name)
                gone.append(shown(request.name))
                continue
            with folder.folder(request.name) as outputs:
                for output in outputs.entries():
                    if not output.is_dir:
                        left += outputs.remove_all(output.name)
                        gone.append(f"{shown(request.name)}/{shown(output.name)}")
                        continue
                    with outputs.folder(output.name) as files:
                        for entry in files.entries():
                            if entry.name != LEAVING or not entry.is_dir:
                                left += files.remove_all(entry.name)
                                gone.append(f"{shown(request.name)}/{shown(output.name)}/{shown(entry.name)}")
    return gone
