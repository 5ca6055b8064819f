"""The metadata store's tables (SQLAlchemy 2 ORM).

Portable SQL only: the same models run on SQLite (the default) and PostgreSQL. Times are
stored as UTC; enums as their stable string values; free-form documents as JSON.
Register data never lives here: health rows and identities are in the central zone.
Person keys (`pid`) appear only where a person-linked event needs them (the subject of an
audit event), which is why this store is controller-only (mode 0600 file). The reservation
history is register data and lives in the central zone's register store (tre.linkage.reservations).
"""

from __future__ import annotations

import datetime as dt
from enum import StrEnum

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Date,
    DateTime,
    ForeignKey,
    Integer,
    LargeBinary,
    MetaData,
    Numeric,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    event,
)
from sqlalchemy import Enum as SAEnum
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from tre.enums import (
    ApprovalKind,
    ApprovalStatus,
    CommentVisibility,
    DeliveryStatus,
    ExtractStatus,
    MemberRole,
    ProjectStatus,
    ReleaseKind,
    RequestStatus,
    ReviewStatus,
    Role,
    VoteDecision,
)


class UTCDateTime(TypeDecorator):
    """A timezone-aware UTC datetime on every backend (SQLite keeps no zone of its own)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the metadata store; use UTC-aware times")
        return value.astimezone(dt.UTC)

    def process_result_value(self, value, dialect):
        if value is None:
            return None
        return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


def enum_column(enum: type[StrEnum]):
    """A VARCHAR holding the enum's stable value, with a CHECK on the allowed values."""
    return SAEnum(
        enum,
        native_enum=False,
        create_constraint=True,
        length=32,
        values_callable=lambda members: [m.value for m in members],
        name=enum.__name__.lower(),
    )


NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {dt.datetime: UTCDateTime, dict: JSON, list: JSON}


# --- people -------------------------------------------------------------------------------


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[dt.datetime]

    roles: Mapped[list[UserRole]] = relationship(back_populates="user", cascade="all, delete-orphan")

    def has_role(self, role: Role) -> bool:
        return any(r.role == role for r in self.roles)


