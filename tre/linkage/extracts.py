"""Project extracts: built inside the central zone, only the result written into the project.

`build_extract` turns a project's approval into its data:

1. the approval in force (the version in the metadata store) decides everything: without a
   valid one the build is refused and the workspace locked;
2. the cohort: persons with an event in the cohort source within the period whose coded
   columns start with the approved codes, aged, sexed and living as the approval says;
   for a § 4-5 delivery, minus persons with an active release-with-FNR opt-out (§ 2-2);
3. one table per approved source with only the approved variables, rows of the cohort within
   the period (consent-based sources: consenting persons only; historic IPLOS: through its
   pseudonym key, § 6-1), dates coarsened to the approved precision, the central person key
   replaced by the project's pseudonym (`tre.linkage.pseudonyms`), a `persons` table with one
   row per pseudonym; a § 4-5 delivery gets the ID numbers, decrypted through the vault with
   one person-linked audit event each; a § 4-3 delivery gets only protected statistics
   (`tre.output_check`), no rows about persons at all;
4. the release record (§ 4-10) is written before anything becomes visible: who received data,
   on what basis, and about whom (the pids, kept centrally in `central/releases.duckdb`, in two
   phases: `tre.linkage.releases`);
5. the extract is published whole or not at all: written to `projects/<id>/.data-new/`
   (unreadable to the project), sealed read-only for the project group, and swapped with
   `data/` by renames; a killed build leaves the previous extract (or none) and a rerun
   completes. One build of a project runs at a time; the next build, or the purge, removes
   what a killed one left.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import pandas as pd
import pyarrow as pa
from sqlalchemy import select

from tre import audit, idnumbers, retention
from tre.approvals import REK_REFERENCE, SYSTEM_LOCK, ApprovalRecord, record_from_store
from tre.config import Settings
from tre.db import Store
from tre.enums import ApprovalKind, ExtractStatus, ReleaseKind, ReservationKind, Role
from tre.errors import ApprovalError, InvalidTransition, NotFound, PermissionDenied, UserError
from tre.linkage import pseudonyms, releases, vault
from tre.linkage.reservations import active_reservations
from tre.linkage.rules import id_shape_sql
from tre.linkage.store import literal, quote
from tre.linkage.zone import CentralZone, build_gate, build_lock
from tre.models import Approval, BuildApproval, Extract, Project, ReleaseRecord
from tre.registers import SOURCES, Column, Source
from tre.release_anchors import anchor
from tre.retention import add_years
from tre.users import check_role, get_user
from tre.workspace import get_project, lock_project, seal_folder, valid_approvals, workspace

MANIFEST_FORMAT = "tre-extract/1"
RELEASE_RECORD_YEARS = 5  # § 4-10: release records are kept at least five years
AGE_GROUPS = ((0, 17), (18, 66), (67, 79), (80, 89), (90, 200))  # for § 4-3 statistics
NEW, OLD = ".data-new", ".data-old"


@dataclass
class ExtractResult:
    extract_id: int
    project_id: str
    approval_id: str
    approval_version: int
    kind: str
    persons: int
    tables: dict[str, int] = field(default_factory=dict)  # table -> rows
    excluded_opt_out: int = 0
    withheld_id_numbers: dict[str, int] = field(default_factory=dict)  # "table.column" -> values withheld
    path: str = ""
    manifest_sha256: str = ""

    def as_dict(self) -> dict:
        return dict(self.__dict__)


# --- SQL pieces: each returns one step, composed into the build's queries ------------------


def _used(sql: str, params: dict) -> dict:
    """The parameters `sql` refers to: DuckDB refuses a statement given more than it uses."""
    return {k: v for k, v in params.items() if f"${k}" in sql}


# Persons are resolved once: the cohort's canonical pids, then every pid of those persons
# (`__tre_people`: pid → pseudonym, ID changes included). Register rows are joined to that
# small table by pid, so a table costs one pass over its source, not a pass per person.


def _person_map() -> str:
    return "registers.__tre_person_map"


def _has_updates(con, source: Source) -> bool:
    """Whether a later delivery brought a newer version of some record of `source` (then the
    latest version of each record must be picked)."""
    return bool(
        con.execute(
            "SELECT coalesce(sum(TRY_CAST(json_extract(report, '$.updated_records') AS BIGINT)), 0) "
            "FROM registers.__tre_deliveries WHERE source = $1",
            [source.name],
        ).fetchall()[0][0]
    )


def _latest(source: Source, partition: str) -> str:
    return f" QUALIFY row_number() OVER (PARTITION BY {partition} ORDER BY r.__delivery DESC, r.__line DESC) = 1"


def _rows(con, source: Source) -> str:
    """The cohort's rows of `source` within the period, each with the person's pseudonym
    (`__person`); the latest version of a record that was delivered again."""
    if source.name == "iplos_historisk":
        # Linked only through the historic key table, by the old pseudonym (§ 6-1).
        joined = (
            "FROM registers.iplos_historisk r JOIN registers.iplos_historisk_nokkel k "
            "ON k.old_pseudonym = r.old_pseudonym JOIN __tre_people p ON p.pid = k.pid"
        )
    else:
        joined = f"FROM registers.{quote(source.name)} r JOIN __tre_people p ON p.pid = r.pid"
    sql = f"SELECT p.pseudonym AS __person, r.* EXCLUDE (pid) {joined} WHERE {_in_period(source)} AND {_consented(source)}"
    if source.key and _has_updates(con, source):
        sql += _latest(source, f"r.{quote(source.key)}")
    return sql


def _in_period(source: Source) -> str:
    """The condition that a source's row `r` falls in the approval's period ($from, $to)."""
    if source.name == "ses":
        return "r.year BETWEEN year($from) AND year($to)"
    if source.name == "iplos_historisk" or source.event_date is None:
        return "TRUE"  # historic IPLOS is delivered whole for the cohort (§ 6-1)
    start = f"CAST(r.{quote(source.event_date)} AS DATE)"
    if "end_date" in source.column_names:  # a service decision counts while it runs
        return f"{start} <= $to AND (r.end_date IS NULL OR r.end_date >= $from)"
    return f"{start} BETWEEN $from AND $to"


def _withdrawn(source: Source) -> str:
    """Canonical pids of persons who withdrew their consent to `source` (§ 4-2)."""
    return (
        f"SELECT coalesce(m.canonical_pid, w.pid) FROM registers.__tre_consent_withdrawals w "
        f"LEFT JOIN {_person_map()} m ON m.pid = w.pid WHERE w.source = {literal(source.name)}"
    )


def _consented(source: Source) -> str:
    """§ 4-2: rows only of persons who consented; after a withdrawal none of theirs, earlier rows
    included (ingest records withdrawals against the person)."""
    if not source.consent_based:
        return "TRUE"
    withdrawn = f"SELECT p.pseudonym FROM __tre_people p WHERE p.pid IN ({_withdrawn(source)})"
    return f"r.consent AND r.consent_withdrawn_date IS NULL AND p.pseudonym NOT IN ({withdrawn})"


def _age(at: str) -> str:
    """SQL for a person's age in whole years at `at`; 0 for someone born after it (a baby
    born during the period is 0, not -1, in the cohort and the statistics)."""
    return f"greatest(date_sub('year', d.birth_date, {at}), 0)"


def _cohort_sql(record: ApprovalRecord, params: dict) -> str:
    """Canonical pids (`pid`) of the cohort with their latest population-register row."""
    cohort = record.cohort
    source = SOURCES[cohort.source]
    conditions = [_in_period(source)]
    if source.consent_based:
        conditions.append("r.consent AND r.consent_withdrawn_date IS NULL")
    for i, (column, codes) in enumerate(sorted(cohort.codes.items())):
        alternatives = []
        for j, code in enumerate(codes):
            params[f"code_{i}_{j}"] = code
            alternatives.append(f"starts_with(r.{quote(column)}, $code_{i}_{j})")
        conditions.append("(" + " OR ".join(alternatives) + ")")
    if source.name == "iplos_historisk":
        events = (
            "SELECT DISTINCT k.pid FROM registers.iplos_historisk r JOIN registers.iplos_historisk_nokkel k "
            f"ON k.old_pseudonym = r.old_pseudonym WHERE k.pid IS NOT NULL AND {' AND '.join(conditions)}"
        )
    else:
        events = f"SELECT DISTINCT r.pid FROM registers.{quote(source.name)} r WHERE r.pid IS NOT NULL AND {' AND '.join(conditions)}"
    persons = f"SELECT DISTINCT coalesce(m.canonical_pid, e.pid) AS person FROM ({events}) e LEFT JOIN {_person_map()} m ON m.pid = e.pid"
    if source.consent_based:
        persons = f"SELECT person FROM ({persons}) WHERE person NOT IN ({_withdrawn(source)})"
    person = ["TRUE"]
    if cohort.age_min is not None:
        params["age_min"] = cohort.age_min
        person.append(f"{_age('$from')} >= $age_min")
    if cohort.age_max is not None:
        params["age_max"] = cohort.age_max
        person.append(f"{_age('$from')} <= $age_max")
    if cohort.sex:
        params["sexes"] = list(cohort.sex)
        person.append("list_contains($sexes, d.sex)")
    if cohort.municipalities:
        params["municipalities"] = list(cohort.municipalities)
        person.append("list_contains($municipalities, d.municipality)")
    return (
        f"WITH persons AS ({persons}), "
        f"pids AS (SELECT person, person AS pid FROM persons UNION ALL "
        f"SELECT m.canonical_pid, m.pid FROM {_person_map()} m SEMI JOIN persons ON persons.person = m.canonical_pid), "
        f"d AS (SELECT a.person, r.birth_date, r.sex, r.municipality FROM registers.dsf r JOIN pids a ON a.pid = r.pid"
        f"{_latest(SOURCES['dsf'], 'a.person')}) "
        f"SELECT CAST(d.person AS VARCHAR) AS pid, d.birth_date, d.sex, d.municipality FROM d WHERE {' AND '.join(person)}"
    )


def _years_active(source: Source) -> str:
    """The year(s) of the period a row counts in: each year a service decision runs, else the
    year of the event."""
    start = f"CAST(r.{quote(source.event_date)} AS DATE)"
    if "end_date" in source.column_names:
        return (
            f"unnest(range(greatest(year({start}), year($from)), "
            f"least(year(coalesce(r.end_date, $to)), year($to)) + 1))"
        )
    return f"year({start})"


def coarsen(column: str, type_: str, precision: str) -> str:
    """SQL for a date or timestamp column at the approved precision, as a DATE (the first day
    of its month, tertial or year); time of day never leaves."""
    c = f"CAST(r.{quote(column)} AS DATE)"
    if precision == "day":
        return c
    if precision == "month":
        return f"CAST(date_trunc('month', {c}) AS DATE)"
    if precision == "tertial":
        return f"make_date(year({c}), ((month({c}) - 1) // 4) * 4 + 1, 1)"
    if precision == "year":
        return f"make_date(year({c}), 1, 1)"
    raise ValueError(f"unknown date precision {precision!r}")


def _released_columns(source: Source, variables: tuple[str, ...], precision: str) -> list[str]:
    out = []
    for name in variables:
        if name == "old_pseudonym":
            continue  # the historic key is never released (§ 6-1): the project pseudonym replaces it
        column = source.column(name)
        expression = (
            coarsen(name, column.type, precision) if column.type in ("DATE", "TIMESTAMP") else f"r.{quote(name)}"
        )
        out.append(f"{expression} AS {quote(name)}")
    return out


def _table_sql(con, source: Source, variables: tuple[str, ...], precision: str) -> str:
    columns = ", ".join(["r.__person AS pseudonym", *_released_columns(source, variables, precision)])
    order = ["pseudonym"] + ([quote(source.event_date)] if source.event_date and source.event_date in variables else [])
    return f"SELECT {columns} FROM ({_rows(con, source)}) r ORDER BY {', '.join(order)}"


def _persons_sql(record: ApprovalRecord) -> str:
    """One row per person: the pseudonym and the approved population-register variables of the
    latest snapshot."""
    variables = record.sources.get("dsf", ())
    columns = ", ".join(["p.pseudonym", *_released_columns(SOURCES["dsf"], variables, record.date_precision)])
    return (
        f"SELECT {columns} FROM __tre_people p LEFT JOIN registers.dsf r ON r.pid = p.pid "
        f"QUALIFY row_number() OVER (PARTITION BY p.pseudonym ORDER BY r.__delivery DESC NULLS LAST, r.__line DESC) = 1 "
        "ORDER BY p.pseudonym"
    )


# --- the build ----------------------------------------------------------------------------


def _approval_in_force(metadata: Store, project_id: str, *, actor: str, now: dt.datetime):
    with metadata.transaction() as session:
        project = get_project(session, project_id)
        approvals = valid_approvals(session, project_id, now.date())
        if not approvals:
            lock_project(session, project_id, SYSTEM_LOCK, actor=actor, now=now)
        elif project.status.value == "locked":
            raise ApprovalError(f"project {project_id} is locked ({project.lock_reason}): unlock it before building")
    if not approvals:
        raise ApprovalError(
            f"cannot build an extract for {project_id}: it has no approval valid today; the workspace is locked"
        )
    approval = sorted(approvals, key=lambda a: a.valid_until)[-1]
    return approval.id, approval.version, record_from_store(approval)


def _start(
    metadata: Store,
    project_id: str,
    approval_id: str,
    version: int,
    *,
    actor: str,
    now: dt.datetime,
    custodian: int | None = None,
) -> int:
    """The build's Extract row (BUILDING); a custodian's build approval is used up by it."""
    with metadata.transaction() as session:
        # A build that was killed left its row BUILDING: it never became visible.
        for stale in session.execute(
            select(Extract).where(Extract.project_id == project_id, Extract.status == ExtractStatus.BUILDING)
        ).scalars():
            stale.status = ExtractStatus.FAILED
        extract = Extract(
            project_id=project_id,
            approval_id=approval_id,
            approval_version=version,
            status=ExtractStatus.BUILDING,
            built_at=now,
            built_by=actor,
        )
        session.add(extract)
        session.flush()
        if custodian is not None:
            approved = session.get(BuildApproval, custodian)
            if approved.extract_id is not None:  # another build took it meanwhile
                raise ApprovalError(
                    f"build {custodian} of {project_id} was used by extract {approved.extract_id}: "
                    f"run `tre extract build {project_id}` again and have a key custodian approve that build"
                )
            approved.extract_id = extract.id
            audit.record(
                session,
                at=now,
                actor=actor,
                action="extract.build.start",
                object=f"project:{project_id}",
                details={"build": custodian, "extract": extract.id, "approved_by": approved.approved_by},
            )
        return extract.id


def build_approval_expired(row: BuildApproval, now: dt.datetime, valid_days: int) -> bool:
    """Whether a custodian's build approval (or the request for one) is older than it may be
    unused: counted from the approval, or from the request while it waits."""
    return (row.approved_at or row.requested_at) + dt.timedelta(days=valid_days) < now


def _custodian_approval(
    metadata: Store,
    record: ApprovalRecord,
    version: int,
    persons: int,
    digest: str,
    *,
    actor: str,
    now: dt.datetime,
    valid_days: int,
) -> int:
    """The id of a key custodian's unused, unexpired approval of exactly this build (project,
    approval version, person count, persons digest); else the build is recorded as pending
    (once per such build) and refused with the command the custodian runs."""
    wanted = (record.id, version, persons, digest)
    with metadata.transaction() as session:
        unused = session.execute(
            select(BuildApproval)
            .where(BuildApproval.project_id == record.project_id, BuildApproval.extract_id.is_(None))
            .order_by(BuildApproval.id)
        ).scalars()
        pending = None
        for row in unused:
            if (row.approval_id, row.approval_version, row.persons, row.persons_digest) != wanted:
                continue
            if build_approval_expired(row, now, valid_days):
                continue
            if row.approved_by is not None:
                return row.id
            pending = row
        if pending is None:
            pending = BuildApproval(
                project_id=record.project_id,
                approval_id=record.id,
                approval_version=version,
                persons=persons,
                persons_digest=digest,
                reference=record.reference,
                requested_by=actor,
                requested_at=now,
            )
            session.add(pending)
            session.flush()
            audit.record(
                session,
                at=now,
                actor=actor,
                action="extract.build.request",
                object=f"project:{record.project_id}",
                details={
                    "build": pending.id,
                    "approval": record.id,
                    "version": version,
                    "persons": persons,
                    "persons_digest": digest,
                },
            )
        number = pending.id
    raise ApprovalError(
        f"a key custodian must approve this build: tre extract approve {record.project_id} --build {number} "
        f"({persons} persons with ID numbers under {record.id} v{version}, {record.reference}, persons digest "
        f"{digest[:16]}; within {valid_days} days; § 5-2)"
    )


def pending_builds(metadata: Store) -> list[dict]:
    """§ 4-5 builds that wait for a key custodian, or are approved and not yet used."""
    with metadata.transaction() as session:
        rows = session.execute(
            select(BuildApproval).where(BuildApproval.extract_id.is_(None)).order_by(BuildApproval.id)
        ).scalars()
        return [_build_row(row) for row in rows]


def _build_row(row: BuildApproval) -> dict:
    return {
        "build": row.id,
        "project": row.project_id,
        "approval": row.approval_id,
        "version": row.approval_version,
        "persons": row.persons,
        "persons_digest": row.persons_digest,
        "reference": row.reference,
        "requested_by": row.requested_by,
        "requested_at": row.requested_at.isoformat(),
        "approved_by": row.approved_by,
    }


def approve_build(
    metadata: Store, project_id: str, build: int, *, actor: str, now: dt.datetime, valid_days: int
) -> dict:
    """A key custodian approves build `build` of `project_id` (§ 5-2 third paragraph): only a
    pending build, of the approval version in force, by someone other than who asked for it."""
    with metadata.transaction() as session:
        check_role(get_user(session, actor), [Role.CUSTODIAN], "approve a build that decrypts ID numbers")
        row = session.get(BuildApproval, build)
        if row is None or row.project_id != project_id:
            raise NotFound(f"{project_id} has no build {build}: `tre extract pending` lists those waiting")
        if row.extract_id is not None or row.approved_by is not None:
            raise InvalidTransition(f"build {build} of {project_id} is already approved by {row.approved_by}")
        if row.requested_by == actor:
            raise PermissionDenied(
                f"{actor} asked for build {build}: another key custodian must approve it (two people, § 5-2)"
            )
        if row.persons_digest is None or build_approval_expired(row, now, valid_days):
            raise InvalidTransition(
                f"build {build} of {project_id} was asked more than {valid_days} days ago (TRE_BUILD_APPROVAL_DAYS) "
                f"or before builds named their persons: the admin runs `tre extract build {project_id}` again"
            )
        current = [(a.id, a.version) for a in valid_approvals(session, project_id, now.date())]
        if (row.approval_id, row.approval_version) not in current:
            raise InvalidTransition(
                f"build {build} of {project_id} was asked under {row.approval_id} v{row.approval_version}, which is "
                f"no longer in force: the admin runs `tre extract build {project_id}` again"
            )
        if (
            not REK_REFERENCE.fullmatch(row.reference)
            and record_from_store(session.get(Approval, row.approval_id)).basis == "rek"
        ):
            raise ApprovalError(
                f"build {build} names {row.reference!r}, not a REK reference (REK <committee> <year>/<number>): "
                "the approval file must be fixed and synced first"
            )
        row.approved_by, row.approved_at = actor, now
        audit.record(
            session,
            at=now,
            actor=actor,
            action="extract.build.approve",
            object=f"project:{project_id}",
            details={
                "build": build,
                "approval": row.approval_id,
                "version": row.approval_version,
                "persons": row.persons,
                "persons_digest": row.persons_digest,
                "reference": row.reference,
                "requested_by": row.requested_by,
            },
        )
        return _build_row(row)


# The steps of a build, as `progress` names them (the CLI draws a bar over them).
BUILD_STEPS = ("cohort", "pseudonyms", "tables", "parquet", "release record", "publish")


def build_extract(
    settings: Settings,
    zone: CentralZone,
    metadata: Store,
    project_id: str,
    *,
    actor: str,
    progress: Callable[[str], None] = lambda step: None,
) -> ExtractResult:
    """Build the project's extract from its approval in force; see the module docstring.
    `progress` is called with each of BUILD_STEPS as it begins."""
    now = zone.clock()
    approval_id, version, record = _approval_in_force(metadata, project_id, actor=actor, now=now)
    ws = workspace(settings.projects_dir, project_id)
    if not ws.root.is_dir():
        raise UserError(f"project {project_id} has no workspace yet: run `tre project provision {project_id}` first")
    forgetting = _forgetting(settings, metadata, project_id, record, actor=actor, now=now)
    with forgetting, _building(settings, project_id) as build_dir:
        with zone.reading(metadata) as con:
            progress("cohort")
            cohort, excluded, representativeness = _cohort(con, record, now)
            custodian = None
            if record.kind == ApprovalKind.DIRECT45:
                # § 5-2 third paragraph: no ID number is decrypted without a key custodian's
                # approval of this very build; without one, the build stops here.
                digest = releases.persons_digest([str(p) for p in cohort["pid"].tolist()])
                custodian = _custodian_approval(
                    metadata,
                    record,
                    version,
                    len(cohort),
                    digest,
                    actor=actor,
                    now=now,
                    valid_days=settings.build_approval_days,
                )
            extract_id = _start(metadata, project_id, approval_id, version, actor=actor, now=now, custodian=custodian)
            result = ExtractResult(extract_id, project_id, approval_id, version, record.kind.value, 0)
            progress("pseudonyms")
            keys = pseudonyms.assign(settings.central_dir, project_id, cohort["pid"].to_numpy())
            result.persons, result.excluded_opt_out = keys.num_rows, excluded
            extract_file = build_dir / "extract.duckdb"
            _people(con, keys, cohort)
            con.execute(f"ATTACH {literal(str(extract_file))} AS extract")
            progress("tables")
            if record.kind == ApprovalKind.ANON43:
                result.tables = _write_statistics(con, record, settings)
            else:
                result.tables = _write_tables(con, record)
            result.withheld_id_numbers = _withhold_id_numbers(con, "extract")
            con.execute("DETACH extract")
        if record.kind == ApprovalKind.DIRECT45:
            _add_id_numbers(
                zone, metadata, extract_file, keys, actor=actor, extract_id=extract_id, record=record, build=custodian
            )
        progress("parquet")
        _write_parquet(extract_file, build_dir)
        manifest = _manifest(record, result, build_dir, representativeness, now)
        text = json.dumps(manifest, indent=2, ensure_ascii=False, default=str) + "\n"
        (build_dir / "manifest.json").write_text(text, encoding="utf-8")
        result.manifest_sha256 = hashlib.sha256(text.encode("utf-8")).hexdigest()
        # § 4-10: the release is recorded before the project can see anything.
        progress("release record")
        _record_release(settings, metadata, record, result, keys, actor=actor, now=now)
        # Marked ready before it is published: a crash in between leaves a record that purge
        # and the next build find, never data nobody accounts for.
        result.path = str(ws.data)
        _finish(metadata, result, manifest, record, actor=actor, now=now)
        progress("publish")
        _publish(ws, build_dir, _project_gid(metadata, project_id))
    return result


@contextmanager
def _forgetting(settings: Settings, metadata: Store, project_id: str, record: ApprovalRecord, *, actor, now):
    """§ 4-6 second paragraph, § 4-3: data linked only to make anonymous statistics are deleted
    as soon as the statistics are made. Around an `anon43` build (outside its build folder,
    which goes first with the person-level working set): when it ends, published or failed,
    the project's key table is deleted and audited, so nothing links the statistics back to
    persons. The release record's persons (§ 4-10, innsyn) stay."""
    if record.kind != ApprovalKind.ANON43:
        yield
        return
    outcome = "failed"
    try:
        yield
        outcome = "published"
    finally:
        had_keys = pseudonyms.purge(settings.central_dir, project_id)
        with metadata.transaction() as session:
            audit.record(
                session,
                at=now,
                actor=actor,
                action="extract.forget_persons",
                object=f"project:{project_id}",
                details={"build": outcome, "key_table": had_keys, "working_set": "deleted"},
            )


