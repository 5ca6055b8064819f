"""Output requests, reviews and releases: the steps of the workflow.

`Requests` is the business logic (airlock's `business_logic.py`): each method loads the
state, checks the rules (`workflow`, `policies`), changes the state through a `RequestStore`
(the persistence Protocol; `storage.SqlRequestStore` implements it on the metadata store),
moves files through `WorkspaceOutputs`, and writes an audit event for every action, in the
caller's transaction. The CLI and the review page are adapters that call these methods.
"""

from __future__ import annotations

import datetime as dt
import re
import unicodedata
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Protocol

from tre import audit
from tre.enums import CommentVisibility, RequestStatus, Role, VoteDecision
from tre.errors import InvalidTransition, NotFound, PermissionDenied, UsageError
from tre.output_check import policies
from tre.output_check.intake import WorkspaceOutputs, contents_digest
from tre.output_check.policies import Person, ProjectInfo
from tre.output_check.releases import (
    ReleasedFiles,
    build_manifest,
    bundle_path,
    keep_until,
    list_tree,
    remove_stage,
    stage_dir,
    stage_outputs,
    write_release,
)
from tre.output_check.workflow import (
    COMMENTABLE,
    CONTEXT_FIELDS,
    DECIDED,
    INDEPENDENT,
    Actor,
    Comment,
    OutputFile,
    RequestState,
    WrittenAs,
    check_transition,
    decide_request,
    file_decisions,
    is_comment_visible,
    is_vote_visible,
)
from tre.project_files import check_name, shown

S = RequestStatus
_LABEL = re.compile(r"^(?:REQ-?)?(\d{1,9})$", re.IGNORECASE)


def parse_label(text: str) -> int:
    """`REQ-12`, `req-12` or `12` -> 12."""
    match = _LABEL.match(text.strip())
    if not match:
        raise UsageError(f"{text!r} is not a request: use its label, e.g. REQ-12")
    return int(match.group(1))


@dataclass(frozen=True)
class ReleaseEntry:
    """A § 4-10 release-record entry for released outputs: anonymous, so no persons."""

    project_id: str
    approval_id: str | None
    approval_version: int | None
    recipient: str
    legal_basis: str
    reference: str
    released_at: dt.datetime
    keep_until: dt.date
    released_by: str  # who released: the actor of the record's anchor in the audit chain


@dataclass(frozen=True)
class ReleaseInfo:
    request_id: int
    released_at: dt.datetime
    released_by: str
    bundle_path: str
    bundle_sha256: str
    manifest: dict


class RequestStore(Protocol):
    """What the workflow needs from persistence. Raise NotFound for unknown names and ids."""

    def person(self, name: str) -> Person: ...
    def project(self, project_id: str) -> ProjectInfo: ...
    def projects_of(self, name: str) -> list[str]: ...
    def request(self, request_id: int, *, lock: bool = False) -> RequestState: ...
    def requests(
        self, *, project_ids: Iterable[str] | None = None, statuses: Iterable[RequestStatus] | None = None
    ) -> list[RequestState]: ...
    def create_request(self, project_id: str, author: str, title: str, now: dt.datetime) -> int: ...
    def add_file(self, request_id: int, output: OutputFile) -> None: ...
    def set_context(self, request_id: int, name: str, context: dict) -> None: ...
    def set_exception(self, request_id: int, name: str, exception: str | None) -> None: ...
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
    ) -> int: ...
    def remove_file(self, request_id: int, name: str) -> None: ...
    def set_status(
        self, request_id: int, status: RequestStatus, now: dt.datetime, reason: str | None = None
    ) -> None: ...
    def next_round(self, request_id: int) -> int: ...
    def start_review(self, request_id: int, reviewer: str, round: int, now: dt.datetime) -> None: ...
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
    ) -> None: ...
    def submit_review(self, request_id: int, reviewer: str, round: int, now: dt.datetime) -> None: ...
    def add_release_record(self, entry: ReleaseEntry) -> int: ...
    def add_release(self, info: ReleaseInfo) -> None: ...
    def release(self, request_id: int) -> ReleaseInfo | None: ...
    def audit(self, *, actor: str, action: str, object: str, details: dict, now: dt.datetime) -> None: ...


