"""The review page's tornado application: handlers, login, and `serve`."""

from __future__ import annotations

import asyncio
import os
import secrets
import time
import urllib.parse
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tornado import web

from tre.config import Settings
from tre.db import Store, utc_now
from tre.enums import RequestStatus, Role
from tre.errors import NotFound, PermissionDenied, UnsafeFile, UserError
from tre.output_check import policies
from tre.output_check.intake import WorkspaceOutputs
from tre.output_check.previews import (
    build_previews,
    read_text,
    regular_file,
    render_notebook,
    render_report,
    report_fragment,
)
from tre.output_check.requests import QUEUE_VIEWS, Requests, parse_label
from tre.output_check.storage import SqlRequestStore
from tre.output_check.web import SERVICE_NAME
from tre.output_check.workflow import COMMENTABLE, CONTEXT_FIELDS, VOTABLE
from tre.project_files import shown
from tre.serving import run_until_stopped, service_address
from tre.timezones import display_zone, readable

HERE = Path(__file__).resolve().parent
USER_COOKIE = "tre_review_user"
FLASH_COOKIE = "tre_review_flash"
SESSION_HOURS = 8
LOCKOUT = (5, 300)  # failed logins, within seconds: the name is locked out for that long
NAME = r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}"
LABEL = r"[Rr][Ee][Qq]-\d{1,9}"
HUB_TIMEOUT = 10  # seconds: every call of a page to the hub gives up after this
HUB_CACHE_SECONDS = 5  # how long the hub's word on a token is trusted

PAGE_CSP = (
    "default-src 'self'; script-src 'none'; style-src 'self'; img-src 'self' data:; frame-src 'self'; "
    "form-action 'self'; frame-ancestors 'self'; base-uri 'none'; object-src 'none'"
)
# Reports and rendered notebooks: their own inline styles, nothing else, in a sandbox without
# scripts, forms or navigation of the page. It keeps its origin (allow-same-origin is safe with
# scripts off), so Chromium renders it in the page's process and clicks land where they aim.
DOCUMENT_CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; font-src data:; sandbox allow-same-origin"
FILE_CSP = "default-src 'none'; img-src 'self'; style-src 'unsafe-inline'; sandbox"


class Review:
    """What every handler shares: settings, the store, the URL prefix, failed logins."""

    def __init__(self, settings: Settings, store: Store, prefix: str, hub: bool):
        self.settings, self.store, self.prefix, self.hub = settings, store, prefix, hub
        self.failures: dict[str, list[float]] = {}
        self.zone = display_zone(settings.time_zone)

    def when(self, moment) -> str:
        """A stored time as people read it: in the TRE's time zone, `today 14:05 CET`."""
        return readable(moment, self.zone, now=utc_now())

    def call(self, step: Callable[[Requests, SqlRequestStore], Any]) -> Any:
        with self.store.transaction() as session:
            store = SqlRequestStore(session)
            outputs = WorkspaceOutputs.from_settings(self.settings)
            return step(Requests(store, outputs, self.settings.exports_dir, utc_now), store)

    async def run(self, step: Callable[[Requests, SqlRequestStore], Any]) -> Any:
        """`step(requests, store)` in one transaction, in a worker thread."""
        return await asyncio.to_thread(self.call, step)

    def locked_out(self, name: str) -> bool:
        limit, window = LOCKOUT
        recent = [t for t in self.failures.get(name, []) if t > time.monotonic() - window]
        self.failures[name] = recent
        return len(recent) >= limit