@contextmanager
def _building(settings: Settings, project_id: str) -> Iterator[Path]:
    """The project's build folder in the central zone (not central/tmp: the zone's recovery
    empties that before every use), held by one build at a time. What a killed build left
    there is removed first (and by the zone's recovery, when no build holds the lock); the
    folder goes when the build ends, however it ends. Everything the build writes is readable
    by its owner only (0600): a § 4-5 build's copy holds ID numbers in plain text."""
    with build_gate(settings, exclusive=False), build_lock(settings, project_id, wait=False) as held:
        if not held:
            raise UserError(f"an extract of {project_id} is being built right now: wait until it is done")
        build_dir = settings.central_dir / "building" / project_id
        shutil.rmtree(build_dir, ignore_errors=True)
        build_dir.mkdir(mode=0o700)
        umask = os.umask(0o077)
        try:
            yield build_dir
        finally:
            os.umask(umask)
            shutil.rmtree(build_dir, ignore_errors=True)


def _cohort(con: duckdb.DuckDBPyConnection, record: ApprovalRecord, now: dt.datetime):
    """(the cohort as a frame of canonical pid, birth date, sex, municipality; how many a § 4-5
    delivery leaves out for opt-outs; the representativeness note or None)."""
    params = {"from": record.period_from, "to": record.period_to}
    base = _cohort_sql(record, params)
    cohort = con.execute(f"{base} ORDER BY pid", _used(base, params)).df()
    if record.kind != ApprovalKind.DIRECT45:
        return cohort, 0, None
    # § 4-5 third paragraph: nobody with an active release-with-FNR opt-out, decided now
    # (`active_reservations` reads effective times as the Norwegian wall-clock times they are).
    active = active_reservations(con, ReservationKind.RELEASE_WITH_FNR, now)
    excluded = cohort["pid"].isin(active)
    note = _representativeness(cohort, excluded, record.period_from, _threshold(record))
    return cohort[~excluded].reset_index(drop=True), int(excluded.sum()), note