@dataclass(frozen=True)
class Release:
    request: str
    project: str
    bundle: Path
    bundle_sha256: str
    released_dir: Path
    record_id: int


class Requests:
    """The workflow's steps, each checked and audited. One instance per transaction."""

    def __init__(
        self, store: RequestStore, outputs: WorkspaceOutputs, exports_dir: Path, clock: Callable[[], dt.datetime]
    ):
        self.store = store
        self.outputs = outputs
        self.exports_dir = Path(exports_dir)
        self.clock = clock

    # --- the author's steps -------------------------------------------------------------

    def new(self, project_id: str, author: str, title: str = "") -> RequestState:
        """A PENDING request of `project_id`, made by one of its members."""
        person, project = self.store.person(author), self.store.project(project_id)
        policies.check_member(person, project, "a new output request")
        policies.check_project_open(project, "a new output request")
        now = self.clock()
        request_id = self.store.create_request(project_id, author, check_title(title), now)
        self._audit(author, "request.create", f"REQ-{request_id}", now, project=project_id)
        return self.store.request(request_id)

    def add(
        self, label: str, author: str, name: str, context: dict | None = None, exception: str | None = None
    ) -> OutputFile:
        """Move queued output `name` into the request, re-checked, with the author's context
        (and exception request)."""
        return self.add_group(label, author, [name], context, exceptions={name: exception} if exception else None)[0]

    def add_group(
        self,
        label: str,
        author: str,
        names: list[str],
        context: dict | None = None,
        group: str | None = None,
        exceptions: dict[str, str] | None = None,
    ) -> list[OutputFile]:
        """Move several queued outputs into the request at once, sharing one context (and, with
        `group`, a group name: airlock's file groups); all of them or none. `exceptions` gives
        some of them an exception request."""
        request, person, project = self._load(label, author, lock=True)
        policies.check_author(person, request, "add outputs to")
        policies.check_editable(request, "add outputs to")
        names = list(dict.fromkeys(names))
        if not names:
            raise UsageError("name the queued outputs to add (`tre request outputs PROJECT` lists them)")
        for name in names:
            check_name(name)
            if request.has_file(name):
                raise InvalidTransition(f"{request.label} already has an output named {name!r}")
        group = check_title(group, what="group name", limit=MAX_GROUP) if group else None
        exceptions = {k: check_text("an exception request", v) for k, v in (exceptions or {}).items() if v}
        unknown = sorted(set(exceptions) - set(names))
        if unknown:
            raise UsageError(f"an exception for {', '.join(unknown)}, which is not being added")
        now = self.clock()
        taken: list[OutputFile] = []
        try:
            # Every copy first: a refused one leaves the queue and the request as they were.
            for name in names:
                taken.append(self.outputs.take_in(project.id, name, request.label, project.threshold, now))
        except BaseException:
            for output in taken:
                self.outputs.discard(project.id, request.label, output.name)
            raise
        added = []
        for output in taken:
            output = replace(_with_context(output, context or {}), exception=exceptions.get(output.name), group=group)
            self.store.add_file(request.id, output)
            added.append(output)
        for output in added:
            self.outputs.claim(project.id, output.name)
            self._audit(
                author,
                "request.add",
                request.label,
                now,
                project=project.id,
                output=output.name,
                kind=output.kind,
                check_status=output.check_status,
                sha256=audit.digest(output.sha256),
                **({"group": group} if group else {}),
                **({"exception_chars": len(output.exception)} if output.exception else {}),
            )
        return added

    def describe(self, label: str, author: str, name: str, context: dict) -> OutputFile:
        """Set (part of) the author's context of one output."""
        request, person, project = self._load(label, author, lock=True)
        policies.check_author(person, request, "describe the outputs of")
        policies.check_editable(request, "describe the outputs of")
        output = _with_context(request.file(name), context)
        self.store.set_context(request.id, name, output.context)
        self._audit(
            author,
            "request.context",
            request.label,
            self.clock(),
            project=project.id,
            output=name,
            fields=sorted(k for k, v in context.items() if v),
        )
        return output

    def describe_group(self, label: str, author: str, group: str, context: dict) -> list[OutputFile]:
        """Set the context of every output of a group at once."""
        request = self.store.request(parse_label(label))
        names = [f.name for f in request.files if f.group == group]
        if not names:
            groups = sorted({f.group for f in request.files if f.group})
            raise NotFound(f"{request.label} has no group {group!r} (its groups: {', '.join(groups) or 'none'})")
        return [self.describe(label, author, name, context) for name in names]

    def set_exception(self, label: str, author: str, name: str, text: str) -> OutputFile:
        """The author's exception request for one output: why it should leave although its
        check flagged it (SACRO's exception request); empty text withdraws it."""
        request, person, project = self._load(label, author, lock=True)
        policies.check_author(person, request, "ask for an exception in")
        policies.check_editable(request, "ask for an exception in")
        output = request.file(name)
        exception = check_text("an exception request", text) if text.strip() else None
        self.store.set_exception(request.id, name, exception)
        self._audit(
            author,
            "request.exception",
            request.label,
            self.clock(),
            project=project.id,
            output=name,
            chars=len(exception or ""),
        )
        return replace(output, exception=exception)

    def comment(
        self, label: str, author: str, text: str, output: str | None = None, *, officers_only: bool = False
    ) -> Comment:
        """A comment in the request's thread, or in one output's thread. Members of the project
        and officers who may review it write; what each may read is `is_comment_visible`."""
        request, person, project = self._load(label, author, lock=True)
        policies.check_viewer(person, request, project)
        member = person.name in project.active_members
        if not member:
            policies.check_reviewer(person, request, project)
        if request.status not in COMMENTABLE:
            raise InvalidTransition(f"{request.label} is {request.status.name}: its threads are closed")
        if output is not None:
            request.file(output)
        if officers_only and member:
            raise PermissionDenied("comments for officers only are written by officers, not by the project")
        body = check_text("a comment", text)
        now = self.clock()
        written_as = WrittenAs.MEMBER if member else WrittenAs.OFFICER
        visibility = CommentVisibility.OFFICERS if officers_only else CommentVisibility.EVERYONE
        comment_id = self.store.add_comment(
            request.id, person.name, output, written_as, visibility, request.round, body, now
        )
        self._audit(
            author,
            "request.comment",
            request.label,
            now,
            project=project.id,
            output=output or "",
            written_as=written_as.value,
            visibility=visibility.value,
            chars=len(body),
        )
        return Comment(comment_id, person.name, written_as, visibility, request.round, output, body, now)

    def remove(self, label: str, author: str, name: str) -> None:
        """Take an output out of a PENDING request and put it back in the queue."""
        request, person, project = self._load(label, author, lock=True)
        policies.check_author(person, request, "remove outputs from")
        policies.check_editable(request, "remove outputs from")
        request.file(name)
        self.store.remove_file(request.id, name)
        self.outputs.unclaim(project.id, name, request.label)
        self._audit(author, "request.remove", request.label, self.clock(), project=project.id, output=name)

    def submit(self, label: str, author: str) -> RequestState:
        """PENDING -> SUBMITTED: every output has its context; digests fixed now."""
        request, person, project = self._load(label, author, lock=True)
        policies.check_author(person, request, "submit")
        check_transition(request.label, request.status, S.SUBMITTED, Actor.AUTHOR)
        policies.check_project_open(project, f"submitting {request.label}")
        policies.check_context(request)
        digests = {}
        for f in request.files:
            contents = self.outputs.current_contents(project.id, request.label, f.name)
            if contents_digest(contents) != f.sha256:
                raise InvalidTransition(
                    f"cannot submit {request.label}: the central copy of output {f.name} changed after it was "
                    "added; remove it and add it again"
                )
            digests[f.name] = audit.digest(f.sha256)
        now = self.clock()
        self.store.set_status(request.id, S.SUBMITTED, now)
        self._audit(
            author, "request.submit", request.label, now, project=project.id, round=request.round, outputs=digests
        )
        return self.store.request(request.id)

    def withdraw(self, label: str, author: str) -> RequestState:
        request, person, project = self._load(label, author, lock=True)
        policies.check_author(person, request, "withdraw")
        check_transition(request.label, request.status, S.WITHDRAWN, Actor.AUTHOR)
        now = self.clock()
        self.store.set_status(request.id, S.WITHDRAWN, now)
        self._audit(author, "request.withdraw", request.label, now, project=project.id, was=request.status.value)
        return self.store.request(request.id)

    def reopen(self, label: str, author: str) -> RequestState:
        """RETURNED -> PENDING, for a new round: the author changes outputs, then submits again."""
        request, person, project = self._load(label, author, lock=True)
        policies.check_author(person, request, "reopen")
        check_transition(request.label, request.status, S.PENDING, Actor.AUTHOR)
        now = self.clock()
        round_ = self.store.next_round(request.id)
        self.store.set_status(request.id, S.PENDING, now)
        self._audit(author, "request.reopen", request.label, now, project=project.id, round=round_)
        return self.store.request(request.id)

    # --- the reviewers' steps -----------------------------------------------------------

    def start_review(self, label: str, reviewer: str) -> RequestState:
        """Take one of the two independent review slots (or settle a conflict)."""
        request, person, project = self._load(label, reviewer, lock=True)
        return self._start(request, person, project)

    def _start(self, request: RequestState, person: Person, project: ProjectInfo) -> RequestState:
        policies.check_reviewer(person, request, project)
        policies.check_review_slot(request, person.name)
        if request.review_of(person.name) is not None:
            return request
        now = self.clock()
        if request.status == S.SUBMITTED:
            check_transition(request.label, request.status, S.IN_REVIEW, Actor.OFFICER)
            self.store.set_status(request.id, S.IN_REVIEW, now)
        self.store.start_review(request.id, person.name, request.round, now)
        self._audit(
            person.name,
            "review.start",
            request.label,
            now,
            project=project.id,
            round=request.round,
            settling=request.status == S.REVIEWED,
        )
        return self.store.request(request.id)

    def vote(
        self,
        label: str,
        reviewer: str,
        name: str,
        decision: VoteDecision | str,
        comment: str = "",
        override: str | None = None,
    ) -> RequestState:
        """Record (or change, until the review is submitted) a reviewer's vote on one output."""
        decision = _decision(decision)
        request, person, project = self._load(label, reviewer, lock=True)
        request = self._start(request, person, project)
        review = request.review_of(reviewer)
        policies.check_open_review(request, review)
        output = request.file(name)
        policies.check_vote(request, output, decision, comment, override)
        now = self.clock()
        override = (override or "").strip() or None
        self.store.put_vote(request.id, reviewer, request.round, name, decision, comment.strip(), override, now)
        details = dict(
            project=project.id,
            output=name,
            decision=decision.value,
            check_status=output.check_status,
            comment_chars=len(comment.strip()),
            override=override is not None,
        )
        self._audit(reviewer, "review.vote", request.label, now, **details)
        if override:
            self._audit(
                reviewer,
                "review.override",
                request.label,
                now,
                project=project.id,
                output=name,
                check_status=output.check_status,
                justification_chars=len(override),
            )
        return self.store.request(request.id)

    def submit_review(self, label: str, reviewer: str) -> RequestState:
        """Submit a review; with the second one the votes become visible and, unless a file is
        in conflict, decide the request."""
        request, person, project = self._load(label, reviewer, lock=True)
        policies.check_reviewer(person, request, project)
        review = request.review_of(reviewer)
        policies.check_review_complete(request, review)
        now = self.clock()
        self.store.submit_review(request.id, reviewer, request.round, now)
        self._audit(
            reviewer,
            "review.submit",
            request.label,
            now,
            project=project.id,
            round=request.round,
            votes={n: v.decision.value for n, v in review.votes.items()},
        )
        request = self.store.request(request.id)
        if request.status == S.IN_REVIEW and len(request.submitted_reviews) >= 2:
            check_transition(request.label, request.status, S.REVIEWED, Actor.SYSTEM)
            self.store.set_status(request.id, S.REVIEWED, now)
            self._audit(
                reviewer,
                "request.reviewed",
                request.label,
                now,
                project=project.id,
                by="system",
                reviewers=[r.reviewer for r in request.submitted_reviews],
            )
            request = self.store.request(request.id)
        if request.status == S.REVIEWED:
            decisions = file_decisions(request)
            outcome = decide_request(decisions)
            if outcome is not None:
                check_transition(request.label, request.status, outcome, Actor.SYSTEM)
                self.store.set_status(request.id, outcome, now)
                self._audit(
                    reviewer,
                    "request.decide",
                    request.label,
                    now,
                    project=project.id,
                    by="system",
                    status=outcome.value,
                    files={k: v.value for k, v in decisions.items()},
                )
            request = self.store.request(request.id)
        return request

    def return_approved(self, label: str, officer: str, reason: str) -> RequestState:
        """APPROVED -> RETURNED by an officer, when an approved request cannot be released."""
        request, person, project = self._load(label, officer, lock=True)
        policies.check_reviewer(person, request, project)
        if request.status != S.APPROVED:
            raise InvalidTransition(
                f"cannot return {request.label}: it is {request.status.name}; officers return only an APPROVED "
                "request that cannot be released (reviews return the others)"
            )
        check_transition(request.label, request.status, S.RETURNED, Actor.OFFICER)
        if len(reason.strip()) < 3:
            raise UsageError("returning an approved request needs a reason for its author (--reason TEXT)")
        now = self.clock()
        self.store.set_status(request.id, S.RETURNED, now, reason=reason.strip()[:2000])
        self._audit(officer, "request.return", request.label, now, project=project.id, reason_chars=len(reason.strip()))
        return self.store.request(request.id)

    # --- release --------------------------------------------------------------------------

    def release(self, label: str, actor: str) -> Release:
        """APPROVED -> RELEASED: copy, check the sha256 of every file, write the released folder
        and the bundle, and the release-record entry."""
        request, person, project = self._load(label, actor, lock=True)
        policies.check_releaser(person, request, project)
        who = Actor.OFFICER if person.has_role(Role.OFFICER) else Actor.SYSTEM
        check_transition(request.label, request.status, S.RELEASED, who)
        policies.check_releasable(request)
        newer = {
            f.name: self.outputs.new_differences(project.id, request.label, f, project.threshold) for f in request.files
        }
        problems = [f"{name}: {messages[0]}" for name, messages in newer.items() if messages]
        if problems:
            raise InvalidTransition(
                f"cannot release {request.label}: a table released after it was checked now differences with it "
                f"({'; '.join(problems)}); return it to its author"
            )
        # what the released tables add to the project's release ledger (computed before anything is written)
        entries = [
            e
            for f in request.files
            for e in self.outputs.ledger_entries(project.id, request.label, f, project.threshold)
        ]
        now = self.clock()
        approval = project.approval
        record_id = self.store.add_release_record(
            ReleaseEntry(
                project_id=project.id,
                approval_id=approval.id if approval else None,
                approval_version=approval.version if approval else None,
                recipient=f"project {project.id}: {project.title}"[:400],
                legal_basis=(
                    "anonymous outputs (§ 4-3) checked by two officers"
                    + (f"; project approval {approval.reference}: {approval.legal_basis}" if approval else "")
                )[:400],
                reference=request.label,
                released_at=now,
                keep_until=keep_until(now),
                released_by=actor,
            )
        )
        files = self._write(request, project, actor, now, record_id)
        self.outputs.record_release(project.id, entries)
        self.store.add_release(
            ReleaseInfo(request.id, now, actor, str(files.bundle), files.bundle_sha256, files.manifest)
        )
        self.store.set_status(request.id, S.RELEASED, now)
        self._audit(
            actor,
            "release.release",
            request.label,
            now,
            project=project.id,
            bundle=str(files.bundle),
            bundle_sha256=audit.digest(files.bundle_sha256),
            release_record=record_id,
            outputs={f.name: audit.digest(f.sha256) for f in request.files},
        )
        return Release(request.label, project.id, files.bundle, files.bundle_sha256, files.released_dir, record_id)

    def _write(
        self, request: RequestState, project: ProjectInfo, actor: str, now: dt.datetime, record_id: int
    ) -> ReleasedFiles:
        staging = stage_dir(self.exports_dir, project.id, request.label)
        tree = staging / request.label
        try:
            records = stage_outputs(self.outputs, request, tree)
            manifest = build_manifest(
                request,
                project,
                released_by=actor,
                released_at=now,
                record_id=record_id,
                records=records,
                files=list_tree(tree),
            )
            return write_release(
                tree,
                request.label,
                manifest,
                project_root=self.outputs.project_dir(project.id),
                bundle=bundle_path(self.exports_dir, project.id, request.label),
                released_at=now,
            )
        finally:
            remove_stage(staging)

    def bundle(self, label: str, viewer: str) -> Path:
        """The bundle of a released request, for download (audited)."""
        request, person, project = self._load(label, viewer)
        policies.check_viewer(person, request, project)
        release = self.store.release(request.id)
        if release is None:
            raise InvalidTransition(f"{request.label} is {request.status.name}: it has no bundle until it is released")
        path = Path(release.bundle_path)
        if not path.is_file():
            raise NotFound(f"the bundle of {request.label} is missing from {path.parent}: restore it from backup")
        self._audit(
            viewer,
            "release.download",
            request.label,
            self.clock(),
            project=project.id,
            bundle_sha256=audit.digest(release.bundle_sha256),
        )
        return path

    # --- what people see ------------------------------------------------------------------

    def view(self, label: str, viewer: str, *, audit: bool = True) -> dict:
        """The request as `viewer` may see it (votes hidden by the rules); audited."""
        request, person, project = self._load(label, viewer)
        policies.check_viewer(person, request, project)
        if audit:
            self._audit(viewer, "request.view", request.label, self.clock(), project=project.id)
        return describe(request, project, person, self.store.release(request.id))

    def view_file(self, label: str, viewer: str, name: str, part: str | None = None) -> tuple[OutputFile, Path]:
        """One output (or one file of it) for viewing: its record and the folder of its central
        copy's leaving files (never the project's folder); audited."""
        request, person, project = self._load(label, viewer)
        policies.check_viewer(person, request, project)
        output = request.file(name)
        # "report.json" names the check report the request holds (rendered, never read from a file).
        if part is not None and part != "report.json" and part not in {c["name"] for c in output.contents}:
            raise NotFound(f"output {name} of {request.label} has no file {part!r}")
        self._audit(
            viewer, "request.view_file", request.label, self.clock(), project=project.id, output=name, file=part or ""
        )
        return output, self.outputs.leaving_dir(project.id, request.label, name)

    def queue(self, officer: str, view: str = "open") -> list[dict]:
        """Requests for officers, newest first, each with whether `officer` may review it and
        why not. `view` (QUEUE_VIEWS): open (waiting for officers: submitted, in review,
        reviewed, approved), waiting-for-me (a step of yours: review, finish, settle, release),
        reviewed-by-me, released, returned."""
        person = self.store.person(officer)
        policies.check_active(person, "the review queue")
        if not (person.has_role(Role.OFFICER) or person.has_role(Role.ADMIN)):
            raise PermissionDenied(f"the review queue is for officers ({person.name} has {person.held})")
        if view not in QUEUE_VIEWS:
            raise UsageError(f"{view!r} is not a view of the queue: {', '.join(QUEUE_VIEWS)}")
        rows = []
        for request in reversed(self.store.requests(statuses=QUEUE_VIEWS[view])):
            project = self.store.project(request.project_id)
            try:
                policies.check_reviewer(person, request, project)
                refusal = None
            except PermissionDenied as e:
                refusal = str(e)
            mine = request.review_of(officer)
            reviewed = any(r.reviewer == officer and r.is_submitted for r in request.reviews)
            row = {
                **summary(request),
                "may_review": refusal is None,
                "why_not": refusal,
                "your_review": None if mine is None else mine.status.value,
                "reviewed_by_you": reviewed,
                "next": _next_step(request, mine, refusal),
            }
            if view == "waiting-for-me" and row["next"] not in YOUR_STEPS:
                continue
            if view == "reviewed-by-me" and not reviewed:
                continue
            rows.append(row)
        return rows

    def of_project(self, project_id: str, viewer: str) -> list[dict]:
        """The project's requests, for its members."""
        person, project = self.store.person(viewer), self.store.project(project_id)
        if person.name not in project.active_members:
            policies.check_member(person, project, f"the requests of project {project_id}")
        return [summary(r) for r in self.store.requests(project_ids=[project_id])]

    def mine(self, viewer: str) -> list[dict]:
        """Requests of every project `viewer` is a member of."""
        self.store.person(viewer)
        projects = self.store.projects_of(viewer)
        return [summary(r) for r in self.store.requests(project_ids=projects)] if projects else []

    def queued(self, project_id: str, viewer: str) -> list[dict]:
        """The project's queued outputs (what can be added to a request), for its members."""
        person, project = self.store.person(viewer), self.store.project(project_id)
        policies.check_member(person, project, f"the output queue of project {project_id}")
        return self.outputs.queued(project_id)

    def queued_report(self, project_id: str, viewer: str, name: str) -> dict:
        """The check report (report.json) of a queued output, for its project's members."""
        person, project = self.store.person(viewer), self.store.project(project_id)
        policies.check_member(person, project, f"the output queue of project {project_id}")
        return self.outputs.queued_report(project_id, name)

    # --- plumbing ---------------------------------------------------------------------------

    def _load(self, label: str, actor: str, *, lock: bool = False) -> tuple[RequestState, Person, ProjectInfo]:
        request = self.store.request(parse_label(label), lock=lock)
        return request, self.store.person(actor), self.store.project(request.project_id)

    def _audit(self, actor: str, action: str, label: str, now: dt.datetime, **details) -> None:
        self.store.audit(actor=actor, action=action, object=f"request:{label}", details=details, now=now)


