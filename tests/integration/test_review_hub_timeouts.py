"""The review page under the hub, with a hub that does not answer: pages fail fast, alone.

The hub's API here is a real socket that accepts connections and never replies (a hub stuck
on its database, say). A page that has to ask the hub who a cookie belongs to gives up after
the page's time limit with a 503; meanwhile the service keeps serving everything else.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import time
import urllib.error
import urllib.request

import pytest
from tornado import web

from tre.config import load_settings
from tre.output_check.web import app as review_app

PREFIX = "/services/tre-review/"


@pytest.fixture
def hung_hub():
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    held = []
    stop = threading.Event()

    def accept():
        listener.settimeout(0.2)
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                held.append(listener.accept()[0])  # accepted, never answered

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{listener.getsockname()[1]}/hub/api"
    stop.set()
    thread.join()
    for conn in held:
        conn.close()
    listener.close()


@pytest.fixture
def service(initialised, tre_env, hung_hub, monkeypatch):
    for name, value in {
        "JUPYTERHUB_API_URL": hung_hub,
        "JUPYTERHUB_API_TOKEN": "service-token",
        "JUPYTERHUB_CLIENT_ID": "service-tre-review",
        "JUPYTERHUB_SERVICE_PREFIX": PREFIX,
        "JUPYTERHUB_BASE_URL": "/",
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(review_app.HubLogin, "hub_timeout", 1.5)
    app = review_app.make_app(load_settings(tre_env), prefix=PREFIX, hub=True)
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    port = {}

    def run():
        asyncio.set_event_loop(loop)
        server = app.listen(0, address="127.0.0.1")
        port["value"] = next(iter(server._sockets.values())).getsockname()[1]
        ready.set()
        loop.run_forever()
        server.stop()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    ready.wait(10)
    yield app, f"http://127.0.0.1:{port['value']}"
    loop.call_soon_threadsafe(loop.stop)
    thread.join(10)


def _get(url: str, cookie: str | None = None) -> tuple[int, float]:
    started = time.monotonic()
    request = urllib.request.Request(url, headers={"Cookie": cookie} if cookie else {})
    try:
        with urllib.request.urlopen(request, timeout=30) as r:
            status = r.status
    except urllib.error.HTTPError as e:
        status = e.code
    return status, time.monotonic() - started


def test_a_page_waiting_on_a_hung_hub_gives_up_and_blocks_no_one(service):
    app, url = service
    name = "service-tre-review"
    cookie = web.create_signed_value(app.settings["cookie_secret"], name, "a-token").decode()
    outcome = {}
    waiting = threading.Thread(target=lambda: outcome.update(hung=_get(f"{url}{PREFIX}", f"{name}={cookie}")))
    waiting.start()
    time.sleep(0.3)  # the first request now waits for the hub
    status, seconds = _get(f"{url}{PREFIX}static/review.css")
    assert status == 200 and seconds < 1.0, (status, seconds)  # served while the other one waits
    waiting.join(30)
    status, seconds = outcome["hung"]
    assert status == 503 and seconds < 5, (status, seconds)  # the page's time limit, not the hub's
