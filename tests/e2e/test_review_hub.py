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
