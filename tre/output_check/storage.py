"""The metadata store behind the review workflow: `SqlRequestStore` implements `RequestStore`.

Bound to one session (one transaction). `request(..., lock=True)` locks the request's row
(SELECT ... FOR UPDATE on PostgreSQL; on SQLite every transaction is already IMMEDIATE), so two
reviewers acting at once serialise on the request.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from tre import audit
from tre.enums import CommentVisibility, RequestStatus, ReviewStatus, VoteDecision
from tre.errors import NotFound
from tre.models import (
    OutputRequest,
    ProjectMember,
    Release,
    ReleaseRecord,
    RequestComment,
    RequestFile,
    Review,
    User,
    Vote,
)
from tre.output_check.policies import ApprovalRef, Person, ProjectInfo
from tre.output_check.requests import ReleaseEntry, ReleaseInfo
from tre.output_check.workflow import DECIDED, Comment, OutputFile, RequestState, ReviewState, WrittenAs
from tre.output_check.workflow import Vote as VoteState
from tre.users import find_user
from tre.workspace import approval_threshold, get_project, project_approval

S = RequestStatus
# An output removed from a reopened request keeps its row (earlier rounds voted on it) under this
# suffix, which no queued output's name can contain.
REMOVED = " (removed in round {round})"


class SqlRequestStore:
    def __init__(self, session: Session):
        self.session = session

    # --- people and projects ------------------------------------------------------------

    def person(self, name: str) -> Person:
        user = find_user(self.session, name)
        if user is None:
            raise NotFound(f"unknown user {name!r}: an admin adds users with `tre user add NAME --role ROLE`")
        return Person(user.name, frozenset(r.role for r in user.roles), user.active)

    def project(self, project_id: str) -> ProjectInfo:
        project = get_project(self.session, project_id)
        return ProjectInfo(
            id=project.id,
            title=project.title,
            status=project.status,
            members=frozenset(m.user.name for m in project.members),
            active_members=frozenset(m.user.name for m in project.members if m.active and m.user.active),
            approval=self._approval(project.id),
        )

    def _approval(self, project_id: str) -> ApprovalRef | None:
        """The project's approval to cite: an active one if any, else the latest."""
        best = project_approval(self.session, project_id)
        if best is None:
            return None
        return ApprovalRef(
            id=best.id,
            kind=best.kind.value,
            reference=best.reference,
            version=best.version,
            legal_basis=best.legal_basis,
            status=best.status.value,
            valid_until=best.valid_until,
            retention_years=best.retention_years,
            threshold=approval_threshold(best),
        )

    def projects_of(self, name: str) -> list[str]:
        query = (
            select(ProjectMember.project_id)
            .join(User, User.id == ProjectMember.user_id)
            .where(User.name == name, ProjectMember.active.is_(True))
            .order_by(ProjectMember.project_id)
        )
        return list(self.session.execute(query).scalars())

    # --- requests -----------------------------------------------------------------------

    def _query(self):
        return select(OutputRequest).options(
            selectinload(OutputRequest.author),
            selectinload(OutputRequest.files),
            selectinload(OutputRequest.reviews).selectinload(Review.reviewer),
            selectinload(OutputRequest.reviews).selectinload(Review.votes).selectinload(Vote.file),
            selectinload(OutputRequest.comments).selectinload(RequestComment.author),
        )

    def _row(self, request_id: int, *, lock: bool = False) -> OutputRequest:
        query = select(OutputRequest).where(OutputRequest.id == request_id)
        if lock:
            query = query.with_for_update()
        row = self.session.execute(query).scalar_one_or_none()
        if row is None:
            raise NotFound(
                f"no request REQ-{request_id}: `tre request status` lists yours, `tre review queue` officers'"
            )
        return row

    def request(self, request_id: int, *, lock: bool = False) -> RequestState:
        self._row(request_id, lock=lock)
        self.session.flush()
        row = self.session.execute(
            self._query().where(OutputRequest.id == request_id).execution_options(populate_existing=True)
        ).scalar_one()
        return _state(row)

    def requests(
        self, *, project_ids: Iterable[str] | None = None, statuses: Iterable[RequestStatus] | None = None
    ) -> list[RequestState]:
        query = self._query().order_by(OutputRequest.id)
        if project_ids is not None:
            query = query.where(OutputRequest.project_id.in_(list(project_ids)))
        if statuses is not None:
            query = query.where(OutputRequest.status.in_(list(statuses)))
        return [_state(r) for r in self.session.execute(query).scalars()]

    def create_request(self, project_id: str, author: str, title: str, now: dt.datetime) -> int:
        user = self._user(author)
        row = OutputRequest(
            project_id=project_id, author_id=user.id, title=title, status=S.PENDING, round=1, created_at=now
        )
        self.session.add(row)
        self.session.flush()
        return row.id

    def add_file(self, request_id: int, output: OutputFile) -> None:
        self.session.add(
            RequestFile(
                request_id=request_id,
                name=output.name,
                kind=output.kind,
                sha256=output.sha256,
                check_status=output.check_status,
                report=output.report,
                context=output.context,
                contents=list(output.contents),
                meta=output.meta,
                added_at=output.added_at,
                exception=output.exception,
                group_name=output.group,
            )
        )
        self.session.flush()

    def _file(self, request_id: int, name: str) -> RequestFile:
        row = self.session.execute(
            select(RequestFile).where(RequestFile.request_id == request_id, RequestFile.name == name)
        ).scalar_one_or_none()
        if row is None:
            raise NotFound(f"REQ-{request_id} has no output {name!r}")
        return row

    def set_context(self, request_id: int, name: str, context: dict) -> None:
        self._file(request_id, name).context = dict(context)
        self.session.flush()

    def set_exception(self, request_id: int, name: str, exception: str | None) -> None:
        self._file(request_id, name).exception = exception
        self.session.flush()

    def add_comment(
        self,
        request_id: int,
        author: str,
        output: str | None,
        written_as: WrittenAs,
        visibility: CommentVisibility,
        round: int,
        body: str,
        now: dt.datetime,
    ) -> int:
        row = RequestComment(
            request_id=request_id,
            output=output,
            author_id=self._user(author).id,
            written_as=written_as.value,
            visibility=visibility,
            round=round,
            body=body,
            created_at=now,
        )
        self.session.add(row)
        self.session.flush()
        return row.id

    def remove_file(self, request_id: int, name: str) -> None:
        row = self._file(request_id, name)
        votes = self.session.execute(select(Vote).where(Vote.file_id == row.id)).scalars().all()
        if votes:
            # Votes of an earlier round stay with the record: the file stays, renamed aside.
            row.name = name + REMOVED.format(round=self._row(request_id).round)
        else:
            self.session.delete(row)
        self.session.flush()

    def set_status(self, request_id: int, status: RequestStatus, now: dt.datetime, reason: str | None = None) -> None:
        row = self._row(request_id)
        row.status = status
        if status == S.RETURNED:
            row.returned_reason = reason
        if status == S.SUBMITTED:
            row.submitted_at, row.decided_at = now, None
        elif status in DECIDED or status == S.WITHDRAWN:
            row.decided_at = row.decided_at if status == S.RELEASED and row.decided_at else now
        self.session.flush()

    def next_round(self, request_id: int) -> int:
        row = self._row(request_id)
        row.round += 1
        self.session.flush()
        return row.round

    # --- reviews ------------------------------------------------------------------------

    def _user(self, name: str) -> User:
        user = find_user(self.session, name)
        if user is None:
            raise NotFound(f"unknown user {name!r}")
        return user

    def _review(self, request_id: int, reviewer: str, round: int) -> Review:
        user = self._user(reviewer)
        row = self.session.execute(
            select(Review).where(Review.request_id == request_id, Review.reviewer_id == user.id, Review.round == round)
        ).scalar_one_or_none()
        if row is None:
            raise NotFound(f"{reviewer} has no review of REQ-{request_id}")
        return row

    def start_review(self, request_id: int, reviewer: str, round: int, now: dt.datetime) -> None:
        user = self._user(reviewer)
        self.session.add(
            Review(
                request_id=request_id, reviewer_id=user.id, round=round, status=ReviewStatus.IN_PROGRESS, created_at=now
            )
        )
        self.session.flush()

    def put_vote(
        self,
        request_id: int,
        reviewer: str,
        round: int,
        file: str,
        decision: VoteDecision,
        comment: str,
        override: str | None,
        now: dt.datetime,
    ) -> None:
        review = self._review(request_id, reviewer, round)
        target = self._file(request_id, file)
        vote = self.session.execute(
            select(Vote).where(Vote.review_id == review.id, Vote.file_id == target.id)
        ).scalar_one_or_none()
        if vote is None:
            vote = Vote(review_id=review.id, file_id=target.id)
            self.session.add(vote)
        vote.decision, vote.comment, vote.override, vote.voted_at = decision, comment, override, now
        self.session.flush()

    def submit_review(self, request_id: int, reviewer: str, round: int, now: dt.datetime) -> None:
        review = self._review(request_id, reviewer, round)
        review.status, review.submitted_at = ReviewStatus.SUBMITTED, now
        self.session.flush()

    # --- releases -----------------------------------------------------------------------

    def add_release_record(self, entry: ReleaseEntry) -> int:
        row = ReleaseRecord(
            kind="output",
            project_id=entry.project_id,
            approval_id=entry.approval_id,
            approval_version=entry.approval_version,
            recipient=entry.recipient,
            legal_basis=entry.legal_basis,
            persons=None,
            reference=entry.reference,
            released_at=entry.released_at,
            keep_until=entry.keep_until,
        )
        self.session.add(row)
        self.session.flush()
        return row.id

    def add_release(self, info: ReleaseInfo) -> None:
        self.session.add(
            Release(
                request_id=info.request_id,
                released_at=info.released_at,
                released_by=info.released_by,
                bundle_path=info.bundle_path,
                bundle_sha256=info.bundle_sha256,
                manifest=info.manifest,
            )
        )
        self.session.flush()

    def release(self, request_id: int) -> ReleaseInfo | None:
        row = self.session.execute(select(Release).where(Release.request_id == request_id)).scalar_one_or_none()
        if row is None:
            return None
        return ReleaseInfo(
            row.request_id, row.released_at, row.released_by, row.bundle_path, row.bundle_sha256, row.manifest
        )

    def audit(self, *, actor: str, action: str, object: str, details: dict, now: dt.datetime) -> None:
        audit.record(self.session, at=now, actor=actor, action=action, object=object, details=details)


