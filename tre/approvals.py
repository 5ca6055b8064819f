"""Approval records: one TOML file per approval in approvals/, validated and synced.

`read_records` parses every file and collects every problem (file, field, message) at once;
`sync` loads valid records into the metadata store: it records each file's sha256, versions
changed files, revokes approvals whose file was removed, marks expired ones and locks their
projects. The schema is documented in approvals/README.md.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import math
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from tre import audit
from tre.enums import ApprovalKind, ApprovalStatus, MemberRole, ProjectStatus
from tre.errors import ApprovalError
from tre.models import Approval, ApprovalVersion, Project, ProjectMember, User
from tre.registers import CODE_LISTS, SOURCES, municipality_numbers
from tre.workspace import lock_project, unlock_project, valid_approvals

# The reason a sync (or a refused build) locks a project with; only such a lock is lifted again
# by a sync that finds a valid approval.
SYSTEM_LOCK = "no valid approval"

# § 1-1: what KPR data may be processed for.
PURPOSES = {
    "planning": "planning of municipal health and care services",
    "management": "management (styring) of the services",
    "financing": "financing of the services",
    "evaluation": "evaluation of the services",
    "quality_improvement": "quality improvement",
    "prevention": "prevention (forebygging)",
    "preparedness": "preparedness (beredskap)",
    "analysis": "analyses",
    "research": "research",
    "summary_care_record": "the national summary care record (kjernejournal)",
}
# § 4-1 (hrl § 19 b): never, not even with the data subject's consent.
FORBIDDEN_PURPOSES = {
    "prosecution": "criminal investigation or prosecution",
    "insurance": "insurance",
    "employment": "employers' purposes",
}
# § 4-1 second paragraph: who may never be given KPR data, whatever the purpose and even with
# the data subjects' consent. An approval's `[recipient] kind` names what the receiving
# organisation is; these kinds are refused.
FORBIDDEN_RECIPIENTS = {
    "employer": "an employer or its HR department may never receive KPR data (§ 4-1 second paragraph)",
    "insurer": "an insurer may never receive KPR data (§ 4-1 second paragraph)",
    "police": "the police may never receive KPR data (§ 4-1 second paragraph: not for the prosecuting authority)",
    "prosecution": "the prosecuting authority may never receive KPR data (§ 4-1 second paragraph)",
}
# The kinds of organisation that may receive data (each still needs its legal basis).
RECIPIENT_KINDS = {
    "health_trust": "a health trust or hospital",
    "municipality": "a municipality or county",
    "university": "a university or university college",
    "research_institute": "a research institute",
    "public_agency": "a public agency",
    "health_service": "another provider of health and care services",
    "company": "a private company (for a § 1-1 purpose or with consent)",
}
# Bases under which the data may be processed for purposes outside § 1-1 (§ 4-1 second
# paragraph: "med mindre annet følger av lov eller etter samtykke fra den registrerte").
OPEN_PURPOSE_BASES = {"consent", "law"}
ORG_NUMBER_WEIGHTS = (3, 2, 7, 6, 5, 4, 3, 2)  # Brønnøysund: mod 11 over the first eight digits
# What a legal basis may be; direct-identifiable releases (§ 4-5) need one of DIRECT_BASES.
BASES = {"rek", "hrl7", "law", "hrl20", "anonymous", "consent"}
DIRECT_BASES = {"rek", "hrl7", "law"}
# REK's reference form, as its letters give it: "REK <committee> <year>/<case number>", e.g.
# "REK sør-øst 2026/118833"; it is what a key custodian checks before a § 4-5 build (§ 5-2).
REK_REFERENCE = re.compile(r"REK (sør-øst(?: [A-D])?|vest|midt|nord) (19|20)[0-9]{2}/[0-9]{1,6}")
DATE_PRECISIONS = ("day", "month", "tertial", "year")
MAX_RETENTION_YEARS = 10  # § 4-11
MIN_THRESHOLD = 3  # the lowest cell minimum in common practice
ID_PATTERN = re.compile(r"^[a-z0-9][a-z0-9-]{1,47}$")
PROJECT_ID_PATTERN = re.compile(r"^[a-z][a-z0-9-]{1,23}$")  # short: OS group names derive from it


@dataclass(frozen=True)
class Problem:
    file: str
    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.file}: {self.field}: {self.message}"


@dataclass(frozen=True)
class Cohort:
    """Who is in the extract: persons with an event in `source` within the period whose coded
    columns start with one of the listed codes, filtered by age, sex and municipality."""

    source: str
    codes: dict[str, tuple[str, ...]] = field(default_factory=dict)
    age_min: int | None = None  # age on the first day of the period
    age_max: int | None = None
    sex: tuple[str, ...] = ()
    municipalities: tuple[str, ...] = ()


@dataclass(frozen=True)
class Recipient:
    """The organisation that receives the data (§ 4-1, § 4-10)."""

    org_number: str
    name: str
    kind: str

    def __str__(self) -> str:
        return f"{self.name} (org. no. {self.org_number})"


def valid_org_number(value: str) -> bool:
    """A Norwegian organisation number: nine digits, the last a mod-11 check digit."""
    if not re.fullmatch(r"[0-9]{9}", value):
        return False
    remainder = sum(int(d) * w for d, w in zip(value[:8], ORG_NUMBER_WEIGHTS, strict=True)) % 11
    check = 0 if remainder == 0 else 11 - remainder
    return check != 10 and check == int(value[8])


@dataclass(frozen=True)
class Member:
    user: str
    role: MemberRole


@dataclass(frozen=True)
class ApprovalRecord:
    id: str
    kind: ApprovalKind
    reference: str
    basis: str
    legal_basis: str
    purpose: str
    purpose_description: str
    applicant: str
    recipient: Recipient
    project_id: str
    project_title: str
    members: tuple[Member, ...]
    sources: dict[str, tuple[str, ...]]
    cohort: Cohort
    period_from: dt.date
    period_to: dt.date
    date_precision: str
    linkage: bool
    application_complete: dt.date
    valid_from: dt.date
    valid_until: dt.date
    retention_years: int
    conditions: tuple[str, ...]
    fee_estimate_nok: float
    threshold: int | None
    path: str
    sha256: str
    document: dict

    def is_valid_on(self, day: dt.date) -> bool:
        return self.valid_from <= day <= self.valid_until


# --- reading and validating ---------------------------------------------------------------

TOP_LEVEL = {
    "id",
    "kind",
    "reference",
    "basis",
    "legal_basis",
    "purpose",
    "purpose_description",
    "applicant",
    "recipient",
    "project",
    "members",
    "sources",
    "cohort",
    "period",
    "date_precision",
    "linkage",
    "application_complete",
    "valid_from",
    "valid_until",
    "retention_years",
    "conditions",
    "fee_estimate_nok",
    "threshold",
}


class _Reader:
    """Reads one parsed TOML document, noting every problem instead of stopping at the first."""

    def __init__(self, name: str, doc: dict, *, stored: bool = False):
        # A stored document (JSON in the metadata store) carries dates as ISO strings.
        self.name, self.doc, self.problems, self.stored = name, doc, [], stored

    def problem(self, where: str, message: str) -> None:
        self.problems.append(Problem(self.name, where, message))

    def get(self, table: dict, key: str, kind, where: str, required: bool = True, default=None):
        if key not in table:
            if required:
                self.problem(where, "missing")
            return default
        value = table[key]
        kinds = kind if isinstance(kind, tuple) else (kind,)
        if self.stored and dt.date in kinds and isinstance(value, str):
            try:
                return dt.date.fromisoformat(value)
            except ValueError:
                pass
        # TOML dates are datetime.date; a datetime is not a date here.
        if (
            isinstance(value, bool)
            and bool not in kinds
            or not isinstance(value, kinds)
            or (dt.date in kinds and isinstance(value, dt.datetime))
        ):
            self.problem(where, f"must be {' or '.join(k.__name__ for k in kinds)}, got {type(value).__name__}")
            return default
        return value

    def known(self, table: dict, allowed: set[str], where: str = "") -> None:
        """Every key of `table` outside `allowed` is a problem: a misspelt key must not be
        silently ignored (a misspelt `age.min` would widen the cohort)."""
        for key in sorted(set(table) - allowed):
            self.problem(f"{where}.{key}" if where else key, "unknown field")

    def choice(self, table: dict, key: str, allowed, where: str, required: bool = True):
        value = self.get(table, key, str, where, required)
        if value is not None and value not in allowed:
            self.problem(where, f"{value!r} is not one of {', '.join(sorted(allowed))}")
            return None
        return value

    def strings(self, table: dict, key: str, where: str, required: bool = True) -> tuple[str, ...]:
        value = self.get(table, key, list, where, required, default=[])
        if not all(isinstance(v, str) for v in value):
            self.problem(where, "must be a list of strings")
            return ()
        return tuple(value)


def read_record(path: Path, *, known_users: set[str] | None = None, today: dt.date | None = None):
    """Parse and validate one approval file: (record or None, [Problem, ...]).

    A record comes back only when there are no problems that stop it from being loaded;
    `today` adds the "validity ended" problem (reported by `check`, not a reason not to sync).
    """
    name = path.name
    data = path.read_bytes()
    try:
        doc = tomllib.loads(data.decode("utf-8"))
    except UnicodeDecodeError:
        return None, [Problem(name, "(file)", "is not UTF-8 text")]
    except tomllib.TOMLDecodeError as e:
        return None, [Problem(name, "(file)", f"is not valid TOML: {e}")]
    return parse_document(
        doc, name=name, path=str(path), sha256=hashlib.sha256(data).hexdigest(), known_users=known_users, today=today
    )


def record_from_store(approval: Approval) -> ApprovalRecord:
    """The approval as it was synced: extracts are built from the store, not from the file."""
    record, problems = parse_document(
        approval.document, name=Path(approval.path).name, path=approval.path, sha256=approval.sha256, stored=True
    )
    if record is None:
        raise ApprovalError(
            f"approval {approval.id} as synced does not validate ({problems[0]}): fix its file and run "
            "`tre approvals sync`"
        )
    return record


def parse_document(
    doc: dict,
    *,
    name: str,
    path: str,
    sha256: str,
    known_users: set[str] | None = None,
    today: dt.date | None = None,
    stored: bool = False,
):
    """Validate one approval document: (record or None, [Problem, ...])."""
    r = _Reader(name, doc, stored=stored)
    r.known(doc, TOP_LEVEL)

    approval_id = r.get(doc, "id", str, "id")
    if approval_id is not None and not ID_PATTERN.fullmatch(approval_id):
        r.problem("id", "use 2-48 lowercase letters, digits and '-'")
    kind = r.choice(doc, "kind", {k.value for k in ApprovalKind}, "kind")
    reference = r.get(doc, "reference", str, "reference")
    basis = r.choice(doc, "basis", BASES, "basis")
    legal_basis = r.get(doc, "legal_basis", str, "legal_basis")
    purpose = r.get(doc, "purpose", str, "purpose")
    if purpose in FORBIDDEN_PURPOSES:
        r.problem(
            "purpose",
            f"{purpose} ({FORBIDDEN_PURPOSES[purpose]}) is never allowed (§ 4-1), not even with the data subjects' consent",
        )
    elif purpose is not None and purpose not in PURPOSES and basis not in OPEN_PURPOSE_BASES:
        r.problem(
            "purpose",
            f"{purpose!r} is not a § 1-1 purpose ({', '.join(PURPOSES)}); another purpose needs the data "
            "subjects' consent or a law (basis consent or law, § 4-1 second paragraph)",
        )
    elif purpose is not None and not purpose.strip():
        r.problem("purpose", "is empty: name the purpose and describe it in purpose_description")
    purpose_description = r.get(doc, "purpose_description", str, "purpose_description")
    applicant = r.get(doc, "applicant", str, "applicant")
    recipient = _read_recipient(r, doc)
    if kind == ApprovalKind.DIRECT45 and basis is not None and basis not in DIRECT_BASES:
        r.problem(
            "basis", "a direct45 (§ 4-5) release needs REK approval, an hrl § 7 permit or a law: rek, hrl7 or law"
        )
    if kind == ApprovalKind.REK and basis not in (None, "rek"):
        r.problem("basis", "a rek approval has basis rek")
    if basis == "rek" and reference is not None and not REK_REFERENCE.fullmatch(reference):
        r.problem(
            "reference",
            f"{reference!r} is not a REK reference: copy it from REK's letter as 'REK <committee> <year>/<number>', "
            "e.g. 'REK sør-øst 2026/118833' (committee sør-øst, vest, midt or nord)",
        )

    project = r.get(doc, "project", dict, "project", default={})
    r.known(project, {"id", "title"}, "project")
    project_id = r.get(project, "id", str, "project.id")
    if project_id is not None and not PROJECT_ID_PATTERN.fullmatch(project_id):
        r.problem("project.id", "use 2-24 lowercase letters, digits and '-', starting with a letter")
    project_title = r.get(project, "title", str, "project.title")

    members = _read_members(r, doc, known_users)
    sources = _read_sources(r, doc)
    period = r.get(doc, "period", dict, "period", default={})
    r.known(period, {"from", "to"}, "period")
    period_from = r.get(period, "from", dt.date, "period.from")
    period_to = r.get(period, "to", dt.date, "period.to")
    if period_from and period_to and period_from > period_to:
        r.problem("period", "from is after to")
    cohort = _read_cohort(r, doc, sources)
    precision = r.choice(doc, "date_precision", set(DATE_PRECISIONS), "date_precision")
    linkage = r.get(doc, "linkage", bool, "linkage")
    complete = r.get(doc, "application_complete", dt.date, "application_complete")
    valid_from = r.get(doc, "valid_from", dt.date, "valid_from")
    valid_until = r.get(doc, "valid_until", dt.date, "valid_until")
    if valid_from and valid_until and valid_from > valid_until:
        r.problem("valid_until", "is before valid_from")
    retention = r.get(doc, "retention_years", int, "retention_years")
    if retention is not None and not 1 <= retention <= MAX_RETENTION_YEARS:
        r.problem(
            "retention_years",
            f"{retention} is outside 1-{MAX_RETENTION_YEARS}: a linked set is kept at most 10 years (§ 4-11)",
        )
    conditions = r.strings(doc, "conditions", "conditions", required=False)
    fee = r.get(doc, "fee_estimate_nok", (int, float), "fee_estimate_nok", required=False, default=0)
    if fee is not None and not (math.isfinite(fee) and fee >= 0):  # TOML has nan and inf
        r.problem("fee_estimate_nok", "must be a finite number, 0 or more")
    threshold = r.get(doc, "threshold", int, "threshold", required=False)
    if threshold is not None and threshold < MIN_THRESHOLD:
        r.problem("threshold", f"{threshold} is below the smallest cell minimum allowed ({MIN_THRESHOLD})")

    blocking = list(r.problems)
    if today is not None and valid_until is not None and valid_until < today:
        r.problem("valid_until", f"validity ended on {valid_until.isoformat()}")
    if blocking:
        return None, r.problems
    record = ApprovalRecord(
        id=approval_id,
        kind=ApprovalKind(kind),
        reference=reference,
        basis=basis,
        legal_basis=legal_basis,
        purpose=purpose,
        purpose_description=purpose_description,
        applicant=applicant,
        recipient=recipient,
        project_id=project_id,
        project_title=project_title,
        members=members,
        sources=sources,
        cohort=cohort,
        period_from=period_from,
        period_to=period_to,
        date_precision=precision,
        linkage=linkage,
        application_complete=complete,
        valid_from=valid_from,
        valid_until=valid_until,
        retention_years=retention,
        conditions=conditions,
        fee_estimate_nok=float(fee),
        threshold=threshold,
        path=path,
        sha256=sha256,
        document=_jsonable(doc),
    )
    return record, r.problems


def _read_recipient(r: _Reader, doc: dict) -> Recipient | None:
    """`[recipient]`: the receiving organisation. Kinds in FORBIDDEN_RECIPIENTS are refused
    whatever the basis: § 4-1 holds even with the data subjects' consent."""
    raw = r.get(doc, "recipient", dict, "recipient", default=None)
    if raw is None:
        return None
    r.known(raw, {"org_number", "name", "kind"}, "recipient")
    org_number = r.get(raw, "org_number", str, "recipient.org_number")
    name = r.get(raw, "name", str, "recipient.name")
    if name is not None and not name.strip():
        r.problem("recipient.name", "is empty: the organisation's registered name")
    kind = r.get(raw, "kind", str, "recipient.kind")
    if kind in FORBIDDEN_RECIPIENTS:
        r.problem("recipient.kind", f"{kind}: {FORBIDDEN_RECIPIENTS[kind]}, not even with the data subjects' consent")
    elif kind is not None and kind not in RECIPIENT_KINDS:
        r.problem("recipient.kind", f"{kind!r} is not one of {', '.join(RECIPIENT_KINDS)}")
    if org_number is not None and not valid_org_number(org_number):
        r.problem(
            "recipient.org_number",
            f"{org_number!r} is not a valid organisation number (nine digits, the last a mod-11 check digit): "
            "copy it from the Central Coordinating Register for Legal Entities (Enhetsregisteret)",
        )
    if None in (org_number, name, kind):
        return None
    return Recipient(org_number, name, kind)


