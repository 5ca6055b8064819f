"""The hub's address in the servers' network: the few API calls a server needs, nothing else.

From a server's network namespace the only reachable port is the hub's API address
(`hub_netns_pool`'s first address, `hub_api_port`). JupyterHub serves its whole application on
the port it binds: the login form, the token page, `POST /hub/api/users/NAME/tokens` with a
password and code. A kernel that knows its user's password could mint a full token there.
So with isolation JupyterHub binds 127.0.0.1 only (the proxy and the hub's services use it),
and this gate listens on the servers' side and forwards exactly what `jupyterhub-singleuser`
calls (and the TRE's own denial reports), with the caller's token:

    GET  /hub/api                            the hub's version, at start
    GET  /hub/api/user                       who a token or cookie belongs to
    POST /hub/api/oauth2/token               the OAuth code exchange at a browser's login
    POST /hub/api/users/NAME/activity        activity, for the idle culler
    POST /hub/api/tre/denials                what the server refused (audited by the hub)

Anything else gets a 404 from the gate and a line in the hub's log. It runs in a thread of
`tre hub` (run_hub) with its own event loop; bodies are limited to 64 KiB, upstream calls to
30 s.
"""

from __future__ import annotations

import asyncio
import logging
import re
import threading

from tornado import httpclient, httpserver, web

ALLOWED = (
    ("GET", re.compile(r"^/hub/api/?$")),
    ("GET", re.compile(r"^/hub/api/user/?$")),
    ("POST", re.compile(r"^/hub/api/oauth2/token/?$")),
    ("POST", re.compile(r"^/hub/api/users/[^/]{1,64}/activity/?$")),
    ("POST", re.compile(r"^/hub/api/tre/denials/?$")),
)
FORWARDED_REQUEST = ("Authorization", "Content-Type", "Accept")
FORWARDED_RESPONSE = ("Content-Type", "X-JupyterHub-Version")
MAX_BODY = 64 * 1024
UPSTREAM_TIMEOUT = 30
log = logging.getLogger("tre.apigate")


def is_allowed(method: str, path: str) -> bool:
    return any(method == m and pattern.match(path) for m, pattern in ALLOWED)


class Gate(web.RequestHandler):
    SUPPORTED_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS")

    def initialize(self, upstream: str, client: httpclient.AsyncHTTPClient):
        self.upstream, self.client = upstream, client

    async def _forward(self, *args):
        method, path = self.request.method, self.request.path
        if not is_allowed(method, path):
            log.warning(
                "refused %s %s from %s: not an API call a server needs", method, path[:200], self.request.remote_ip
            )
            raise web.HTTPError(404)
        headers = {k: self.request.headers[k] for k in FORWARDED_REQUEST if k in self.request.headers}
        headers["X-Forwarded-For"] = self.request.remote_ip
        try:
            response = await self.client.fetch(
                self.upstream + self.request.uri,
                method=method,
                headers=headers,
                body=self.request.body if method == "POST" else None,
                request_timeout=UPSTREAM_TIMEOUT,
                follow_redirects=False,
                raise_error=False,
            )
        except OSError:
            raise web.HTTPError(502) from None
        self.set_status(response.code)
        for name in FORWARDED_RESPONSE:
            if name in response.headers:
                self.set_header(name, response.headers[name])
        if response.body:
            self.write(response.body)

    get = post = put = patch = delete = head = options = _forward

    def write_error(self, status_code, **kwargs):
        self.set_header("Content-Type", "application/json")
        self.finish(f'{{"status": {status_code}, "message": "not available from a server"}}')


class RunningGate:
    """The gate in a thread of its own; `stop()` ends it."""

    def __init__(self, listen: tuple[str, int], upstream: str):
        self.listen, self.upstream = listen, upstream.rstrip("/")
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="tre-apigate", daemon=True)

    def start(self) -> RunningGate:
        self._thread.start()
        self._ready.wait(10)
        if self._error:
            raise self._error
        return self

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        try:
            client = httpclient.AsyncHTTPClient()
            app = web.Application([(r".*", Gate, {"upstream": self.upstream, "client": client})])
            server = httpserver.HTTPServer(app, max_body_size=MAX_BODY, idle_connection_timeout=60)
            server.listen(self.listen[1], address=self.listen[0])
        except BaseException as e:  # noqa: BLE001 - reported to start()
            self._error = e
            self._ready.set()
            return
        self._ready.set()
        self._loop.run_forever()
        server.stop()

    def stop(self) -> None:
        if self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