class UserRole(Base):
    __tablename__ = "user_roles"
    __table_args__ = (UniqueConstraint("user_id", "role"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    role: Mapped[Role] = mapped_column(enum_column(Role))
    granted_at: Mapped[dt.datetime]
    granted_by: Mapped[str | None] = mapped_column(String(64))

    user: Mapped[User] = relationship(back_populates="roles")


class MunicipalityAccess(Base):
    """A municipality number a user with the `municipality` role acts for (§ 3-3 feedback)."""

    __tablename__ = "municipality_access"
    __table_args__ = (UniqueConstraint("user_id", "municipality"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    municipality: Mapped[str] = mapped_column(String(4))
    granted_at: Mapped[dt.datetime]
    granted_by: Mapped[str | None] = mapped_column(String(64))


class OsLogin(Base):
    """An operating-system account that may act as a TRE user on the command line."""

    __tablename__ = "os_logins"
    __table_args__ = (UniqueConstraint("user_id", "os_user"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    os_user: Mapped[str] = mapped_column(String(64))
    granted_at: Mapped[dt.datetime]
    granted_by: Mapped[str] = mapped_column(String(64))

    user: Mapped[User] = relationship()


class LoginCredential(Base):
    """A user's hub login: a bcrypt password hash and the TOTP secret of their second factor.

    Set by an admin with `tre user password` / `tre user totp`; read by the hub's authenticator.
    The TOTP secret is sealed (AES-GCM) under the logins data key, which the master key wraps
    (`tre.sealed`); `totp_last_step` is the time step of the last code accepted, so that no
    code is accepted twice.
    """

    __tablename__ = "login_credentials"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), unique=True)
    password_hash: Mapped[str | None] = mapped_column(String(100))
    password_set_at: Mapped[dt.datetime | None]
    totp_secret: Mapped[str | None] = mapped_column(String(255))
    totp_set_at: Mapped[dt.datetime | None]
    totp_last_step: Mapped[int | None] = mapped_column(BigInteger)

    user: Mapped[User] = relationship()


class WrappedKey(Base):
    """A data key of the secrets this store keeps sealed, wrapped by one master key.

    One row per (key, master key): during a master-key rotation the key is wrapped by both,
    so that a rotation stopped half-way loses nothing; the old row goes when it completes.
    """

    __tablename__ = "wrapped_keys"
    __table_args__ = (UniqueConstraint("name", "master_key_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(32))
    master_key_id: Mapped[str] = mapped_column(String(64))
    wrapped: Mapped[bytes] = mapped_column(LargeBinary)
    wrapped_at: Mapped[dt.datetime]


# --- projects and approvals ---------------------------------------------------------------


class Project(Base):
    __tablename__ = "projects"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    title: Mapped[str] = mapped_column(String(400))
    status: Mapped[ProjectStatus] = mapped_column(enum_column(ProjectStatus), default=ProjectStatus.ACTIVE)
    created_at: Mapped[dt.datetime]
    locked_at: Mapped[dt.datetime | None]
    lock_reason: Mapped[str | None] = mapped_column(String(400))
    os_group: Mapped[str | None] = mapped_column(String(32))
    provisioned_at: Mapped[dt.datetime | None]

    members: Mapped[list[ProjectMember]] = relationship(back_populates="project")


class ProjectMember(Base):
    __tablename__ = "project_members"
    __table_args__ = (UniqueConstraint("project_id", "user_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id"))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    role: Mapped[MemberRole] = mapped_column(enum_column(MemberRole))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    os_account: Mapped[str | None] = mapped_column(String(32))
    added_at: Mapped[dt.datetime]

    project: Mapped[Project] = relationship(back_populates="members")
    user: Mapped[User] = relationship()


class Approval(Base):
    """The current version of one approval record from approvals/."""

    __tablename__ = "approvals"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id"))
    kind: Mapped[ApprovalKind] = mapped_column(enum_column(ApprovalKind))
    status: Mapped[ApprovalStatus] = mapped_column(enum_column(ApprovalStatus), default=ApprovalStatus.ACTIVE)
    reference: Mapped[str] = mapped_column(String(100))
    legal_basis: Mapped[str] = mapped_column(String(400))
    purpose: Mapped[str] = mapped_column(String(64))
    linkage_needed: Mapped[bool] = mapped_column(Boolean, default=False)
    application_complete: Mapped[dt.date | None] = mapped_column(Date)
    valid_from: Mapped[dt.date] = mapped_column(Date)
    valid_until: Mapped[dt.date] = mapped_column(Date)
    retention_years: Mapped[int] = mapped_column(Integer)
    version: Mapped[int] = mapped_column(Integer, default=1)
    sha256: Mapped[str] = mapped_column(String(64))
    path: Mapped[str] = mapped_column(String(400))
    document: Mapped[dict]
    synced_at: Mapped[dt.datetime]
    revoked_at: Mapped[dt.datetime | None]

    project: Mapped[Project] = relationship()


class ApprovalVersion(Base):
    """Every version of an approval record that was ever synced."""

    __tablename__ = "approval_versions"
    __table_args__ = (UniqueConstraint("approval_id", "version"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    approval_id: Mapped[str] = mapped_column(ForeignKey("approvals.id"))
    version: Mapped[int] = mapped_column(Integer)
    sha256: Mapped[str] = mapped_column(String(64))
    document: Mapped[dict]
    synced_at: Mapped[dt.datetime]


class ApplicationReply(Base):
    """A reply to an application: the preliminary reply § 4-8 requires when a deadline slips."""

    __tablename__ = "application_replies"

    id: Mapped[int] = mapped_column(primary_key=True)
    approval_id: Mapped[str] = mapped_column(ForeignKey("approvals.id"))
    preliminary: Mapped[bool] = mapped_column(Boolean, default=True)
    reason: Mapped[str] = mapped_column(Text)
    expected_date: Mapped[dt.date | None] = mapped_column(Date)
    sent_at: Mapped[dt.datetime]
    recorded_by: Mapped[str] = mapped_column(String(64))


class FeeEntry(Base):
    """Handling time, cost and invoices per application (§ 4-9: at most the actual cost)."""

    __tablename__ = "fee_entries"

    id: Mapped[int] = mapped_column(primary_key=True)
    approval_id: Mapped[str] = mapped_column(ForeignKey("approvals.id"))
    kind: Mapped[str] = mapped_column(String(16))  # "time", "cost" or "invoice"
    hours: Mapped[float | None] = mapped_column(Numeric(10, 2))
    amount_nok: Mapped[float] = mapped_column(Numeric(12, 2))
    note: Mapped[str | None] = mapped_column(Text)
    recorded_at: Mapped[dt.datetime]
    recorded_by: Mapped[str] = mapped_column(String(64))


# --- central zone bookkeeping -------------------------------------------------------------


class Delivery(Base):
    """One register delivery that was ingested (or failed), identified by its sha256."""

    __tablename__ = "deliveries"

    id: Mapped[int] = mapped_column(primary_key=True)
    sha256: Mapped[str] = mapped_column(String(64), unique=True)
    source: Mapped[str] = mapped_column(String(32))
    period: Mapped[str | None] = mapped_column(String(32))
    filename: Mapped[str] = mapped_column(String(400))
    rows: Mapped[int] = mapped_column(Integer, default=0)
    status: Mapped[DeliveryStatus] = mapped_column(enum_column(DeliveryStatus))
    report: Mapped[dict]
    ingested_at: Mapped[dt.datetime]
    ingested_by: Mapped[str] = mapped_column(String(64))


class Extract(Base):
    """A project-pseudonymized extract built from the central zone into a project's data/."""

    __tablename__ = "extracts"

    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id"))
    approval_id: Mapped[str] = mapped_column(ForeignKey("approvals.id"))
    approval_version: Mapped[int] = mapped_column(Integer)
    status: Mapped[ExtractStatus] = mapped_column(enum_column(ExtractStatus))
    path: Mapped[str | None] = mapped_column(String(400))
    persons: Mapped[int | None] = mapped_column(Integer)
    manifest: Mapped[dict | None]
    manifest_sha256: Mapped[str | None] = mapped_column(String(64))
    built_at: Mapped[dt.datetime]
    built_by: Mapped[str] = mapped_column(String(64))
    purge_after: Mapped[dt.date | None] = mapped_column(Date)
    purged_at: Mapped[dt.datetime | None]


class BuildApproval(Base):
    """§ 5-2 third paragraph: a key custodian's approval of one § 4-5 build (ID numbers are
    decrypted). The admin's build asks for it (`requested_by`) with the project, approval
    version, person count and persons digest it computed; a custodian other than the asker
    approves it; the build that uses it names itself (`extract_id`), and only one build can; the
    decryption spends it (`decrypted_at`), once; unused, it expires after
    `build_approval_days`."""

    __tablename__ = "build_approvals"

    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id"))
    approval_id: Mapped[str] = mapped_column(ForeignKey("approvals.id"))
    approval_version: Mapped[int] = mapped_column(Integer)
    persons: Mapped[int] = mapped_column(Integer)
    reference: Mapped[str] = mapped_column(String(200))  # the REK reference (or permit) shown to the custodian
    requested_by: Mapped[str] = mapped_column(String(64))
    requested_at: Mapped[dt.datetime]
    approved_by: Mapped[str | None] = mapped_column(String(64))
    approved_at: Mapped[dt.datetime | None]
    extract_id: Mapped[int | None] = mapped_column(ForeignKey("extracts.id"), unique=True)
    # SHA-256 of the sorted cohort pids the custodian was shown (tre.linkage.releases.persons_digest):
    # the decryption recomputes it from the pids it is asked for. None: asked before it was kept.
    persons_digest: Mapped[str | None] = mapped_column(String(64))
    decrypted_at: Mapped[dt.datetime | None]  # spent: the one decryption it allows happened


class ReleaseRecord(Base):
    """The record of releases (§ 4-10): who received health data, on what basis, when.

    Which persons an extract release covered is kept centrally beside the key tables (the
    central zone, `tre.linkage.releases`), as the batch this entry names, with the SHA-256 of
    its sorted pids. Entries are kept at least 5 years.
    """

    __tablename__ = "release_records"

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[ReleaseKind] = mapped_column(enum_column(ReleaseKind))
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id"))
    approval_id: Mapped[str | None] = mapped_column(ForeignKey("approvals.id"))
    approval_version: Mapped[int | None] = mapped_column(Integer)
    recipient: Mapped[str] = mapped_column(String(400))
    legal_basis: Mapped[str] = mapped_column(String(400))
    persons: Mapped[int | None] = mapped_column(Integer)
    reference: Mapped[str] = mapped_column(String(100))  # extract id or output request id
    released_at: Mapped[dt.datetime]
    keep_until: Mapped[dt.date] = mapped_column(Date)
    persons_batch: Mapped[str | None] = mapped_column(String(40), unique=True)  # in central/releases.duckdb
    persons_digest: Mapped[str | None] = mapped_column(String(64))  # SHA-256 of the batch's sorted pids


@event.listens_for(ReleaseRecord, "before_delete")
def _keep_release_records(mapper, connection, record: ReleaseRecord) -> None:
    """§ 4-10: the record of releases is kept at least five years; no code path deletes earlier."""
    if record.keep_until >= dt.date.today():
        raise ValueError(f"release record {record.id} must be kept until {record.keep_until.isoformat()} (§ 4-10)")


# --- output requests, reviews, releases ---------------------------------------------------


class OutputRequest(Base):
    __tablename__ = "output_requests"

    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id"))
    author_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    title: Mapped[str] = mapped_column(String(400), default="")
    status: Mapped[RequestStatus] = mapped_column(enum_column(RequestStatus), default=RequestStatus.PENDING)
    # A returned request that the author reopens starts a new round of two independent reviews.
    round: Mapped[int] = mapped_column(Integer, default=1, server_default="1")
    created_at: Mapped[dt.datetime]
    submitted_at: Mapped[dt.datetime | None]
    decided_at: Mapped[dt.datetime | None]
    # Why an officer returned an approved request (for its author).
    returned_reason: Mapped[str | None] = mapped_column(Text)

    files: Mapped[list[RequestFile]] = relationship(back_populates="request", order_by="RequestFile.id")
    reviews: Mapped[list[Review]] = relationship(back_populates="request", order_by="Review.id")
    comments: Mapped[list[RequestComment]] = relationship(back_populates="request", order_by="RequestComment.id")
    author: Mapped[User] = relationship()

    @property
    def label(self) -> str:
        return f"REQ-{self.id}"


class RequestFile(Base):
    __tablename__ = "request_files"
    __table_args__ = (UniqueConstraint("request_id", "name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    request_id: Mapped[int] = mapped_column(ForeignKey("output_requests.id"))
    name: Mapped[str] = mapped_column(String(400))
    kind: Mapped[str] = mapped_column(String(32))  # table, magnitude, regression, figure, notebook
    sha256: Mapped[str] = mapped_column(String(64))
    check_status: Mapped[str] = mapped_column(String(16))  # pass, fail, review
    report: Mapped[dict]
    context: Mapped[dict]  # the author's context: population, what it shows, relation to earlier outputs
    # Every file of the output with its sha256 and size; `sha256` above is the digest of this list.
    contents: Mapped[list] = mapped_column(JSON, default=list, server_default="[]")
    # The queued output's description (call, arguments, the line of code that made it).
    meta: Mapped[dict] = mapped_column(JSON, default=dict, server_default="{}")
    added_at: Mapped[dt.datetime]
    # The author's exception request: why it should leave although its check flagged it.
    exception: Mapped[str | None] = mapped_column(Text)
    # Outputs added together share a context under a group name (airlock's file groups).
    group_name: Mapped[str | None] = mapped_column(String(100))

    request: Mapped[OutputRequest] = relationship(back_populates="files")


class RequestComment(Base):
    """One comment of a request's thread, or of one output's thread (`output` names it)."""

    __tablename__ = "request_comments"

    id: Mapped[int] = mapped_column(primary_key=True)
    request_id: Mapped[int] = mapped_column(ForeignKey("output_requests.id"), index=True)
    output: Mapped[str | None] = mapped_column(String(400))  # None: about the whole request
    author_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    # As whom the author wrote: a member of the project or an officer reviewing it.
    written_as: Mapped[str] = mapped_column(String(16))
    visibility: Mapped[CommentVisibility] = mapped_column(enum_column(CommentVisibility))
    round: Mapped[int] = mapped_column(Integer)
    body: Mapped[str] = mapped_column(Text)
    created_at: Mapped[dt.datetime]

    request: Mapped[OutputRequest] = relationship(back_populates="comments")
    author: Mapped[User] = relationship()


class Review(Base):
    __tablename__ = "reviews"
    __table_args__ = (UniqueConstraint("request_id", "reviewer_id", "round"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    request_id: Mapped[int] = mapped_column(ForeignKey("output_requests.id"))
    reviewer_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    round: Mapped[int] = mapped_column(Integer, default=1, server_default="1")
    status: Mapped[ReviewStatus] = mapped_column(enum_column(ReviewStatus), default=ReviewStatus.IN_PROGRESS)
    created_at: Mapped[dt.datetime]
    submitted_at: Mapped[dt.datetime | None]

    request: Mapped[OutputRequest] = relationship(back_populates="reviews")
    reviewer: Mapped[User] = relationship()
    votes: Mapped[list[Vote]] = relationship(back_populates="review", order_by="Vote.id")


class Vote(Base):
    __tablename__ = "votes"
    __table_args__ = (UniqueConstraint("review_id", "file_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    review_id: Mapped[int] = mapped_column(ForeignKey("reviews.id"))
    file_id: Mapped[int] = mapped_column(ForeignKey("request_files.id"))
    decision: Mapped[VoteDecision] = mapped_column(enum_column(VoteDecision))
    comment: Mapped[str] = mapped_column(Text, default="")
    override: Mapped[str | None] = mapped_column(Text)  # justification for approving a failed check
    voted_at: Mapped[dt.datetime]

    review: Mapped[Review] = relationship(back_populates="votes")
    file: Mapped[RequestFile] = relationship()


class Release(Base):
    __tablename__ = "releases"

    id: Mapped[int] = mapped_column(primary_key=True)
    request_id: Mapped[int] = mapped_column(ForeignKey("output_requests.id"), unique=True)
    released_at: Mapped[dt.datetime]
    released_by: Mapped[str] = mapped_column(String(64))
    bundle_path: Mapped[str] = mapped_column(String(400))
    bundle_sha256: Mapped[str] = mapped_column(String(64))
    manifest: Mapped[dict]


# --- audit chain --------------------------------------------------------------------------


class AuditEvent(Base):
    """One event of the append-only, hash-chained audit log (see tre.audit)."""

    __tablename__ = "audit_events"

    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    at: Mapped[str] = mapped_column(String(32))  # ISO 8601 UTC with microseconds, as hashed
    actor: Mapped[str] = mapped_column(String(64), index=True)
    action: Mapped[str] = mapped_column(String(64), index=True)
    object: Mapped[str] = mapped_column(String(200), default="")
    # The person (pid) a person-linked event concerns: what a data subject's access report reads.
    subject: Mapped[str | None] = mapped_column(String(40), index=True)
    details: Mapped[str] = mapped_column(Text)  # canonical JSON, as hashed
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))


class AuditHead(Base):
    """The chain's head: the last sequence number and hash. One row, updated with each event,
    so that a deleted tail is noticed and concurrent writers serialise on it."""

    __tablename__ = "audit_head"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    seq: Mapped[int] = mapped_column(Integer)
    hash: Mapped[str] = mapped_column(String(64))