MAX_TITLE = 200
MAX_GROUP = 100
MAX_TEXT = 4000  # characters of a comment or an exception request


def check_title(title: str, *, what: str = "request title", limit: int = MAX_TITLE) -> str:
    """A request's title (or a group's name): one line of printable text, at most `limit` characters."""
    title = title.strip()
    problem = None
    if len(title) > limit:
        problem = f"it has {len(title)} characters (at most {limit})"
    elif any(c in "\r\n" for c in title):
        problem = "it contains a line break"
    elif any(unicodedata.category(c) == "Cf" for c in title):
        problem = "it contains an invisible formatting character (such as a right-to-left override)"
    elif not title.isprintable():
        problem = "it contains control characters"
    if problem:
        raise UsageError(f"{what} {shown(title)!r} is refused: {problem}; use one line of plain text")
    return title


def check_text(what: str, text: str) -> str:
    """Free text (a comment, an exception request): lines of printable text, at most 4000
    characters; never an invisible formatting character that would make it read otherwise."""
    text = (text or "").strip()
    problem = None
    if not text:
        problem = "it is empty"
    elif len(text) > MAX_TEXT:
        problem = f"it has {len(text)} characters (at most {MAX_TEXT})"
    elif any(unicodedata.category(c) == "Cf" for c in text):
        problem = "it contains an invisible formatting character (such as a right-to-left override)"
    elif not all(c.isprintable() or c in "\n\t" for c in text.replace("\r\n", "\n")):
        problem = "it contains control characters"
    if problem:
        raise UsageError(f"{what} is refused: {problem}")
    return text.replace("\r\n", "\n")