def _people(con, keys: pa.Table, cohort: pd.DataFrame) -> None:
    """`__tre_people` (pid, pseudonym) for every pid of the cohort's persons, and `__tre_ages`
    (pseudonym, birth date) for the statistics."""
    con.register("__tre_keys", keys)
    con.register("__tre_cohort", cohort)
    con.execute(
        f"""CREATE OR REPLACE TEMP TABLE __tre_people AS
            SELECT CAST(k.pid AS UUID) AS pid, k.pseudonym FROM __tre_keys k
            UNION ALL
            SELECT m.pid, k.pseudonym FROM {_person_map()} m JOIN __tre_keys k ON m.canonical_pid = CAST(k.pid AS UUID)"""
    )
    con.execute(
        """CREATE OR REPLACE TEMP TABLE __tre_ages AS
           SELECT k.pseudonym, c.birth_date FROM __tre_keys k JOIN __tre_cohort c ON c.pid = k.pid"""
    )
    con.unregister("__tre_cohort")


def _threshold(record: ApprovalRecord) -> int:
    """The smallest group the approval lets anything be shown about (its own, else the default)."""
    from tre.output_check import load_parameters  # no cycle: linkage → output_check

    return record.threshold or load_parameters().threshold


def _representativeness(cohort: pd.DataFrame, excluded: pd.Series, at: dt.date, threshold: int) -> dict:
    """How the persons left out by opt-outs compare with those delivered (age, sex, municipality).

    A group under the threshold is given by its size only: the mean age and share of women of
    one or two persons who opted out would tell the recipient about exactly them."""
    born = pd.to_datetime(cohort["birth_date"])
    at = pd.Timestamp(at)
    age = (
        at.year - born.dt.year - ((born.dt.month > at.month) | ((born.dt.month == at.month) & (born.dt.day > at.day)))
    ).clip(lower=0)
    rows = cohort.assign(age=age)

    def describe(part: pd.DataFrame) -> dict:
        if len(part) < threshold:
            return {"persons": len(part)}
        return {
            "persons": len(part),
            "mean_age": round(float(part["age"].mean()), 1),
            "share_women": round(float((part["sex"] == "K").mean()), 3),
            "municipalities": int(part["municipality"].nunique()),
        }

    return {
        "included": describe(rows[~excluded]),
        "excluded": describe(rows[excluded]),
        "note": "persons with an active release-with-FNR opt-out (§ 2-2) are not delivered; "
        f"compare the groups to judge how representative the delivery is (a group of fewer than {threshold} "
        "is given by its size only)",
    }


