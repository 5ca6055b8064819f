"""A researcher's side of the hub, as the tests drive it: REST API and the kernel websocket."""

from __future__ import annotations

import asyncio
import http.cookiejar
import json
import re
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from dataclasses import dataclass

from tornado.httpclient import HTTPRequest
from tornado.websocket import websocket_connect


@dataclass
class Response:
    status: int
    body: dict | str


def request(url: str, method: str = "GET", *, token: str | None = None, body: dict | None = None) -> Response:
    data = json.dumps(body).encode() if body is not None else (b"" if method in ("POST", "DELETE") else None)
    headers = {"Authorization": f"token {token}"} if token else {}
    req = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=120) as r:
            status, raw = r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        status, raw = e.code, e.read().decode()
    try:
        return Response(status, json.loads(raw) if raw else {})
    except json.JSONDecodeError:
        return Response(status, raw)


class Browser:
    """A person's browser without scripts: a cookie jar, redirects followed, forms posted."""

    def __init__(self, url: str, timeout: float = 60):
        self.url, self.timeout = url, timeout
        self.jar = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(self.jar))

    def open(self, path: str, form: dict | None = None, headers: dict | None = None) -> Response:
        data = urllib.parse.urlencode(form).encode() if form is not None else None
        req = urllib.request.Request(f"{self.url}{path}", data=data, headers=headers or {})
        try:
            with self.opener.open(req, timeout=self.timeout) as r:
                return Response(r.status, r.read().decode(errors="replace"))
        except urllib.error.HTTPError as e:
            return Response(e.code, e.read().decode(errors="replace"))

    def login(self, name: str, password: str, code: str) -> Response:
        page = self.open("/hub/login")
        xsrf = re.search(r'name="_xsrf" value="([^"]+)"', page.body).group(1)
        return self.open("/hub/login", {"username": name, "password": password, "2fa": code, "_xsrf": xsrf})

    def plant(self, name: str, value: str, path: str = "/") -> None:
        """A cookie put into the browser by someone else (a sibling site, a shared machine)."""
        host = urllib.parse.urlparse(self.url).hostname
        self.jar.set_cookie(
            http.cookiejar.Cookie(
                0, name, value, None, False, host, False, False, path, True, False, None, False, None, None, {}
            )
        )

    def cookies(self) -> dict[str, str]:
        return {c.name: c.value for c in self.jar}

    def replay(self, path: str, cookies: dict[str, str], form: dict | None = None) -> Response:
        """GET (or POST `form`) `path` with exactly these cookies, redirects not followed: what
        someone who copied or chose them would send."""
        header = "; ".join(f"{k}={v}" for k, v in cookies.items())
        data = urllib.parse.urlencode(form).encode() if form is not None else None
        req = urllib.request.Request(f"{self.url}{path}", data=data, headers={"Cookie": header})
        opener = urllib.request.build_opener(_NoRedirect)
        try:
            with opener.open(req, timeout=self.timeout) as r:
                return Response(r.status, r.read().decode(errors="replace"))
        except urllib.error.HTTPError as e:
            return Response(e.code, e.headers.get("Location", ""))


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


def login_token(url: str, name: str, password: str, code: str) -> Response:
    """Log in through the REST API: a token for `name` in exchange for password and 2FA code."""
    return request(
        f"{url}/hub/api/users/{name}/tokens",
        "POST",
        body={"auth": {"username": name, "password": password, "2fa": code}, "note": "e2e"},
    )


@dataclass
class KernelResult:
    stdout: str
    error: str | None


class Researcher:
    def __init__(self, url: str, name: str, token: str):
        self.url, self.name, self.token = url, name, token

    def api(self, path: str, method: str = "GET", body: dict | None = None) -> Response:
        return request(f"{self.url}/hub/api{path}", method, token=self.token, body=body)

    def spawn(self, project: str) -> Response:
        return self.api(f"/users/{self.name}/servers/{project}", "POST", {})

    def server(self, project: str) -> dict | None:
        return (self.api(f"/users/{self.name}").body.get("servers") or {}).get(project)

    def wait_ready(self, project: str, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            server = self.server(project)
            if server and server.get("ready"):
                return
            time.sleep(0.3)
        raise AssertionError(f"{self.name}/{project} not ready within {timeout} s")

    def wait_stopped(self, project: str, timeout: float = 30) -> float:
        start = time.monotonic()
        while time.monotonic() - start < timeout:
            if self.server(project) is None:
                return time.monotonic() - start
            time.sleep(0.3)
        raise AssertionError(f"{self.name}/{project} still running after {timeout} s")

    def stop(self, project: str) -> None:
        self.api(f"/users/{self.name}/servers/{project}", "DELETE")
        self.wait_stopped(project)

    def server_get(self, project: str, path: str) -> Response:
        return request(f"{self.url}/user/{self.name}/{project}/{path}", token=self.token)

    def run(self, project: str, code: str, timeout: float = 60) -> KernelResult:
        """Start a kernel in the project's server, run `code`, return its stdout (and error)."""
        base = f"{self.url}/user/{self.name}/{project}"
        kernel = request(f"{base}/api/kernels", "POST", token=self.token, body={"name": "python3"})
        assert kernel.status == 201, kernel
        try:
            return asyncio.run(self._execute(base, kernel.body["id"], code, timeout))
        finally:
            request(f"{base}/api/kernels/{kernel.body['id']}", "DELETE", token=self.token)

    async def _execute(self, base: str, kernel_id: str, code: str, timeout: float) -> KernelResult:
        ws_url = base.replace("http://", "ws://") + f"/api/kernels/{kernel_id}/channels"
        conn = await websocket_connect(HTTPRequest(ws_url, headers={"Authorization": f"token {self.token}"}))
        msg_id = uuid.uuid4().hex
        conn.write_message(
            json.dumps(
                {
                    "header": {
                        "msg_id": msg_id,
                        "username": self.name,
                        "session": uuid.uuid4().hex,
                        "msg_type": "execute_request",
                        "version": "5.3",
                    },
                    "parent_header": {},
                    "metadata": {},
                    "content": {"code": code, "silent": False, "store_history": False, "allow_stdin": False},
                    "channel": "shell",
                }
            )
        )
        out, error = [], None
        deadline = time.monotonic() + timeout
        try:
            while time.monotonic() < deadline:
                raw = await asyncio.wait_for(conn.read_message(), timeout=deadline - time.monotonic())
                if raw is None:
                    raise AssertionError("kernel websocket closed")
                msg = json.loads(raw)
                if msg.get("parent_header", {}).get("msg_id") != msg_id:
                    continue
                kind = msg["header"]["msg_type"]
                if kind == "stream":
                    out.append(msg["content"]["text"])
                elif kind == "error":
                    error = f"{msg['content']['ename']}: {msg['content']['evalue']}"
                elif kind == "status" and msg["content"]["execution_state"] == "idle":
                    return KernelResult("".join(out), error)
            raise AssertionError("kernel did not finish in time")
        finally:
            conn.close()
