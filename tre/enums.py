"""Enumerations shared by the domain modules and the metadata store.

Members are UPPER; their string values are stable because they are stored and audited.
"""

from enum import StrEnum


class Role(StrEnum):
    """What a TRE user may do. A user may hold several roles."""

    RESEARCHER = "researcher"  # analyses a project's extract in JupyterLab
    OFFICER = "officer"  # disclosure officer: reviews outputs, two per output
    ADMIN = "admin"  # ingests deliveries, records approvals, provisions projects
    CUSTODIAN = "custodian"  # key custodian: the only role that may decrypt an FNR
    MUNICIPALITY = "municipality"  # a municipality's user: reads its own § 3-3 feedback (bound to numbers)


class ProjectStatus(StrEnum):
    ACTIVE = "active"
    LOCKED = "locked"  # approval expired or revoked, or locked by an admin
    CLOSED = "closed"


class ApprovalKind(StrEnum):
    REK = "rek"  # prior approval from the regional ethics committee
    HRL20 = "hrl20"  # indirectly identifiable release under hrl § 20 (§ 4-4)
    ANON43 = "anon43"  # anonymous for the recipient (§ 4-3)
    DIRECT45 = "direct45"  # directly identifiable, with FNR (§ 4-5)


class ApprovalStatus(StrEnum):
    ACTIVE = "active"
    EXPIRED = "expired"
    REVOKED = "revoked"  # its file was removed from approvals/


class MemberRole(StrEnum):
    PI = "pi"
    RESEARCHER = "researcher"


class ExtractStatus(StrEnum):
    BUILDING = "building"
    READY = "ready"
    FAILED = "failed"
    PURGED = "purged"


class DeliveryStatus(StrEnum):
    INGESTED = "ingested"
    FAILED = "failed"


class ReservationKind(StrEnum):
    """The two opt-outs of § 2-2."""

    REGISTRATION = "registration"  # first paragraph: non-administrative data not registered
    RELEASE_WITH_FNR = "release_with_fnr"  # second paragraph: not released together with the FNR


class RequestStatus(StrEnum):
    """An output request's life; the transitions live with the review workflow."""

    PENDING = "pending"  # the author is adding outputs
    SUBMITTED = "submitted"  # waiting for reviewers
    IN_REVIEW = "in_review"  # independent phase: votes hidden from the other reviewers
    REVIEWED = "reviewed"  # two reviews submitted; decision pending
    APPROVED = "approved"
    RETURNED = "returned"  # changes requested; back to the author
    REJECTED = "rejected"
    RELEASED = "released"
    WITHDRAWN = "withdrawn"


class ReviewStatus(StrEnum):
    IN_PROGRESS = "in_progress"
    SUBMITTED = "submitted"


class VoteDecision(StrEnum):
    APPROVE = "approve"
    CHANGES = "changes"
    REJECT = "reject"


class CommentVisibility(StrEnum):
    """Who reads a comment on an output request (as airlock's public and private comments)."""

    EVERYONE = "everyone"  # the project's members and the officers
    OFFICERS = "officers"  # officers only: never shown to the project


class ReleaseKind(StrEnum):
    """What a § 4-10 release-record entry records."""

    EXTRACT = "extract"  # data delivered into a project workspace
    OUTPUT = "output"  # anonymous outputs released from a project