class Base(web.RequestHandler):
    def initialize(self, review: Review):
        self.review = review

    # --- who is asking --------------------------------------------------------------------

    def get_current_user(self):
        # Standalone: the signed login cookie. Under the hub, HubOAuthenticated comes first.
        value = self.get_signed_cookie(USER_COOKIE, max_age_days=SESSION_HOURS / 24)
        return value.decode("utf-8") if value else None

    @property
    def user_name(self) -> str:
        user = self.current_user
        return user["name"] if isinstance(user, dict) else user

    # --- pages ----------------------------------------------------------------------------

    def url(self, path: str = "") -> str:
        return self.review.prefix + path.lstrip("/")

    def set_default_headers(self):
        self.set_header("Content-Security-Policy", PAGE_CSP)
        self.set_header("X-Content-Type-Options", "nosniff")
        self.set_header("Referrer-Policy", "no-referrer")
        self.set_header("Cache-Control", "no-store")

    def get_template_namespace(self):
        namespace = super().get_template_namespace()
        namespace.update(
            url=self.url,
            hub=self.review.hub,
            user_name=self.user_name if self.current_user else None,
            flash=self._pop_flash(),
            CONTEXT_FIELDS=CONTEXT_FIELDS,
            when=self.review.when,
        )
        return namespace

    def flash(self, message: str, kind: str = "ok") -> None:
        self.set_signed_cookie(
            FLASH_COOKIE,
            f"{kind}:{message}"[:1500],
            expires_days=None,
            httponly=True,
            samesite="Strict",
            path=self.review.prefix,
        )

    def _pop_flash(self) -> tuple[str, str] | None:
        if not hasattr(self, "_flash"):
            raw = self.get_signed_cookie(FLASH_COOKIE, max_age_days=1)
            self._flash = tuple(raw.decode("utf-8").split(":", 1)) if raw else None
            if raw:
                self.clear_cookie(FLASH_COOKIE, path=self.review.prefix)
        return self._flash

    def fail(self, status: int, message: str) -> None:
        self.set_status(status)
        self.render("error.html", status=status, message=message)
        raise web.Finish()

    async def fetch(self, step):
        """Run a read step; a refusal becomes an error page (and a refused access is audited)."""
        try:
            return await self.review.run(step)
        except PermissionDenied as refusal:
            await self._audit_refusal(refusal)
            self.fail(403, str(refusal))
        except UnsafeFile as refused:
            await self._audit_refusal(refused)
            self.fail(400, str(refused))
        except NotFound as missing:
            self.fail(404, str(missing))
        except UserError as problem:
            self.fail(400, str(problem))

    async def act(self, step, back: str, done: str | Callable[[Any], str]) -> None:
        """Run a changing step, then go back to `back` with what happened (or why not)."""
        try:
            result = await self.review.run(step)
        except UserError as problem:
            if isinstance(problem, PermissionDenied | UnsafeFile):
                await self._audit_refusal(problem)
            self.flash(str(problem), "error")
        else:
            self.flash(done(result) if callable(done) else done)
        self.redirect(self.url(back), status=303)

    async def _audit_refusal(self, refusal: UserError) -> None:
        name, path = self.user_name or "(nobody)", self.request.path

        unsafe = isinstance(refusal, UnsafeFile)

        def record(_, store):
            store.audit(
                actor=name,
                action="project.file_refused" if unsafe else "access.denied",
                object=f"review-page:{shown(path, 180)}",
                details={"reason": shown(str(refusal), 400)},
                now=utc_now(),
            )

        await self.review.run(record)

    def write_error(self, status_code: int, **kwargs):
        reason = self._reason if status_code != 500 else "the review page failed; the error is in its log"
        self.render("error.html", status=status_code, message=reason)


QUEUE_VIEW_NAMES = {
    "open": "Open",
    "waiting-for-me": "Waiting for me",
    "reviewed-by-me": "Reviewed by me",
    "released": "Released",
    "returned": "Returned",
}


class Home(Base):
    @web.authenticated
    async def get(self):
        name = self.user_name
        view = self.get_query_argument("view", "open")
        if view not in QUEUE_VIEWS:
            self.fail(400, f"{shown(view, 40)!r} is not a view of the queue: {', '.join(QUEUE_VIEWS)}")

        def page(wf: Requests, store: SqlRequestStore):
            person = store.person(name)
            policies.check_active(person, "the review page")
            officer = person.has_role(Role.OFFICER) or person.has_role(Role.ADMIN)
            projects = []
            for project_id in store.projects_of(name):
                project = store.project(project_id)
                projects.append(
                    {
                        "id": project.id,
                        "title": project.title,
                        "status": project.status.value,
                        "requests": wf.of_project(project.id, name),
                        "queued": _queued_count(wf, project.id),
                    }
                )
            return {
                "officer": officer,
                "queue": wf.queue(name, view) if officer else [],
                "view": view,
                "views": QUEUE_VIEW_NAMES,
                "projects": projects,
            }

        self.render("home.html", **await self.fetch(page))


def _queued_count(wf: Requests, project_id: str) -> int | str:
    """How many outputs a project has queued; "?" when its queue is not a folder (a link the
    project made: the project page says why)."""
    try:
        return len(wf.outputs.queued(project_id))
    except UnsafeFile:
        return "?"