def _read_members(r: _Reader, doc: dict, known_users: set[str] | None) -> tuple[Member, ...]:
    raw = r.get(doc, "members", list, "members", default=[])
    members = []
    for i, entry in enumerate(raw):
        where = f"members[{i}]"
        if not isinstance(entry, dict):
            r.problem(where, "must be a table with user and role")
            continue
        user = r.get(entry, "user", str, f"{where}.user")
        role = r.choice(entry, "role", {m.value for m in MemberRole}, f"{where}.role")
        r.known(entry, {"user", "role"}, where)
        if user is not None and known_users is not None and user not in known_users:
            r.problem(f"{where}.user", f"unknown user {user!r}: add them with `tre user add {user} --role researcher`")
        if user is not None and role is not None:
            members.append(Member(user, MemberRole(role)))
    if raw and not any(m.role == MemberRole.PI for m in members):
        r.problem("members", "needs a member with role pi")
    names = [m.user for m in members]
    for name in sorted({n for n in names if names.count(n) > 1}):
        r.problem("members", f"user {name!r} is listed twice")
    return tuple(members)


def _read_sources(r: _Reader, doc: dict) -> dict[str, tuple[str, ...]]:
    raw = r.get(doc, "sources", dict, "sources", default={})
    sources = {}
    for name in raw:
        where = f"sources.{name}"
        source = SOURCES.get(name)
        if source is None:
            r.problem(where, f"unknown source; known: {', '.join(s for s in SOURCES if not SOURCES[s].central_only)}")
            continue
        if source.central_only:
            r.problem(where, "is central-only and cannot be released to a project")
            continue
        chosen = r.strings(raw, name, where)
        for variable in chosen:
            if variable not in source.variables:
                r.problem(where, f"unknown variable {variable!r}")
        sources[name] = tuple(chosen)
    if not raw:
        r.problem("sources", "no sources approved")
    return sources


