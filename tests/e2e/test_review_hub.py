"""The review page as the hub's service: reached through the hub's proxy, logged in by hub OAuth.

A real JupyterHub (isolation off: the page does not depend on it) starts `tre review serve
--hub` as the managed service tre-review; a person logs in to the hub once and is let into
the page at /services/tre-review/ without another login.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from .hubclient import request

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def _hub_login(browser, hub, name: str):
    page = browser.new_page(viewport={"width": 1280, "height": 800})
    page.goto(f"{hub.url}/hub/login")
    page.fill("#username_input", name)
    page.fill("#password_input", hub.logins[name].password)
    page.fill("input[name='2fa']", hub.code_for(name))
    page.click("#login_submit")
    page.wait_for_url("**/hub/home")
    return page


def test_the_review_page_behind_hub_oauth(dev_hub):
    playwright = pytest.importorskip("playwright.sync_api")
    if not Path("/usr/bin/chromium").exists():
        pytest.skip("chromium is not installed (make setup installs it)")
    hub = dev_hub
    assert hub.cli("user", "add", "nils", "--role", "officer")[0] == 0  # an officer outside project alpha
    service = f"{hub.url}/services/tre-review/"

    anonymous = request(service)  # urllib follows the redirects to the hub's login page
    assert anonymous.status == 200 and "/hub/login" in str(anonymous.body)

    ARTIFACTS.mkdir(exist_ok=True)
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        try:
            rita = _hub_login(browser, hub, "rita")
            rita.click("#tre-review")  # from the hub's home page; OAuth, no second login, no "authorize" step
            rita.wait_for_selector("#projects")
            assert rita.url.startswith(service)
            assert "alpha" in rita.inner_text("#projects") and rita.locator("#queue").count() == 0
            rita.click("text=alpha")
            rita.fill("#title", "made through the hub")
            rita.click("#new")  # a form post through the proxy, with the page's XSRF token
            rita.wait_for_selector("#add-output")
            assert "add outputs from the queue" in rita.inner_text("#flash")
            rita.screenshot(path=str(ARTIFACTS / "review-hub-researcher.png"), full_page=True)

            nils = _hub_login(browser, hub, "nils")
            nils.goto(service)
            nils.wait_for_selector("#queue")
            nils.screenshot(path=str(ARTIFACTS / "review-hub-officer.png"), full_page=True)
        finally:
            browser.close()
    made = [e for e in hub.audit("request.create") if e["actor"] == "rita"]
    assert len(made) == 1 and made[0]["details"]["project"] == "alpha"


def _review_service_pid(hub) -> int:
    """The pid of the hub's tre-review service (a child of JupyterHub)."""
    import json
    import os

    jupyterhub = json.loads((hub.settings.hub_dir / "hub.json").read_text())["jupyterhub_pid"]
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == jupyterhub and b"review" in cmdline and b"--hub" in cmdline:
            return int(entry)
    raise AssertionError("the tre-review service is not running")


def test_a_crafted_xsrf_post_does_not_take_the_review_page_down(dev_hub):
    """A researcher's POST with an _xsrf cookie and field of their choosing used to make the
    service wait on itself forever (and ignore SIGTERM, so the hub could not stop)."""
    import os
    import signal
    import time

    from .hubclient import Browser

    hub = dev_hub
    service = "/services/tre-review/"
    rita = Browser(hub.url, timeout=20)
    assert rita.login("rita", hub.logins["rita"].password, hub.code_for("rita")).status == 200
    assert "alpha" in rita.open(service).body  # logged in to the page by the hub's OAuth
    chosen = {k: v for k, v in rita.cookies().items() if k != "_xsrf"} | {"_xsrf": "chosen-by-rita"}
    started = time.monotonic()
    attack = rita.replay(f"{service}projects/alpha/requests", chosen, form={"_xsrf": "chosen-by-rita", "title": "x"})
    assert attack.status in (302, 303, 403) and time.monotonic() - started < 15
    # Another user's pages work, and so do rita's.
    olav = Browser(hub.url, timeout=20)
    assert olav.login("olav", hub.logins["olav"].password, hub.code_for("olav")).status == 200
    assert olav.open(service).status == 200
    assert rita.open(service).status == 200
    # The service still obeys SIGTERM (the hub stops it so; it then starts it again).
    pid = _review_service_pid(hub)
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 10
    while Path(f"/proc/{pid}").exists() and Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z":
        assert time.monotonic() < deadline, "the review service ignored SIGTERM"
        time.sleep(0.1)