def _write_tables(con, record: ApprovalRecord) -> dict[str, int]:
    params = {"from": record.period_from, "to": record.period_to}
    counts = {}
    con.execute(f"CREATE TABLE extract.persons AS {_persons_sql(record)}")
    counts["persons"] = con.execute("SELECT count(*) FROM extract.persons").fetchall()[0][0]
    for name, variables in sorted(record.sources.items()):
        if name == "dsf":
            continue
        source = SOURCES[name]
        sql = _table_sql(con, source, variables, record.date_precision)
        con.execute(f"CREATE TABLE extract.{quote(name)} AS {sql}", _used(sql, params))
        counts[name] = con.execute(f"SELECT count(*) FROM extract.{quote(name)}").fetchall()[0][0]
    return counts


def _write_statistics(con, record: ApprovalRecord, settings: Settings) -> dict[str, int]:
    """§ 4-3: anonymous for the recipient. Per source, variable and year: persons by age group
    and category (each person counted once a year, under their latest category, so that every
    cell and margin counts persons, never person-years), or the mean of a numeric variable by
    age group; protected by the output checker (primary and secondary suppression at the
    approval's threshold)."""
    from tre.output_check import build_table, build_table_report, load_parameters  # no cycle: linkage → output_check

    parameters = load_parameters()
    if record.threshold:
        parameters = parameters.with_overrides(threshold=record.threshold)
    params = {"from": record.period_from, "to": record.period_to}
    edges = [lo for lo, _ in AGE_GROUPS] + [AGE_GROUPS[-1][1] + 1]
    labels = [f"{lo}-{hi}" if hi < 200 else f"{lo}+" for lo, hi in AGE_GROUPS]
    counts = {}
    for name, variables in sorted(record.sources.items()):
        source = SOURCES[name]
        if name == "dsf" or source.event_date is None:
            continue
        selected = [v for v in variables if v != "old_pseudonym" and source.column(v).type not in ("DATE", "TIMESTAMP")]
        if not selected:
            continue
        sql = (
            f"SELECT r.__person AS person, {_years_active(source)} AS year, {_age('$from')} AS age, "
            f"CAST(r.{quote(source.event_date)} AS DATE) AS event, {', '.join(f'r.{quote(v)}' for v in selected)} "
            f"FROM ({_rows(con, source)}) r JOIN __tre_ages d ON d.pseudonym = r.__person"
        )
        rows = con.execute(sql, _used(sql, params)).df().sort_values(["person", "year", "event"])
        rows["age_group"] = pd.cut(rows["age"], edges, right=False, labels=labels).astype(str)
        for variable in selected:
            column = source.column(variable)
            frames = []
            for year, of_year in rows.dropna(subset=[variable]).groupby("year"):
                if column.codes:
                    latest = of_year.drop_duplicates(["person"], keep="last")
                    table = build_table(latest, ["age_group", variable])
                    value = "persons"
                elif column.type in ("DOUBLE", "INTEGER"):
                    means = of_year.groupby(["person", "age_group"], as_index=False)[variable].mean()
                    table = build_table(means, ["age_group"], value=variable, statistic="mean")
                    value = f"mean_{variable}"
                else:
                    continue
                report = build_table_report(table, parameters, method="suppress", audit=False)
                frames.append(
                    pd.DataFrame(
                        [
                            {"year": int(year), **cell["key"], value: cell["published"], "status": cell["status"]}
                            for cell in report.cells
                        ]
                    )
                )
            if not frames:
                continue
            frame = pd.concat(frames, ignore_index=True)
            table_name = f"{name}_{variable}"
            con.register("__tre_stat", frame)
            con.execute(f"CREATE TABLE extract.{quote(table_name)} AS SELECT * FROM __tre_stat")
            con.unregister("__tre_stat")
            counts[table_name] = len(frame)
    return counts