def _read_cohort(r: _Reader, doc: dict, sources: dict) -> Cohort | None:
    raw = r.get(doc, "cohort", dict, "cohort", default=None)
    if raw is None:
        return None
    r.known(raw, {"source", "codes", "age", "sex", "municipalities"}, "cohort")
    source_name = r.get(raw, "source", str, "cohort.source")
    source = SOURCES.get(source_name) if source_name else None
    if source_name and source is None:
        r.problem("cohort.source", f"unknown source {source_name!r}")
    elif source_name and source_name not in sources:
        r.problem("cohort.source", f"{source_name} is not among the approved sources")
    codes = {}
    for column, values in r.get(raw, "codes", dict, "cohort.codes", required=False, default={}).items():
        where = f"cohort.codes.{column}"
        if source is not None and column not in source.column_names:
            r.problem(where, f"{source_name} has no column {column!r}")
        elif source is not None and source.column(column).codes is None:
            r.problem(where, "is not a coded column")
        if not isinstance(values, list) or not values or not all(isinstance(v, str) and v for v in values):
            r.problem(where, "must be a non-empty list of codes (a code matches itself and the codes under it)")
            continue
        codes[column] = tuple(values)
    age = r.get(raw, "age", dict, "cohort.age", required=False, default={})
    r.known(age, {"min", "max"}, "cohort.age")
    age_min = r.get(age, "min", int, "cohort.age.min", required=False)
    age_max = r.get(age, "max", int, "cohort.age.max", required=False)
    if age_min is not None and age_max is not None and age_min > age_max:
        r.problem("cohort.age", "min is above max")
    sex = r.strings(raw, "sex", "cohort.sex", required=False)
    for s in sex:
        if s not in CODE_LISTS["sex"]:
            r.problem("cohort.sex", f"{s!r} is not M or K")
    municipalities = r.strings(raw, "municipalities", "cohort.municipalities", required=False)
    unknown = sorted(set(municipalities) - municipality_numbers())
    if unknown:
        r.problem("cohort.municipalities", f"unknown municipality number(s): {', '.join(unknown[:5])}")
    if source_name is None:
        return None
    return Cohort(source_name, codes, age_min, age_max, sex, municipalities)