class Login(Base):
    def get(self):
        if self.review.hub:
            raise web.HTTPError(404)
        self.render(
            "login.html",
            next=self.get_argument("next", self.url()),
            error=None,
            two_factor=self.review.settings.hub_two_factor,
        )

    async def post(self):
        if self.review.hub:
            raise web.HTTPError(404)
        from tre.credentials import check_login

        name = self.get_body_argument("username", "").strip()
        password = self.get_body_argument("password", "")
        code = self.get_body_argument("code", "")
        next_url = self._safe_next(self.get_body_argument("next", ""))
        two_factor = self.review.settings.hub_two_factor
        if self.review.locked_out(name):
            result, reason = None, "locked out"
        else:

            def check(_, store):
                from tre.sealed import login_box

                settings = self.review.settings
                box = login_box(settings, os.environ, store.session, now=utc_now()) if two_factor else None
                return check_login(store.session, name, password, code, two_factor=two_factor, box=box)

            result = await self.review.run(check)
            reason = result.reason
        ok = result is not None and result.ok
        actor = name if name and len(name) <= 64 and name.isprintable() else "(invalid name)"

        def record(_, store):
            store.audit(
                actor=actor,
                action="review.login" if ok else "review.login_failed",
                object="review-page",
                details={} if ok else {"reason": reason},
                now=utc_now(),
            )

        await self.review.run(record)
        if not ok:
            self.review.failures.setdefault(name, []).append(time.monotonic())
            self.set_status(403)
            # One message for every failure: it does not tell which part was wrong.
            self.render(
                "login.html",
                next=next_url,
                error="Login failed: check the name, password and code.",
                two_factor=two_factor,
            )
            return
        self.review.failures.pop(name, None)
        self.set_signed_cookie(
            USER_COOKIE, name, expires_days=None, httponly=True, samesite="Strict", path=self.review.prefix
        )
        self.redirect(next_url, status=303)

    def _safe_next(self, target: str) -> str:
        parsed = urllib.parse.urlparse(target)
        if parsed.scheme or parsed.netloc or not target.startswith(self.review.prefix):
            return self.url()
        return target


class Logout(Base):
    def post(self):
        self.clear_cookie(USER_COOKIE, path=self.review.prefix)
        self.redirect("/hub/logout" if self.review.hub else self.url("login"), status=303)


class ProjectPage(Base):
    @web.authenticated
    async def get(self, project_id: str):
        name = self.user_name

        def page(wf: Requests, store: SqlRequestStore):
            queued = wf.queued(project_id, name)
            project = store.project(project_id)
            return {"project": project, "queued": queued, "requests": wf.of_project(project_id, name)}

        self.render("project.html", **await self.fetch(page))


class NewRequest(Base):
    @web.authenticated
    async def post(self, project_id: str):
        name, title = self.user_name, self.get_body_argument("title", "")
        try:
            request = await self.review.run(lambda wf, _: wf.new(project_id, name, title))
        except UserError as problem:
            self.flash(str(problem), "error")
            self.redirect(self.url(f"projects/{project_id}"), status=303)
            return
        self.flash(f"{request.label} made: add outputs from the queue, each with its context")
        self.redirect(self.url(f"requests/{request.label}"), status=303)


class QueuedReport(Base):
    @web.authenticated
    async def get(self, project_id: str, output: str):
        name = self.user_name
        stored = await self.fetch(lambda wf, _: wf.queued_report(project_id, name, output))
        try:
            page = render_report(stored, f"{output} (queued in {project_id})")
        except (ValueError, KeyError, TypeError):
            self.fail(400, f"output {output} has no readable check report: queue it again")
        self.set_header("Content-Security-Policy", DOCUMENT_CSP)
        self.set_header("Content-Type", "text/html; charset=utf-8")
        self.finish(page)


class RequestPage(Base):
    @web.authenticated
    async def get(self, label: str):
        name = self.user_name
        self.render("request.html", **await self.fetch(lambda wf, store: request_page(wf, store, label, name)))