def _withhold_id_numbers(con, schema: str) -> dict[str, int]:
    """The last look before anything is written for a project: every value of every released
    column that holds an ID number, in any form (`tre.idnumbers`), is set to NULL, and counted
    per table and column for the manifest and the audit event. Ingest refuses such values; this
    catches what an older version stored, and anything a rule missed. The pseudonyms are ours,
    and a § 4-5 delivery's ID numbers are added only after this."""
    withheld = {}
    columns = con.execute(
        "SELECT table_name, column_name, data_type FROM duckdb_columns() WHERE database_name = $1 "
        "ORDER BY table_name, column_index",
        [schema],
    ).fetchall()
    for table, column, kind in columns:
        if column == "pseudonym":
            continue
        name = f"{quote(schema)}.{quote(table)}"
        c = quote(column)
        if kind == "VARCHAR":
            condition = id_shape_sql(Column(column, "VARCHAR", "admin"), c, None)
        elif kind in NUMERIC_TYPES or kind.startswith("DECIMAL"):
            condition = f"abs({c}) >= 1e9 AND abs({c}) < 1e11"
        else:
            continue  # dates, times and truth values hold no ID number
        marked = con.execute(f"SELECT rowid, {c} FROM {name} WHERE {condition}").fetchall()
        if not marked:
            continue
        holds = idnumbers.holds_id_numbers([value for _, value in marked])
        rows = [rowid for (rowid, _), hit in zip(marked, holds, strict=True) if hit]
        if rows:
            con.execute(f"UPDATE {name} SET {c} = NULL WHERE list_contains($1, rowid)", [rows])
            withheld[f"{table}.{column}"] = len(rows)
    return withheld


