"""The review page's tornado application: handlers, login, and `serve`."""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import signal
import time
import urllib.parse
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tornado import web

from tre.config import Settings
from tre.db import Store, utc_now
from tre.enums import RequestStatus, Role
from tre.errors import ConfigError, NotFound, PermissionDenied, UserError
from tre.output_check import policies
from tre.output_check.intake import WorkspaceOutputs
from tre.output_check.previews import build_previews, read_text, regular_file, render_notebook, render_report
from tre.output_check.requests import Requests, parse_label
from tre.output_check.storage import SqlRequestStore
from tre.output_check.web import SERVICE_NAME
from tre.output_check.workflow import CONTEXT_FIELDS, VOTABLE

HERE = Path(__file__).resolve().parent
USER_COOKIE = "tre_review_user"
FLASH_COOKIE = "tre_review_flash"
SESSION_HOURS = 8
LOCKOUT = (5, 300)  # failed logins, within seconds: the name is locked out for that long
NAME = r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}"
LABEL = r"[Rr][Ee][Qq]-\d{1,9}"

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

    def call(self, step: Callable[[Requests, SqlRequestStore], Any]) -> Any:
        with self.store.transaction() as session:
            store = SqlRequestStore(session)
            outputs = WorkspaceOutputs(self.settings.projects_dir, ledger_dir=self.settings.ledger_dir)
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
        except NotFound as missing:
            self.fail(404, str(missing))
        except UserError as problem:
            self.fail(400, str(problem))

    async def act(self, step, back: str, done: str | Callable[[Any], str]) -> None:
        """Run a changing step, then go back to `back` with what happened (or why not)."""
        try:
            result = await self.review.run(step)
        except UserError as problem:
            if isinstance(problem, PermissionDenied):
                await self._audit_refusal(problem)
            self.flash(str(problem), "error")
        else:
            self.flash(done(result) if callable(done) else done)
        self.redirect(self.url(back), status=303)

    async def _audit_refusal(self, refusal: UserError) -> None:
        name, path = self.user_name or "(nobody)", self.request.path

        def record(_, store):
            store.audit(
                actor=name,
                action="access.denied",
                object=f"review-page:{path}"[:200],
                details={"reason": str(refusal)},
                now=utc_now(),
            )

        await self.review.run(record)

    def write_error(self, status_code: int, **kwargs):
        reason = self._reason if status_code != 500 else "the review page failed; the error is in its log"
        self.render("error.html", status=status_code, message=reason)


class Home(Base):
    @web.authenticated
    async def get(self):
        name = self.user_name

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
                        "queued": len(wf.outputs.queued(project.id)),
                    }
                )
            return {"officer": officer, "queue": wf.queue(name) if officer else [], "projects": projects}

        self.render("home.html", **await self.fetch(page))


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
                return check_login(store.session, name, password, code, two_factor=two_factor)

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
        path = await self.fetch(lambda wf, _: wf.queued_report(project_id, name, output))
        try:
            stored = json.loads(path.read_text(encoding="utf-8"))
            page = render_report(stored, f"{output} (queued in {project_id})")
        except (OSError, ValueError, KeyError, TypeError):
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
    try:
        policies.check_reviewer(person, request, project)
        policies.check_review_slot(request, name)
        may_review, why_not = True, None
    except (PermissionDenied, UserError) as refusal:
        may_review, why_not = False, str(refusal)
    review = request.review_of(name)
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
        directory = wf.outputs.output_dir(project.id, request.label, f["name"])
        try:
            f["previews"] = build_previews(directory, [c["name"] for c in f["files"]], pseudonyms)
        except NotFound as missing:
            f["previews"], f["missing"] = [], str(missing)
        f["failed"] = f["check_status"] == "fail"
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
        output = self.get_body_argument("output", "")
        context = {k: self.get_body_argument(k, "") for k in CONTEXT_FIELDS}
        await self.act(
            lambda wf, _: wf.add(label, name, output, context),
            f"requests/{label}",
            lambda f: f"added {f.name} (check {f.check_status})",
        )


class OutputAction(Base):
    @web.authenticated
    async def post(self, label: str, output: str, step: str):
        name, label = self.user_name, label.upper()
        back = f"requests/{label}#output-{output}"
        if step == "context":
            context = {k: self.get_body_argument(k, "") for k in CONTEXT_FIELDS}
            await self.act(lambda wf, _: wf.describe(label, name, output, context), back, f"{output} described")
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
            self.finish(path.read_bytes())
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
        (rf"{p}requests/({LABEL})/(submit|withdraw|reopen|review|release|return)", RequestAction),
        (rf"{p}requests/({LABEL})/outputs/({NAME})/(context|remove|vote)", OutputAction),
        (rf"{p}requests/({LABEL})/outputs/({NAME})/(report)", OutputDocument),
        (rf"{p}requests/({LABEL})/outputs/({NAME})/(files|notebook)/(.+)", OutputDocument),
    ]


def make_app(
    settings: Settings, *, prefix: str = "/", hub: bool = False, store: Store | None = None
) -> web.Application:
    """The review page's application at `prefix`; under the hub, every page needs hub OAuth."""
    prefix = "/" + prefix.strip("/") + "/" if prefix.strip("/") else "/"
    review = Review(settings, store or Store(settings.db_url), prefix, hub)
    handlers = []
    for pattern, handler in routes(prefix):
        if hub:
            from jupyterhub.services.auth import HubOAuthenticated

            handler = type(handler.__name__, (HubOAuthenticated, handler), {})
        handlers.append((pattern, handler, {"review": review}))
    if hub:
        from jupyterhub.services.auth import HubOAuthCallbackHandler

        handlers.append((rf"{prefix}oauth_callback", HubOAuthCallbackHandler))
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
        service_url = os.environ.get("JUPYTERHUB_SERVICE_URL")
        if not service_url:
            raise ConfigError("`tre review serve --hub` runs as the hub's service: start the hub with `tre hub`")
        parsed = urllib.parse.urlparse(service_url)
        ip, port = parsed.hostname, parsed.port
        prefix = os.environ.get("JUPYTERHUB_SERVICE_PREFIX", f"/services/{SERVICE_NAME}/")
    else:
        ip, port, prefix = ip or settings.review_ip, port or settings.review_port, "/"
        if ip not in ("127.0.0.1", "::1", "localhost"):
            info(f"WARNING: the review page on {ip} speaks plain HTTP: put a TLS-terminating proxy in front of it")
    store = Store(settings.db_url)
    store.check_ready()
    app = make_app(settings, prefix=prefix, hub=hub, store=store)

    async def main():
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        try:
            server = app.listen(port, address=ip, xheaders=hub)
        except OSError as e:
            raise ConfigError(f"cannot listen on {ip}:{port} ({e.strerror}): set review_port to a free port") from None
        info(f"review page on http://{ip}:{port}{prefix} ({'hub OAuth' if hub else 'own login'}); Ctrl-C stops it")
        await stop.wait()
        server.stop()

    asyncio.run(main())