def _with_context(output: OutputFile, context: dict) -> OutputFile:
    unknown = sorted(set(context) - set(CONTEXT_FIELDS))
    if unknown:
        raise UsageError(f"unknown context field(s) {', '.join(unknown)}; use {', '.join(CONTEXT_FIELDS)}")
    merged = dict(output.context)
    merged.update({k: str(v).strip() for k, v in context.items() if v is not None and str(v).strip()})
    return OutputFile(**{**output.__dict__, "context": merged})


def _decision(value: VoteDecision | str) -> VoteDecision:
    try:
        return VoteDecision(value)
    except ValueError:
        raise UsageError(f"{value!r} is not a vote: approve, changes or reject") from None


def _next_step(request: RequestState, mine, refusal: str | None) -> str:
    if request.status == S.APPROVED:
        return "release" if refusal is None else "waits for release"
    if refusal is not None:
        return "not yours to review"
    if mine is not None:
        return "submitted" if mine.is_submitted else "finish your review"
    if request.status in INDEPENDENT:
        return "review" if len(request.current_reviews) < 2 else "two reviews under way"
    return "settle the conflict"


OPEN = (S.SUBMITTED, S.IN_REVIEW, S.REVIEWED, S.APPROVED)
QUEUE_VIEWS: dict[str, tuple[RequestStatus, ...]] = {
    "open": OPEN,
    "waiting-for-me": OPEN,
    "reviewed-by-me": tuple(s for s in S if s != S.PENDING),
    "released": (S.RELEASED,),
    "returned": (S.RETURNED,),
}
YOUR_STEPS = frozenset({"review", "finish your review", "settle the conflict", "release"})