def request_page(wf: Requests, store: SqlRequestStore, label: str, name: str) -> dict:
    """Everything the request page shows `name`, with what they may do."""
    data = wf.view(label, name)
    request = store.request(parse_label(label))
    person, project = store.person(name), store.project(request.project_id)
    review = request.review_of(name)
    why_not = None
    try:
        policies.check_reviewer(person, request, project)  # an officer independent of the project
        independent = True
    except PermissionDenied as refusal:
        independent, why_not = False, str(refusal)
    if independent:
        try:
            policies.check_review_slot(request, name)
        except UserError as refusal:
            why_not = str(refusal)
    may_review = independent and why_not is None
    # Why you may not review matters while there is a review to make, and not once yours is in.
    if request.status not in VOTABLE or (review and review.is_submitted):
        why_not = None
    try:
        policies.check_releaser(person, request, project)
        may_release = request.status == RequestStatus.APPROVED
    except PermissionDenied:
        may_release = False
    is_author = name == request.author
    editable = is_author and request.status == RequestStatus.PENDING
    # Read only when there is something to redact; an unreadable extract refuses the page (closed).
    pseudonyms = wf.outputs.pseudonyms(project.id) if data["files"] else frozenset()
    for f in data["files"]:
        directory = wf.outputs.leaving_dir(project.id, request.label, f["name"])
        try:
            f["previews"] = build_previews(directory, [c["name"] for c in f["files"]], pseudonyms)
        except NotFound as missing:
            f["previews"], f["missing"] = [], str(missing)
        f["notes"] = {c["name"]: c.get("notes", []) for c in f["files"]}
        try:
            f["report_html"] = report_fragment(request.file(f["name"]).report, f"Check of {f['name']}")
        except (ValueError, KeyError, TypeError):
            f["report_html"] = None
        f["failed"] = f["check_status"] == "fail"
        f["cell"] = ((f["made_by"] or {}).get("arguments") or {}).get("cell")
    return {
        "r": data,
        "is_author": is_author,
        "editable": editable,
        "may_vote": may_review and request.status in VOTABLE and not (review and review.is_submitted),
        "why_not": why_not if person.has_role(Role.OFFICER) and not is_author else None,
        "review": review,
        "may_submit_review": review is not None and not review.is_submitted,
        "may_release": may_release,
        "may_return": may_release and person.has_role(Role.OFFICER),
        "queued": wf.outputs.queued(project.id) if editable else [],
        "may_comment": request.status in COMMENTABLE and (person.name in project.active_members or independent),
        "officer_here": independent,
    }


class RequestAction(Base):
    STEPS = {
        "submit": ("submit", "submitted: two officers review it independently"),
        "withdraw": ("withdraw", "withdrawn"),
        "reopen": ("reopen", "reopened: change its outputs, then submit again"),
        "review": ("submit_review", None),
        "release": ("release", None),
    }

    @web.authenticated
    async def post(self, label: str, step: str):
        name = self.user_name
        label = label.upper()
        if step == "return":
            reason = self.get_body_argument("reason", "")
            await self.act(
                lambda wf, _: wf.return_approved(label, name, reason),
                f"requests/{label}",
                f"{label} returned to its author",
            )
            return
        if step not in self.STEPS:
            raise web.HTTPError(404)
        method, done = self.STEPS[step]
        await self.act(
            lambda wf, _: getattr(wf, method)(label, name),
            f"requests/{label}",
            done and f"{label} {done}" or (lambda result: _outcome(label, result)),
        )


def _outcome(label: str, result) -> str:
    if hasattr(result, "bundle"):
        return f"{label} released: bundle {result.bundle.name} (sha256 {result.bundle_sha256[:16]}…)"
    words = {
        "in_review": "waits for the second review",
        "reviewed": "has a conflict: a third reviewer settles it",
        "approved": "is APPROVED and can be released",
        "returned": "is returned to its author",
        "rejected": "is rejected",
    }
    return f"review submitted: {label} {words.get(result.status.value, result.status.value)}"


class AddOutput(Base):
    @web.authenticated
    async def post(self, label: str):
        name, label = self.user_name, label.upper()
        outputs = self.get_body_arguments("output")
        context = {k: self.get_body_argument(k, "") for k in CONTEXT_FIELDS}
        group = self.get_body_argument("group", "").strip() or None
        await self.act(
            lambda wf, _: wf.add_group(label, name, outputs, context, group),
            f"requests/{label}",
            lambda added: "added " + ", ".join(f"{f.name} (check {f.check_status})" for f in added),
        )


class Comment(Base):
    @web.authenticated
    async def post(self, label: str):
        name, label = self.user_name, label.upper()
        output = self.get_body_argument("output", "") or None
        text = self.get_body_argument("text", "")
        officers_only = self.get_body_argument("officers_only", "") == "yes"
        back = f"requests/{label}" + (f"#output-{output}" if output else "#thread")
        await self.act(
            lambda wf, _: wf.comment(label, name, text, output, officers_only=officers_only),
            back,
            "comment added" + (" (for officers only)" if officers_only else ""),
        )


