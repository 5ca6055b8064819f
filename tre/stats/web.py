"""`tre stats serve`: the statistics site (public) and the § 3-3 feedback (behind a login).

Two ways to run, as the review page:
- standalone on 127.0.0.1 with its own login for the feedback (TRE password + TOTP code);
- as the JupyterHub service `tre-stats` (`tre stats serve --hub`, started by the hub) at
  `/services/tre-stats/`, where the hub's OAuth logs municipal users in.

The published site needs no login. `tilbakemelding/<kommunenummer>/` shows a municipality's
feedback only to an active user with the `municipality` role bound to that number, or an
admin; every view and every refusal is audited. Files are served from the current `site`
and `feedback` folders (their links are switched atomically by each build), never from
outside them.
"""

from __future__ import annotations

import asyncio
import html
import os
import re
import secrets
import time
import urllib.parse

from tornado import web

from tre import audit
from tre.config import Settings
from tre.db import Store, utc_now
from tre.enums import Role
from tre.serving import run_until_stopped, service_address
from tre.stats.feedback import FEEDBACK
from tre.stats.site import SITE
from tre.users import find_user, municipalities_of

SERVICE_NAME = "tre-stats"  # the hub service; its pages are at /services/tre-stats/
USER_COOKIE = "tre_stats_user"
SESSION_HOURS = 8
LOCKOUT = (5, 300)
FILE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,120}$")
SITE_CSP = (
    # vega compiles its expressions with Function(): the site's own charts need 'unsafe-eval'.
    "default-src 'self'; script-src 'self' 'unsafe-eval'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'"
)
PRIVATE_CSP = (
    "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)
TYPES = {".html": "text/html; charset=utf-8", ".json": "application/json", ".csv": "text/csv; charset=utf-8"}


class Stats:
    def __init__(self, settings: Settings, store: Store, prefix: str, hub: bool):
        self.settings, self.store, self.prefix, self.hub = settings, store, prefix, hub
        self.failures: dict[str, list[float]] = {}

    def locked_out(self, name: str) -> bool:
        limit, window = LOCKOUT
        recent = [t for t in self.failures.get(name, []) if t > time.monotonic() - window]
        self.failures[name] = recent
        return len(recent) >= limit

    def record(self, actor: str, action: str, obj: str, details: dict) -> None:
        with self.store.transaction() as session:
            audit.record(session, at=utc_now(), actor=actor, action=action, object=obj[:200], details=details)


class Base(web.RequestHandler):
    def initialize(self, stats: Stats):
        self.stats = stats

    def set_default_headers(self):
        self.set_header("X-Content-Type-Options", "nosniff")
        self.set_header("Referrer-Policy", "no-referrer")

    def get_current_user(self):
        value = self.get_signed_cookie(USER_COOKIE, max_age_days=SESSION_HOURS / 24)
        return value.decode("utf-8") if value else None

    @property
    def user_name(self) -> str | None:
        user = self.current_user
        return user["name"] if isinstance(user, dict) else user

    def url(self, path: str = "") -> str:
        return self.stats.prefix + path.lstrip("/")

    def private_page(self, title: str, body: str, status: int = 200) -> None:
        self.set_status(status)
        self.set_header("Content-Security-Policy", PRIVATE_CSP)
        self.set_header("Cache-Control", "no-store")
        self.set_header("Content-Type", "text/html; charset=utf-8")
        who = (
            f'Innlogget som {html.escape(self.user_name)} · <a href="{self.url("logout")}">logg ut</a>'
            if self.current_user
            else ""
        )
        self.finish(
            f"""<!doctype html><html lang="nb"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<link rel="stylesheet" href="{self.url("assets/site.css")}"></head><body>
<header><a class="home" href="{self.url()}">KPR-statistikk</a> <span class="en">{who}</span></header>
<main><h1>{html.escape(title)}</h1>{body}</main></body></html>"""
        )

    def write_error(self, status_code: int, **kwargs):
        self.private_page("Feil", f"<p>{html.escape(self._reason)}</p>", status_code)


class SiteFile(Base):
    """The published site: static files from the current `site` folder, for everyone."""

    async def get(self, path: str):
        root = self.stats.settings.stats_dir / SITE
        parts = [p for p in path.split("/") if p]
        if not root.is_dir():
            self.private_page(
                "Ingen statistikk ennå",
                "<p>Statistikken er ikke publisert ennå: <code>tre stats build</code> og <code>tre stats site</code>.</p>",
                404,
            )
            return
        if any(not FILE.fullmatch(p) for p in parts):
            raise web.HTTPError(404)
        target = root.joinpath(*parts) if parts else root
        if target.is_dir():
            if path and not path.endswith("/"):
                self.redirect(self.url(path + "/"), status=301)
                return
            target = target / "index.html"
        resolved = target.resolve()
        if not resolved.is_file() or not resolved.is_relative_to(root.resolve()):
            raise web.HTTPError(404)
        self.set_header("Content-Security-Policy", SITE_CSP)
        self.set_header("Content-Type", TYPES.get(resolved.suffix, _media(resolved.suffix)))
        if resolved.suffix == ".px":
            self.set_header("Content-Disposition", f'attachment; filename="{resolved.name}"')
        self.finish(await asyncio.to_thread(resolved.read_bytes))


def _media(suffix: str) -> str:
    return {
        ".js": "text/javascript; charset=utf-8",
        ".css": "text/css; charset=utf-8",
        ".svg": "image/svg+xml",
        ".px": "text/plain; charset=utf-8",
    }.get(suffix, "application/octet-stream")


class FeedbackIndex(Base):
    @web.authenticated
    async def get(self):
        name = self.user_name
        numbers, admin = await asyncio.to_thread(self._access, name)
        root = self.stats.settings.stats_dir / FEEDBACK
        available = sorted(p.name for p in root.iterdir()) if root.is_dir() else []
        shown = available if admin else [n for n in numbers if n in available]
        items = "".join(f'<li><a href="{self.url(f"tilbakemelding/{n}/")}">{n}</a></li>' for n in shown)
        if not numbers and not admin:
            await asyncio.to_thread(
                self.stats.record, name, "access.denied", "feedback", {"reason": "no municipality role"}
            )
            self.private_page(
                "Ingen tilgang",
                "<p>Tilbakemeldingene er for brukere med kommunerollen (municipality), bundet til sine kommunenummer.</p>",
                403,
            )
            return
        self.private_page(
            "Tilbakemelding til kommunene (§ 3-3)", f"<ul>{items or '<li>Ingen tilbakemeldinger ennå.</li>'}</ul>"
        )

    def _access(self, name: str) -> tuple[list[str], bool]:
        with self.stats.store.transaction() as session:
            user = find_user(session, name)
            if user is None or not user.active:
                return [], False
            numbers = municipalities_of(session, name) if user.has_role(Role.MUNICIPALITY) else []
            return numbers, user.has_role(Role.ADMIN)


class FeedbackFile(FeedbackIndex):
    @web.authenticated
    async def get(self, number: str, path: str):
        name = self.user_name
        numbers, admin = await asyncio.to_thread(self._access, name)
        where = f"feedback:{number}/{path}"
        if number not in numbers and not admin:
            await asyncio.to_thread(
                self.stats.record, name, "access.denied", where, {"reason": "not a user of this municipality"}
            )
            self.private_page("Ingen tilgang", f"<p>Du er ikke bruker for kommune {html.escape(number)}.</p>", 403)
            return
        file = path or "index.html"
        if not FILE.fullmatch(file):
            raise web.HTTPError(404)
        folder = (self.stats.settings.stats_dir / FEEDBACK / number).resolve()
        target = (folder / file).resolve()
        if not target.is_relative_to(folder) or not target.is_file():
            raise web.HTTPError(404)
        await asyncio.to_thread(self.stats.record, name, "feedback.view", where, {})
        self.set_header("Content-Security-Policy", PRIVATE_CSP)
        self.set_header("Cache-Control", "no-store")
        self.set_header("Content-Type", TYPES.get(target.suffix, "application/octet-stream"))
        if target.suffix in (".csv", ".json"):
            self.set_header("Content-Disposition", f'attachment; filename="{number}-{target.name}"')
        self.finish(await asyncio.to_thread(target.read_bytes))


class Login(Base):
    def get(self):
        if self.stats.hub:
            raise web.HTTPError(404)
        self._form(self.get_argument("next", self.url("tilbakemelding/")), None)

    def _form(self, next_url: str, error: str | None, status: int = 200) -> None:
        code = (
            '<label>Engangskode <input name="code" autocomplete="one-time-code" inputmode="numeric"></label>'
            if self.stats.settings.hub_two_factor
            else ""
        )
        message = f'<p class="error">{html.escape(error)}</p>' if error else ""
        self.private_page(
            "Logg inn",
            f"""{message}<form method="post" action="{self.url("login")}">{self.xsrf_form_html()}
<input type="hidden" name="next" value="{html.escape(next_url)}">
<p><label>Brukernavn <input name="username" autocomplete="username"></label></p>
<p><label>Passord <input name="password" type="password" autocomplete="current-password"></label></p>
<p>{code}</p><p><button type="submit">Logg inn</button></p></form>""",
            status,
        )

    async def post(self):
        if self.stats.hub:
            raise web.HTTPError(404)
        from tre.credentials import check_login

        name = self.get_body_argument("username", "").strip()
        password = self.get_body_argument("password", "")
        code = self.get_body_argument("code", "")
        next_url = self._safe_next(self.get_body_argument("next", ""))
        two_factor = self.stats.settings.hub_two_factor
        if self.stats.locked_out(name):
            ok, reason = False, "locked out"
        else:

            def check():
                from tre.sealed import login_box

                with self.stats.store.transaction() as session:
                    box = login_box(self.stats.settings, os.environ, session, now=utc_now()) if two_factor else None
                    return check_login(session, name, password, code, two_factor=two_factor, box=box)

            result = await asyncio.to_thread(check)
            ok, reason = result.ok, result.reason
        actor = name if name and len(name) <= 64 and name.isprintable() else "(invalid name)"
        await asyncio.to_thread(
            self.stats.record,
            actor,
            "stats.login" if ok else "stats.login_failed",
            "stats-site",
            {} if ok else {"reason": reason},
        )
        if not ok:
            self.stats.failures.setdefault(name, []).append(time.monotonic())
            self._form(next_url, "Innloggingen mislyktes: sjekk navn, passord og kode.", 403)
            return
        self.stats.failures.pop(name, None)
        self.set_signed_cookie(
            USER_COOKIE, name, expires_days=None, httponly=True, samesite="Strict", path=self.stats.prefix
        )
        self.redirect(next_url, status=303)

    def _safe_next(self, target: str) -> str:
        parsed = urllib.parse.urlparse(target)
        if parsed.scheme or parsed.netloc or not target.startswith(self.stats.prefix + "tilbakemelding/"):
            return self.url("tilbakemelding/")
        return target


class Logout(Base):
    def get(self):
        self.clear_cookie(USER_COOKIE, path=self.stats.prefix)
        self.redirect("/hub/logout" if self.stats.hub else self.url(), status=303)


def make_app(
    settings: Settings, *, prefix: str = "/", hub: bool = False, store: Store | None = None
) -> web.Application:
    prefix = "/" + prefix.strip("/") + "/" if prefix.strip("/") else "/"
    stats = Stats(settings, store or Store(settings.db_url), prefix, hub)
    private = [
        (rf"{prefix}tilbakemelding/?", FeedbackIndex),
        (rf"{prefix}tilbakemelding/(\d{{4}})/(.*)", FeedbackFile),
    ]
    handlers = []
    for pattern, handler in private:
        if hub:
            from jupyterhub.services.auth import HubOAuthenticated

            handler = type(handler.__name__, (HubOAuthenticated, handler), {})
        handlers.append((pattern, handler, {"stats": stats}))
    if hub:
        from jupyterhub.services.auth import HubOAuthCallbackHandler

        handlers.append((rf"{prefix}oauth_callback", HubOAuthCallbackHandler))
    handlers += [
        (rf"{prefix}login", Login, {"stats": stats}),
        (rf"{prefix}logout", Logout, {"stats": stats}),
        (rf"{prefix}(.*)", SiteFile, {"stats": stats}),
    ]
    return web.Application(
        handlers,
        cookie_secret=secrets.token_bytes(32),
        xsrf_cookies=True,
        xsrf_cookie_kwargs={"httponly": True, "samesite": "Strict", "path": prefix},
        login_url=f"{prefix}login",
    )


def serve(settings: Settings, *, hub: bool = False, ip: str | None = None, port: int | None = None, info=print) -> None:
    """Run the statistics site until SIGTERM or SIGINT."""
    if hub:
        ip, port, prefix = service_address(SERVICE_NAME, "tre stats serve")
    else:
        ip, port, prefix = ip or settings.stats_ip, port or settings.stats_port, "/"
    store = Store(settings.db_url)
    store.check_ready()
    app = make_app(settings, prefix=prefix, hub=hub, store=store)
    login = "hub OAuth" if hub else "own login"
    started = f"statistics site on http://{ip}:{port}{prefix} ({login} for the feedback); Ctrl-C stops it"
    run_until_stopped(app, ip, port, hub=hub, setting="stats_port", started=started, info=info)


def site_url(settings: Settings) -> str:
    return f"http://{settings.stats_ip}:{settings.stats_port}/"