def _jsonable(value):
    """The TOML document as JSON-storable data (dates as ISO strings)."""
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    if isinstance(value, dt.date | dt.time):
        return value.isoformat()
    return value


# Two files with one id, or two approvals for one project, would take turns in the store (each
# sets the project's members): all of them are skipped, and the version in force stays.
_CLASH = {
    "id": "{value!r} is also the id of {others}: give every approval its own id",
    "project.id": "project {value!r} is also the project of {others}: one approval file per project; "
    "renew or amend it by editing that file",
}


def read_records(directory: Path, *, known_users: set[str] | None = None, today: dt.date | None = None):
    """Every approval file in `directory`: ([records], [problems]) — all problems at once."""
    records, problems = [], []
    if not directory.is_dir():
        return [], [Problem(str(directory), "(directory)", "does not exist: set TRE_APPROVALS_DIR")]
    for path in sorted(directory.glob("*.toml")):
        record, found = read_record(path, known_users=known_users, today=today)
        problems.extend(found)
        if record is not None:
            records.append(record)
    clashing = set()
    for field_, value_of in (("id", lambda r: r.id), ("project.id", lambda r: r.project_id)):
        groups: dict[str, list[ApprovalRecord]] = {}
        for record in records:
            groups.setdefault(value_of(record), []).append(record)
        for value, group in groups.items():
            for record in group if len(group) > 1 else ():
                others = ", ".join(f"{o.id} ({Path(o.path).name})" for o in group if o is not record)
                problems.append(
                    Problem(Path(record.path).name, field_, _CLASH[field_].format(value=value, others=others))
                )
                clashing.add(record.path)
    return [r for r in records if r.path not in clashing], problems