class OutputAction(Base):
    @web.authenticated
    async def post(self, label: str, output: str, step: str):
        name, label = self.user_name, label.upper()
        back = f"requests/{label}#output-{output}"
        if step == "context":
            context = {k: self.get_body_argument(k, "") for k in CONTEXT_FIELDS}
            await self.act(lambda wf, _: wf.describe(label, name, output, context), back, f"{output} described")
        elif step == "exception":
            text = self.get_body_argument("exception", "")
            await self.act(
                lambda wf, _: wf.set_exception(label, name, output, text),
                back,
                lambda f: f"{output}: exception " + ("requested" if f.exception else "withdrawn"),
            )
        elif step == "remove":
            await self.act(
                lambda wf, _: wf.remove(label, name, output), f"requests/{label}", f"{output} is back in the queue"
            )
        elif step == "vote":
            decision = self.get_body_argument("decision", "")
            comment = self.get_body_argument("comment", "")
            override = self.get_body_argument("override", "") or None
            await self.act(
                lambda wf, _: wf.vote(label, name, output, decision, comment, override),
                back,
                f"your vote on {output}: {decision}",
            )
        else:
            raise web.HTTPError(404)


class OutputDocument(Base):
    """An output's check report, one of its files, or a rendered notebook (each view audited)."""

    @web.authenticated
    async def get(self, label: str, output: str, what: str, part: str | None = None):
        name, label = self.user_name, label.upper()
        part = "report.json" if what == "report" else part

        def find(wf, store):
            request = store.request(parse_label(label))
            found, directory = wf.view_file(label, name, output, part)
            return found, directory, wf.outputs.pseudonyms(request.project_id)

        found, directory, pseudonyms = await self.fetch(find)
        if what == "report":
            self._document(render_report(found.report, f"{output} of {label}").encode("utf-8"))
            return
        # `directory` is the central copy of the files that leave, never the project's folder.
        try:
            path = regular_file(directory, part)
        except NotFound as missing:
            self.fail(404, str(missing))
        if what == "notebook":
            self._document((await asyncio.to_thread(render_notebook, path, pseudonyms)).encode("utf-8"))
            return
        self.set_header("Content-Security-Policy", FILE_CSP)
        media = _media_type(path)
        self.set_header("Content-Type", media)
        if media.startswith("image/"):
            self.finish(await asyncio.to_thread(path.read_bytes))
        else:
            self.set_header("Content-Disposition", f'inline; filename="{path.name}"')
            self.finish(await asyncio.to_thread(read_text, path, pseudonyms))

    def _document(self, body: bytes) -> None:
        self.set_header("Content-Security-Policy", DOCUMENT_CSP)
        self.set_header("Content-Type", "text/html; charset=utf-8")
        self.finish(body)


def _media_type(path: Path) -> str:
    from tre.output_check.previews import IMAGES

    suffix = path.suffix.lower()
    if suffix in IMAGES and suffix != ".svg":
        return IMAGES[suffix]
    if suffix == ".svg":
        return "image/svg+xml"
    return "text/plain; charset=utf-8"


class Bundle(Base):
    @web.authenticated
    async def get(self, label: str):
        name, label = self.user_name, label.upper()
        path = await self.fetch(lambda wf, _: wf.bundle(label, name))
        self.set_header("Content-Type", "application/zip")
        self.set_header("Content-Disposition", f'attachment; filename="{path.name}"')
        with open(path, "rb") as f:
            while chunk := f.read(1 << 20):
                self.write(chunk)
                await self.flush()
        self.finish()


def routes(prefix: str) -> list[tuple[str, type[Base]]]:
    p = prefix
    return [
        (rf"{p}", Home),
        (rf"{p}login", Login),
        (rf"{p}logout", Logout),
        (rf"{p}projects/({NAME})", ProjectPage),
        (rf"{p}projects/({NAME})/requests", NewRequest),
        (rf"{p}projects/({NAME})/queue/({NAME})/report", QueuedReport),
        (rf"{p}requests/({LABEL})", RequestPage),
        (rf"{p}requests/({LABEL})/bundle", Bundle),
        (rf"{p}requests/({LABEL})/outputs", AddOutput),
        (rf"{p}requests/({LABEL})/comments", Comment),
        (rf"{p}requests/({LABEL})/(submit|withdraw|reopen|review|release|return)", RequestAction),
        (rf"{p}requests/({LABEL})/outputs/({NAME})/(context|exception|remove|vote)", OutputAction),
        (rf"{p}requests/({LABEL})/outputs/({NAME})/(report)", OutputDocument),
        (rf"{p}requests/({LABEL})/outputs/({NAME})/(files|notebook)/(.+)", OutputDocument),
    ]