def _state(row: OutputRequest) -> RequestState:
    files = tuple(
        OutputFile(
            name=f.name,
            kind=f.kind,
            sha256=f.sha256,
            check_status=f.check_status,
            report=f.report,
            context=dict(f.context or {}),
            contents=tuple(f.contents or ()),
            meta=dict(f.meta or {}),
            added_at=f.added_at,
            exception=f.exception,
            group=f.group_name,
        )
        for f in row.files
        if REMOVED.split("{")[0] not in f.name
    )
    reviews = tuple(
        ReviewState(
            reviewer=r.reviewer.name,
            round=r.round,
            status=r.status,
            created_at=r.created_at,
            submitted_at=r.submitted_at,
            votes={
                v.file.name: VoteState(
                    r.reviewer.name, v.file.name, v.decision, v.comment or "", v.override, v.voted_at
                )
                for v in r.votes
            },
        )
        for r in row.reviews
    )
    return RequestState(
        id=row.id,
        project_id=row.project_id,
        author=row.author.name,
        title=row.title or "",
        status=row.status,
        round=row.round,
        created_at=row.created_at,
        submitted_at=row.submitted_at,
        decided_at=row.decided_at,
        returned_reason=row.returned_reason,
        files=files,
        reviews=reviews,
        comments=tuple(
            Comment(
                id=c.id,
                author=c.author.name,
                written_as=WrittenAs(c.written_as),
                visibility=c.visibility,
                round=c.round,
                output=c.output,
                body=c.body,
                created_at=c.created_at,
            )
            for c in row.comments
        ),
    )