NUMERIC_TYPES = {"TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UBIGINT", "UINTEGER", "FLOAT", "DOUBLE"}


def _add_id_numbers(zone, metadata, extract_file: Path, keys: pa.Table, *, actor, extract_id, record, build) -> None:
    """§ 4-5: the ID numbers, decrypted through the vault under the custodian's approval of
    this build, one audit event per person."""
    pids = keys.column("pid").to_pylist()
    numbers = vault.decrypt_for_release(
        zone,
        metadata,
        pids,
        actor=actor,
        build=build,
        reference=f"extract-{extract_id}",
        reason=f"§ 4-5 delivery under {record.id} ({record.reference})",
    )
    frame = pa.table({"pseudonym": keys.column("pseudonym"), "fnr": pa.array([numbers[p] for p in pids], pa.string())})
    con = duckdb.connect(str(extract_file))
    try:
        con.register("__tre_fnr", frame)
        con.execute(
            "CREATE TABLE persons_with_fnr AS SELECT p.pseudonym, f.fnr, p.* EXCLUDE (pseudonym) "
            "FROM persons p JOIN __tre_fnr f USING (pseudonym) ORDER BY p.pseudonym"
        )
        con.execute("DROP TABLE persons")
        con.execute("ALTER TABLE persons_with_fnr RENAME TO persons")
    finally:
        con.close()


