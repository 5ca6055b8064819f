"""The review page as tests meet it: `tre review serve` as a real process, and a small client
that logs in, keeps cookies and sends the XSRF token with every form, as a browser does."""

from __future__ import annotations

import http.cookiejar
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from totp_codes import fresh_code

TRE = str(Path(sys.executable).parent / "tre")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def review_page(env: dict, log: Path):
    """`tre review serve` on a free port; stopped (by its pid) at the end."""
    with serving(["review", "serve"], env, log, "the review page") as url:
        yield url


@contextmanager
def serving(command: list[str], env: dict, log: Path, what: str):
    """`tre COMMAND --port P` as a real process on a free port, until the block ends (stopped by its pid)."""
    port = free_port()
    with open(log, "wb") as out:
        proc = subprocess.Popen([TRE, *command, "--port", str(port)], env=env, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError(f"{what} did not start: {log.read_text()}") from None
                time.sleep(0.1)
        yield url
    finally:
        os.kill(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()


@dataclass
class Page:
    status: int
    url: str
    body: bytes
    headers: dict

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


class Client:
    def __init__(self, base: str, follow: bool = True):
        self.base = base
        self.jar = http.cookiejar.CookieJar()
        handlers = [urllib.request.HTTPCookieProcessor(self.jar)]
        if not follow:
            handlers.append(_NoRedirect())
        self.opener = urllib.request.build_opener(*handlers)

    def get(self, path: str) -> Page:
        return self._open(urllib.request.Request(self.base + path))

    def post(self, path: str, data: dict | None = None, *, xsrf: bool = True) -> Page:
        fields = dict(data or {})
        if xsrf:
            fields["_xsrf"] = self.xsrf()
        body = urllib.parse.urlencode(fields, doseq=True).encode()  # a list: a field given several times
        return self._open(urllib.request.Request(self.base + path, data=body, method="POST"))

    def xsrf(self) -> str:
        for cookie in self.jar:
            if cookie.name == "_xsrf":
                return cookie.value
        self.get("/login")  # any page with a form sets it
        return self.xsrf()

    def login(self, name: str, password: str, secret: str) -> Page:
        self.get("/login")
        return self.post("/login", {"username": name, "password": password, "code": fresh_code(secret), "next": "/"})

    def _open(self, request) -> Page:
        try:
            with self.opener.open(request, timeout=60) as r:
                return Page(r.status, r.url, r.read(), dict(r.headers))
        except urllib.error.HTTPError as e:
            return Page(e.code, e.url, e.read(), dict(e.headers))


def flash(page: Page) -> str:
    """The message a page shows after a form (what happened, or why not)."""
    match = re.search(r'id="flash">([^<]*)<', page.text)
    return match.group(1).replace("&#39;", "'").replace("&quot;", '"').replace("&amp;", "&") if match else ""