def summary(request: RequestState) -> dict:
    """One line of a list: who, what, where it stands."""
    return {
        "request": request.label,
        "project": request.project_id,
        "title": request.title,
        "author": request.author,
        "status": request.status.value,
        "round": request.round,
        "outputs": len(request.files),
        "failed_checks": sum(1 for f in request.files if f.failed_check),
        "reviews": {
            "started": len(request.current_reviews),
            "submitted": len(request.submitted_reviews),
        },
        "reviewers": [r.reviewer for r in request.current_reviews],
        "created_at": _iso(request.created_at),
        "submitted_at": _iso(request.submitted_at),
        "decided_at": _iso(request.decided_at),
        "returned_reason": request.returned_reason,
    }


def describe(request: RequestState, project: ProjectInfo, viewer: Person, release: ReleaseInfo | None) -> dict:
    """The whole request as `viewer` may see it: votes, decisions and comments only where the
    rules allow."""
    officer = viewer.has_role(Role.OFFICER) or viewer.has_role(Role.ADMIN)
    member = viewer.name in project.active_members
    comments = [
        {
            "id": c.id,
            "author": c.author,
            "written_as": c.written_as.value,
            "officers_only": c.visibility == CommentVisibility.OFFICERS,
            "round": c.round,
            "output": c.output,
            "body": c.body,
            "at": _iso(c.created_at),
        }
        for c in request.comments
        if is_comment_visible(request, c, viewer.name, officer=officer and not member, member=member)
    ]
    decisions = file_decisions(request)
    show_decisions = request.status in DECIDED or (officer and request.status == S.REVIEWED)
    files = []
    for f in request.files:
        votes = []
        for review in request.reviews:
            vote = review.votes.get(f.name)
            if vote is not None and is_vote_visible(request, vote, viewer.name, officer=officer):
                votes.append(
                    {
                        "reviewer": vote.reviewer,
                        "round": review.round,
                        "decision": vote.decision.value,
                        "comment": vote.comment,
                        "override": vote.override,
                        "voted_at": _iso(vote.voted_at),
                        "final": review.is_submitted,
                    }
                )
        recheck = f.report.get("recheck", f.report)  # older requests kept a re-check beside the kernel's report
        files.append(
            {
                "name": f.name,
                "kind": f.kind,
                "check_status": f.check_status,
                "summary": f.summary,
                "findings": recheck.get("findings", f.report.get("findings", [])),
                "threshold": (recheck.get("parameters") or {}).get("threshold"),
                "sha256": f.sha256,
                "context": f.context,
                "missing_context": f.missing_context(),
                "files": list(f.contents),
                "made_by": {k: f.meta.get(k) for k in ("call", "arguments", "created_at") if k in f.meta},
                "decision": decisions[f.name].value if show_decisions else None,
                "votes": votes,
                "exception": f.exception,
                "group": f.group,
                "comments": [c for c in comments if c["output"] == f.name],
            }
        )
    return {
        **summary(request),
        "project_title": project.title,
        "approval": None if project.approval is None else project.approval.reference,
        "files": files,
        "comments": [c for c in comments if c["output"] is None],
        "may_comment": request.status in COMMENTABLE and (member or officer),
        "reviewers": [
            {"reviewer": r.reviewer, "round": r.round, "status": r.status.value, "submitted_at": _iso(r.submitted_at)}
            for r in request.reviews
        ],
        "release": None
        if release is None
        else {
            "released_at": _iso(release.released_at),
            "released_by": release.released_by,
            "bundle": release.bundle_path,
            "bundle_sha256": release.bundle_sha256,
        },
    }


def _iso(moment: dt.datetime | None) -> str | None:
    return None if moment is None else moment.astimezone(dt.UTC).isoformat(timespec="seconds")