def known_user_names(session: Session) -> set[str]:
    return set(session.execute(select(User.name)).scalars())


# --- sync ---------------------------------------------------------------------------------


@dataclass
class SyncResult:
    added: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    revoked: list[str] = field(default_factory=list)
    expired: list[str] = field(default_factory=list)
    locked_projects: list[str] = field(default_factory=list)
    unlocked_projects: list[str] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)

    def as_dict(self) -> dict:
        data = {k: v for k, v in self.__dict__.items() if k != "problems"}
        data["problems"] = [p.__dict__ for p in self.problems]
        return data


def sync(session: Session, directory: Path, *, actor: str, now: dt.datetime) -> SyncResult:
    """Load approvals/ into the store. Files with problems are skipped (their earlier version
    stays in force) and reported; everything else is applied and audited."""
    today = now.date()
    records, problems = read_records(directory, known_users=known_user_names(session))
    result = SyncResult(problems=problems)
    skipped = {p.file for p in problems}
    existing = {a.id: a for a in session.execute(select(Approval)).scalars()}

    for record in records:
        approval = existing.get(record.id)
        if approval is None:
            approval = _add(session, record, now)
            result.added.append(record.id)
            action, details = "approval.add", {"version": 1, "sha256": audit.digest(record.sha256)}
        elif approval.sha256 != record.sha256 or approval.status == ApprovalStatus.REVOKED:
            _update(session, approval, record, now)
            result.changed.append(record.id)
            action, details = "approval.change", {"version": approval.version, "sha256": audit.digest(record.sha256)}
        else:
            result.unchanged.append(record.id)
            action = None
        if action:
            audit.record(session, at=now, actor=actor, action=action, object=f"approval:{record.id}", details=details)
        _sync_members(session, approval.project_id, record, actor=actor, now=now)

    present = {r.id for r in records}
    for approval_id, approval in existing.items():
        if approval_id in present or approval.status == ApprovalStatus.REVOKED:
            continue
        if Path(approval.path).name in skipped and Path(approval.path).exists():
            continue  # its file is there but has problems: the last good version stays
        approval.status = ApprovalStatus.REVOKED
        approval.revoked_at = now
        result.revoked.append(approval_id)
        audit.record(
            session, at=now, actor=actor, action="approval.revoke", object=f"approval:{approval_id}", details={}
        )

    for approval in session.execute(select(Approval).where(Approval.status == ApprovalStatus.ACTIVE)).scalars():
        if approval.valid_until < today:
            approval.status = ApprovalStatus.EXPIRED
            result.expired.append(approval.id)
            audit.record(
                session,
                at=now,
                actor=actor,
                action="approval.expire",
                object=f"approval:{approval.id}",
                details={"valid_until": approval.valid_until.isoformat()},
            )
    session.flush()
    for project in session.execute(select(Project)).scalars():
        valid = valid_approvals(session, project.id, today)
        if project.status == ProjectStatus.ACTIVE and not valid and not _upcoming(session, project.id, today):
            lock_project(session, project.id, SYSTEM_LOCK, actor=actor, now=now)
            result.locked_projects.append(project.id)
        elif project.status == ProjectStatus.LOCKED and project.lock_reason == SYSTEM_LOCK and valid:
            # Locked by a sync for want of an approval, and now there is one (a renewal): an
            # admin's own lock stays.
            unlock_project(session, project.id, actor=actor, now=now)
            result.unlocked_projects.append(project.id)
    return result