def _write_parquet(extract_file: Path, build_dir: Path) -> None:
    con = duckdb.connect(str(extract_file))
    try:
        con.execute("CHECKPOINT")
        for (table,) in con.execute("SELECT table_name FROM duckdb_tables() ORDER BY table_name").fetchall():
            target = build_dir / f"{table}.parquet"
            # Parquet's DATE reads into pandas as objects (`.dt` fails): dates are written as
            # timestamps at midnight, which pandas reads as datetime64.
            dates = [
                name
                for (name,) in con.execute(
                    "SELECT column_name FROM duckdb_columns() WHERE table_name = ? AND data_type = 'DATE'", [table]
                ).fetchall()
            ]
            replace = f" REPLACE ({', '.join(f'CAST({quote(d)} AS TIMESTAMP) AS {quote(d)}' for d in dates)})"
            query = f"SELECT *{replace if dates else ''} FROM {quote(table)}"
            con.execute(f"COPY ({query}) TO {literal(str(target))} (FORMAT parquet, COMPRESSION zstd)")
    finally:
        con.close()


def _manifest(record: ApprovalRecord, result: ExtractResult, build_dir: Path, representativeness, now) -> dict:
    files = {}
    for path in sorted(build_dir.iterdir()):
        if path.is_file() and path.name != "manifest.json":
            files[path.name] = hashlib.sha256(path.read_bytes()).hexdigest()
    return {
        "format": MANIFEST_FORMAT,
        "extract": result.extract_id,
        "project": result.project_id,
        "approval": {
            "id": record.id,
            "version": result.approval_version,
            "kind": record.kind.value,
            "reference": record.reference,
        },
        "legal_basis": record.legal_basis,
        "period": {"from": record.period_from.isoformat(), "to": record.period_to.isoformat()},
        "date_precision": record.date_precision,
        "variables": {
            name: [v for v in variables if v != "old_pseudonym"] for name, variables in record.sources.items()
        },
        "cohort_size": result.persons,
        "tables": result.tables,
        "units": _unit_columns(build_dir, result.tables),
        "excluded_release_with_fnr_opt_out": result.excluded_opt_out,
        "withheld_id_numbers": result.withheld_id_numbers,
        "representativeness": representativeness,
        # The output checks' threshold, decided centrally: tre.safe in the kernel reads it here.
        "disclosure": {"threshold": _threshold(record)},
        "files": files,
        "built_at": now.isoformat(),
        "notes": _notes(record, result),
    }


def _unit_columns(build_dir: Path, tables) -> dict[str, str]:
    """Per table, the column naming the person each row is about (what tre.safe counts):
    `pseudonym` where the table has one; a table of statistics has none."""
    from pyarrow import parquet

    units = {}
    for table in tables:
        path = build_dir / f"{table}.parquet"
        if path.is_file() and "pseudonym" in parquet.read_schema(path).names:
            units[table] = "pseudonym"
    return units


def _notes(record: ApprovalRecord, result: ExtractResult) -> list[str]:
    notes = [
        f"dates are coarsened to the {record.date_precision}: a date stands for the first day of its {record.date_precision}"
    ]
    if result.withheld_id_numbers:
        notes.append(
            "values that held a national ID number are left empty (withheld_id_numbers: how many, per table.column)"
        )
    if record.kind == ApprovalKind.ANON43:
        notes.append(
            "anonymous statistics (§ 4-3): counts of persons under the threshold and cells that would reveal them are suppressed (value empty)"
        )
    if record.kind == ApprovalKind.DIRECT45:
        notes.append(
            "directly identifiable (§ 4-5): persons.fnr holds the ID number; persons with a release-with-FNR opt-out are left out"
        )
    return notes


def _project_gid(metadata: Store, project_id: str) -> int | None:
    import grp

    with metadata.transaction() as session:
        project = session.get(Project, project_id)
        group = project.os_group if project else None
    if not group or os.geteuid() != 0:
        return None
    try:
        return grp.getgrnam(group).gr_gid
    except KeyError:
        return None


