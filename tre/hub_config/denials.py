"""Refusals inside researchers' servers, audited in the TRE's chain by the hub.

A researcher's server has no way into the metadata store (it runs sandboxed, as the project
account). When it refuses something the TRE forbids (a download through /files/, an export
through nbconvert, a terminal), it reports it to the hub at `POST /hub/api/tre/denials` with
its own API token; the hub records `access.denied` with the user and project taken from the
token, never from the report (a kernel holds the same token and could send reports of its
own: they can only ever be about its own user and project). The report gives what was
refused and the path. At most `RATE` reports per server a minute are recorded; the rest are
counted into the next recorded one.
"""

from __future__ import annotations

import json
import re
import time

from jupyterhub.apihandlers.base import APIHandler
from tornado import web

KINDS = ("download", "export", "terminal")
RATE = 30  # recorded reports per server and minute
_DIGITS = re.compile(r"\d{11,}")
_SERVER_SCOPE = re.compile(r"^access:servers!server=([^/]+)/(.+)$")


def clean_path(path: str) -> str:
    """A path as the audit chain may hold it: printable, bounded, no ID-number-shaped runs."""
    printable = "".join(c if c.isprintable() else "?" for c in str(path))[:300]
    return _DIGITS.sub("<digits>", printable)


class DenialHandler(APIHandler):
    """POST {"what": "download"|"export"|"terminal", "path": "..."} with a server's token."""

    _recent: dict[tuple[str, str], list[float]] = {}
    _dropped: dict[tuple[str, str], int] = {}

    def _server(self) -> tuple[str, str]:
        user = self.current_user
        if user is None or getattr(user, "kind", "user") != "user":
            raise web.HTTPError(403, "only a user's server reports refusals")
        servers = [m.groups() for m in map(_SERVER_SCOPE.match, self.expanded_scopes) if m]
        mine = [name for owner, name in servers if owner == user.name]
        if len(mine) != 1:
            raise web.HTTPError(403, "report refusals with the server's own token")
        return user.name, mine[0]

    async def post(self):
        user, project = self._server()
        try:
            report = json.loads(self.request.body or b"{}")
            what, path = report["what"], report.get("path", "")
        except (ValueError, KeyError, TypeError):
            raise web.HTTPError(400, 'expected {"what": ..., "path": ...}') from None
        if what not in KINDS:
            raise web.HTTPError(400, f"what must be one of {', '.join(KINDS)}")
        key = (user, project)
        now = time.monotonic()
        recent = [t for t in self._recent.get(key, []) if t > now - 60]
        if len(recent) >= RATE:
            self._dropped[key] = self._dropped.get(key, 0) + 1
            self._recent[key] = recent
            self.set_status(429)
            self.finish({"recorded": False})
            return
        self._recent[key] = [*recent, now]
        details = {"what": what, "path": clean_path(path), "via": "server"}
        if self._dropped.get(key):
            details["not_recorded_before"] = self._dropped.pop(key)
        await self.authenticator.store.record(
            actor=user, action="access.denied", object=f"project:{project}", details=details
        )
        self.set_status(201)
        self.finish({"recorded": True})
