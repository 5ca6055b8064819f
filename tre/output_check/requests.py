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
import shutil
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from tre import audit
from tre.config import ensure_private_dir
from tre.enums import RequestStatus, Role, VoteDecision
from tre.errors import InvalidTransition, NotFound, PermissionDenied, UsageError
from tre.output_check import policies
from tre.output_check.intake import WorkspaceOutputs, contents_digest
from tre.output_check.policies import Person, ProjectInfo
from tre.output_check.releases import (
    ReleasedFiles,
    build_manifest,
    bundle_path,
    keep_until,
    stage_outputs,
    write_release,
)
from tre.output_check.workflow import (
    CONTEXT_FIELDS,
    DECIDED,
    INDEPENDENT,
    Actor,
    OutputFile,
    RequestState,
    check_transition,
    decide_request,
    file_decisions,
    is_vote_visible,
)

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
    def set_digest(self, request_id: int, name: str, sha256: str, contents: list[dict]) -> None: ...
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
        request_id = self.store.create_request(project_id, author, title.strip()[:400], now)
        self._audit(author, "request.create", f"REQ-{request_id}", now, project=project_id)
        return self.store.request(request_id)

    def add(self, label: str, author: str, name: str, context: dict | None = None) -> OutputFile:
        """Move queued output `name` into the request, re-checked, with the author's context."""
        request, person, project = self._load(label, author, lock=True)
        policies.check_author(person, request, "add outputs to")
        policies.check_editable(request, "add outputs to")
        if request.has_file(name):
            raise InvalidTransition(f"{request.label} already has an output named {name!r}")
        now = self.clock()
        output = self.outputs.check_queued(project.id, name, project.threshold, now)
        output = _with_context(output, context or {})
        self.store.add_file(request.id, output)
        self.outputs.claim(project.id, name, request.label)
        self._audit(
            author,
            "request.add",
            request.label,
            now,
            project=project.id,
            output=name,
            kind=output.kind,
            check_status=output.check_status,
            sha256=audit.digest(output.sha256),
        )
        return output

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
                    f"cannot submit {request.label}: output {f.name} changed after it was added; "
                    "remove it and queue it again"
                )
            self.store.set_digest(request.id, f.name, f.sha256, contents)
            digests[f.name] = audit.digest(f.sha256)
        now = self.clock()
        self.store.set_status(request.id, S.SUBMITTED, now)
        self.outputs.seal(project.id, request.label)
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
        self.outputs.unseal(project.id, request.label)
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
            )
        )
        manifest = build_manifest(request, project, released_by=actor, released_at=now, record_id=record_id)
        files = self._write(request, project, manifest, now)
        self.outputs.record_release(project.id, entries)
        self.store.add_release(ReleaseInfo(request.id, now, actor, str(files.bundle), files.bundle_sha256, manifest))
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

    def _write(self, request: RequestState, project: ProjectInfo, manifest: dict, now: dt.datetime) -> ReleasedFiles:
        bundle = bundle_path(self.exports_dir, project.id, request.label)
        ensure_private_dir(self.exports_dir, "the exports directory (TRE_EXPORTS_DIR)")
        staging_root = ensure_private_dir(self.exports_dir / ".staging", "the exports directory (TRE_EXPORTS_DIR)")
        staging = Path(tempfile.mkdtemp(prefix=f"{project.id}-{request.label}-", dir=staging_root))
        try:
            stage_outputs(self.outputs, request, staging)
            released_root = self.outputs.project_dir(project.id) / "released"
            return write_release(
                staging, request, manifest, released_root=released_root, bundle=bundle, released_at=now
            )
        finally:
            shutil.rmtree(staging, ignore_errors=True)

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
        """One output (or one file of it) for viewing: its record and its folder; audited."""
        request, person, project = self._load(label, viewer)
        policies.check_viewer(person, request, project)
        output = request.file(name)
        if part is not None and part not in {c["name"] for c in output.contents}:
            raise NotFound(f"output {name} of {request.label} has no file {part!r}")
        self._audit(
            viewer, "request.view_file", request.label, self.clock(), project=project.id, output=name, file=part or ""
        )
        return output, self.outputs.output_dir(project.id, request.label, name)

    def queue(self, officer: str) -> list[dict]:
        """Requests waiting for officers (submitted, in review, reviewed, approved), each with
        whether `officer` may review it and why not."""
        person = self.store.person(officer)
        policies.check_active(person, "the review queue")
        if not (person.has_role(Role.OFFICER) or person.has_role(Role.ADMIN)):
            raise PermissionDenied(f"the review queue is for officers ({person.name} has {person.held})")
        waiting = (S.SUBMITTED, S.IN_REVIEW, S.REVIEWED, S.APPROVED)
        rows = []
        for request in self.store.requests(statuses=waiting):
            project = self.store.project(request.project_id)
            try:
                policies.check_reviewer(person, request, project)
                refusal = None
            except PermissionDenied as e:
                refusal = str(e)
            mine = request.review_of(officer)
            rows.append(
                {
                    **summary(request),
                    "may_review": refusal is None,
                    "why_not": refusal,
                    "your_review": None if mine is None else mine.status.value,
                    "next": _next_step(request, mine, refusal),
                }
            )
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

    def queued_report(self, project_id: str, viewer: str, name: str) -> Path:
        """The check report (report.json) of a queued output, for its project's members."""
        person, project = self.store.person(viewer), self.store.project(project_id)
        policies.check_member(person, project, f"the output queue of project {project_id}")
        return self.outputs.queued_dir(project_id, name) / "report.json"

    # --- plumbing ---------------------------------------------------------------------------

    def _load(self, label: str, actor: str, *, lock: bool = False) -> tuple[RequestState, Person, ProjectInfo]:
        request = self.store.request(parse_label(label), lock=lock)
        return request, self.store.person(actor), self.store.project(request.project_id)

    def _audit(self, actor: str, action: str, label: str, now: dt.datetime, **details) -> None:
        self.store.audit(actor=actor, action=action, object=f"request:{label}", details=details, now=now)


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
        "created_at": _iso(request.created_at),
        "submitted_at": _iso(request.submitted_at),
        "decided_at": _iso(request.decided_at),
        "returned_reason": request.returned_reason,
    }


def describe(request: RequestState, project: ProjectInfo, viewer: Person, release: ReleaseInfo | None) -> dict:
    """The whole request as `viewer` may see it: votes and decisions only where the rules allow."""
    officer = viewer.has_role(Role.OFFICER) or viewer.has_role(Role.ADMIN)
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
        recheck = f.report.get("recheck", {})
        files.append(
            {
                "name": f.name,
                "kind": f.kind,
                "check_status": f.check_status,
                "summary": f.summary,
                "findings": recheck.get("findings", f.report.get("findings", [])),
                "sha256": f.sha256,
                "context": f.context,
                "missing_context": f.missing_context(),
                "files": list(f.contents),
                "made_by": {k: f.meta.get(k) for k in ("call", "arguments", "created_at") if k in f.meta},
                "decision": decisions[f.name].value if show_decisions else None,
                "votes": votes,
            }
        )
    return {
        **summary(request),
        "project_title": project.title,
        "approval": None if project.approval is None else project.approval.reference,
        "files": files,
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