def _upcoming(session: Session, project_id: str, today: dt.date) -> bool:
    """Whether the project has an active approval that starts after today."""
    return (
        session.execute(
            select(Approval.id).where(
                Approval.project_id == project_id,
                Approval.status == ApprovalStatus.ACTIVE,
                Approval.valid_from > today,
            )
        ).first()
        is not None
    )


def _columns(record: ApprovalRecord) -> dict:
    return {
        "project_id": record.project_id,
        "kind": record.kind,
        "reference": record.reference,
        "legal_basis": record.legal_basis,
        "purpose": record.purpose,
        "linkage_needed": record.linkage,
        "application_complete": record.application_complete,
        "valid_from": record.valid_from,
        "valid_until": record.valid_until,
        "retention_years": record.retention_years,
        "sha256": record.sha256,
        "path": record.path,
        "document": record.document,
    }


def _ensure_project(session: Session, record: ApprovalRecord, now: dt.datetime) -> None:
    project = session.get(Project, record.project_id)
    if project is None:
        session.add(
            Project(id=record.project_id, title=record.project_title, status=ProjectStatus.ACTIVE, created_at=now)
        )
    else:
        project.title = record.project_title
    session.flush()


def _add(session: Session, record: ApprovalRecord, now: dt.datetime) -> Approval:
    _ensure_project(session, record, now)
    approval = Approval(id=record.id, status=ApprovalStatus.ACTIVE, version=1, synced_at=now, **_columns(record))
    session.add(approval)
    session.add(
        ApprovalVersion(approval_id=record.id, version=1, sha256=record.sha256, document=record.document, synced_at=now)
    )
    session.flush()
    return approval