def _record_release(settings, metadata, record: ApprovalRecord, result: ExtractResult, keys, *, actor, now) -> None:
    """§ 4-10, in two phases under the releases lock (`tre.linkage.releases`): the persons
    under a new batch, then the record naming that batch and its digest. A build killed in
    between leaves a batch no record names, which recovery deletes."""
    reference = f"extract-{result.extract_id}"
    with releases.releases_db(settings, write=True) as con:
        # Persons are recorded centrally; a § 4-3 delivery is anonymous yet still about them.
        batch = releases.prepare(con, keys.column("pid"), project=record.project_id, reference=reference, now=now)
        with metadata.transaction() as session:
            row = ReleaseRecord(
                kind=ReleaseKind.EXTRACT,
                project_id=record.project_id,
                approval_id=record.id,
                approval_version=result.approval_version,
                recipient=str(record.recipient),
                legal_basis=record.legal_basis,
                persons=result.persons if record.kind != ApprovalKind.ANON43 else None,
                reference=reference,
                released_at=now,
                keep_until=add_years(now.date(), RELEASE_RECORD_YEARS),
                persons_batch=batch.batch,
                persons_digest=batch.digest,
            )
            session.add(row)
            anchor(session, row, actor=actor, at=now)
            audit.record(
                session,
                at=now,
                actor=actor,
                action="release.record",
                object=f"project:{record.project_id}",
                details={"reference": reference, "recipient": str(record.recipient), "persons": result.persons},
            )


def _publish(ws, build_dir: Path, gid: int | None) -> None:
    new, old = ws.root / NEW, ws.root / OLD
    for leftover in (new, old):
        shutil.rmtree(leftover, ignore_errors=True)
    new.mkdir(mode=0o700)  # unreadable to the project until it is whole
    for path in build_dir.iterdir():
        if path.is_file() and not path.name.endswith(".wal"):
            shutil.copy2(path, new / path.name)
    seal_folder(new, gid)
    new.chmod(0o700)  # its files are sealed; the folder opens to the group only as data/
    # Two renames: in between there is no data/ at all, never a partial one.
    if ws.data.exists():
        os.rename(ws.data, old)
    os.rename(new, ws.data)
    ws.data.chmod(0o750)
    shutil.rmtree(old, ignore_errors=True)


def _finish(metadata, result: ExtractResult, manifest: dict, record: ApprovalRecord, *, actor, now) -> None:
    with metadata.transaction() as session:
        for old in session.execute(
            select(Extract).where(
                Extract.project_id == result.project_id,
                Extract.status == ExtractStatus.READY,
                Extract.id != result.extract_id,
            )
        ).scalars():
            old.status, old.purged_at = ExtractStatus.PURGED, now  # replaced: its files are gone
        extract = session.get(Extract, result.extract_id)
        extract.status = ExtractStatus.READY
        extract.path = result.path
        extract.persons = result.persons
        extract.manifest = manifest
        extract.manifest_sha256 = result.manifest_sha256
        # § 4-11: counted from the project's first linkage; a rebuild never restarts the clock.
        extract.purge_after = retention.deadline(session, result.project_id, _first(session, result, now))
        audit.record(
            session,
            at=now,
            actor=actor,
            action="extract.build",
            object=f"project:{result.project_id}",
            details={
                "extract": result.extract_id,
                "approval": record.id,
                "version": result.approval_version,
                "persons": result.persons,
                "tables": result.tables,
                "excluded_opt_out": result.excluded_opt_out,
                "withheld_id_numbers": result.withheld_id_numbers,
            },
        )


def _first(session, result: ExtractResult, now: dt.datetime) -> dt.datetime:
    """The first linkage: an earlier extract's, or this build's when it is the first."""
    earlier = retention.first_linkage(session, result.project_id)
    return min(earlier, now) if earlier else now


def find_extract(metadata: Store, project_id: str) -> Extract:
    with metadata.transaction() as session:
        extract = (
            session.execute(
                select(Extract)
                .where(Extract.project_id == project_id, Extract.status == ExtractStatus.READY)
                .order_by(Extract.id.desc())
            )
            .scalars()
            .first()
        )
    if extract is None:
        raise NotFound(f"project {project_id} has no extract: build one with `tre extract build {project_id}`")
    return extract


def remove_extract_files(settings: Settings, project_id: str) -> None:
    """The project's extract gone, with whatever killed builds and publishes left of it: the
    build folder in the central zone, a hidden new extract, an old one not yet removed."""
    ws = workspace(settings.projects_dir, project_id)
    for leftover in (settings.central_dir / "building" / project_id, ws.root / NEW, ws.root / OLD):
        shutil.rmtree(leftover, ignore_errors=True)
    if ws.data.exists():
        os.rename(ws.data, ws.root / OLD)  # out of the project's sight at once, then deleted
        shutil.rmtree(ws.root / OLD)


def purge_expired(settings: Settings, metadata: Store, *, actor: str, now: dt.datetime) -> list[dict]:
    """§ 4-11: delete extracts past their retention, with the project's key table. The release
    record stays (§ 4-10: at least five years)."""
    purged = []
    with metadata.transaction() as session:
        due = (
            session.execute(
                select(Extract).where(Extract.status == ExtractStatus.READY, Extract.purge_after < now.date())
            )
            .scalars()
            .all()
        )
        for extract in due:
            remove_extract_files(settings, extract.project_id)
            had_keys = pseudonyms.purge(settings.central_dir, extract.project_id)
            extract.status, extract.purged_at = ExtractStatus.PURGED, now
            audit.record(
                session,
                at=now,
                actor=actor,
                action="extract.purge",
                object=f"project:{extract.project_id}",
                details={"extract": extract.id, "purge_after": extract.purge_after.isoformat(), "key_table": had_keys},
            )
            purged.append({"extract": extract.id, "project": extract.project_id})
    return purged