class HubLogin:
    """Under the hub: who is asking is asked of the hub asynchronously, with a time limit.

    jupyterhub's HubAuthenticated answers `current_user` with a *blocking* call to the hub,
    run on a pool of one thread. Checking a form's XSRF token can ask for `current_user`
    again from inside that call (a POST whose `_xsrf` cookie does not match the login, with
    any `_xsrf` field): the one thread then waits for itself, the event loop waits for the
    thread, and the service never answers anyone again, nor its SIGTERM. Here the user is
    looked up once, in `prepare`, without blocking; `get_current_user` only reads the answer.
    """

    hub_timeout = HUB_TIMEOUT

    def get_current_user(self):
        return getattr(self, "_hub_user", None)

    async def prepare(self):
        from jupyterhub.services.auth import UserNotAllowed

        try:
            model = await asyncio.wait_for(self.hub_auth.get_user(self, sync=False), self.hub_timeout)
        except TimeoutError:
            raise web.HTTPError(503, "the hub did not answer in time: try again in a moment") from None
        user = None
        if model:
            try:
                user = self.check_hub_user(model)
            except UserNotAllowed:
                raise web.HTTPError(403, f"{model.get('name')} may not use the review page") from None
        self._hub_user = user
        self.current_user = user
        if user:
            self.hub_auth._persist_url_token_if_set(self)


def _hub_auth(settings: Settings):
    from jupyterhub.services.auth import HubOAuth

    # A token revoked at the hub (logout) stops working here within seconds, not minutes.
    return HubOAuth(cache_max_age=HUB_CACHE_SECONDS)


def make_app(
    settings: Settings, *, prefix: str = "/", hub: bool = False, store: Store | None = None
) -> web.Application:
    """The review page's application at `prefix`; under the hub, every page needs hub OAuth."""
    prefix = "/" + prefix.strip("/") + "/" if prefix.strip("/") else "/"
    review = Review(settings, store or Store(settings.db_url), prefix, hub)
    handlers = []
    hub_auth = _hub_auth(settings) if hub else None
    for pattern, handler in routes(prefix):
        if hub:
            from jupyterhub.services.auth import HubOAuthenticated

            handler = type(handler.__name__, (HubLogin, HubOAuthenticated, handler), {"_hub_auth": hub_auth})
        handlers.append((pattern, handler, {"review": review}))
    if hub:
        from jupyterhub.services.auth import HubOAuthCallbackHandler

        class Callback(HubLogin, HubOAuthCallbackHandler):
            _hub_auth = hub_auth

            async def get(self):
                try:
                    await asyncio.wait_for(super().get(), self.hub_timeout)
                except TimeoutError:
                    raise web.HTTPError(503, "the hub did not answer in time: try again in a moment") from None

        handlers.append((rf"{prefix}oauth_callback", Callback))
    return web.Application(
        handlers,
        template_path=str(HERE / "templates"),
        static_path=str(HERE / "static"),
        static_url_prefix=f"{prefix}static/",
        cookie_secret=secrets.token_bytes(32),  # per process: a restart logs everyone out
        xsrf_cookies=True,
        xsrf_cookie_kwargs={"httponly": True, "samesite": "Strict", "path": prefix},
        login_url=f"{prefix}login",
        autoescape="xhtml_escape",
    )


def serve(settings: Settings, *, hub: bool = False, ip: str | None = None, port: int | None = None, info=print) -> None:
    """Run the review page until SIGTERM or SIGINT."""
    if hub:
        ip, port, prefix = service_address(SERVICE_NAME, "tre review serve")
    else:
        ip, port, prefix = ip or settings.review_ip, port or settings.review_port, "/"
    store = Store(settings.db_url)
    store.check_ready()
    app = make_app(settings, prefix=prefix, hub=hub, store=store)
    started = f"review page on http://{ip}:{port}{prefix} ({'hub OAuth' if hub else 'own login'}); Ctrl-C stops it"
    run_until_stopped(app, ip, port, hub=hub, setting="review_port", started=started, info=info)