def _update(session: Session, approval: Approval, record: ApprovalRecord, now: dt.datetime) -> None:
    _ensure_project(session, record, now)
    for key, value in _columns(record).items():
        setattr(approval, key, value)
    approval.version += 1
    approval.status = ApprovalStatus.ACTIVE
    approval.revoked_at = None
    approval.synced_at = now
    session.add(
        ApprovalVersion(
            approval_id=record.id,
            version=approval.version,
            sha256=record.sha256,
            document=record.document,
            synced_at=now,
        )
    )
    session.flush()


def _sync_members(session: Session, project_id: str, record: ApprovalRecord, *, actor: str, now: dt.datetime) -> None:
    users = {u.name: u for u in session.execute(select(User)).scalars()}
    current = {
        m.user_id: m
        for m in session.execute(select(ProjectMember).where(ProjectMember.project_id == project_id)).scalars()
    }
    wanted = {users[m.user].id: m for m in record.members}
    for user_id, member in wanted.items():
        row = current.get(user_id)
        if row is None:
            session.add(
                ProjectMember(project_id=project_id, user_id=user_id, role=member.role, active=True, added_at=now)
            )
        elif row.active and row.role == member.role:
            continue
        else:
            row.active, row.role = True, member.role
        audit.record(
            session,
            at=now,
            actor=actor,
            action="project.member.add",
            object=f"project:{project_id}",
            details={"user": member.user, "role": member.role.value},
        )
    for user_id, row in current.items():
        if user_id not in wanted and row.active:
            row.active = False
            name = next(n for n, u in users.items() if u.id == user_id)
            audit.record(
                session,
                at=now,
                actor=actor,
                action="project.member.remove",
                object=f"project:{project_id}",
                details={"user": name},
            )
