"""The statistics site as the hub's service `tre-stats`: its pages public through the hub's
proxy, the municipalities' feedback behind hub OAuth (one login at the hub, none at the site)."""

from __future__ import annotations

import pytest

from e2e.test_review_hub import CHROMIUM_ARGS, _hub_login
from tre.hub_config.launch import set_demo_logins

from .hubclient import request

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def test_the_site_through_the_hub_and_the_feedback_behind_its_login(dev_hub):
    playwright = pytest.importorskip("playwright.sync_api")
    hub = dev_hub
    stats = hub.settings.stats_dir
    (stats / "site-1").mkdir(parents=True)
    (stats / "site-1" / "index.html").write_text("<h1>Statistikk fra KPR</h1>", encoding="utf-8")
    (stats / "site").symlink_to("site-1")
    for number in ("0301", "4601"):
        (stats / "feedback-1" / number).mkdir(parents=True)
        (stats / "feedback-1" / number / "index.html").write_text(f"<h1>kommune {number}</h1>", encoding="utf-8")
    (stats / "feedback").symlink_to("feedback-1")
    assert hub.cli("user", "add", "oslo", "--role", "municipality", "--municipality", "0301")[0] == 0
    hub.logins.update(
        {x.user: x for x in set_demo_logins(hub.store, ["oslo"], actor="ada", settings=hub.settings, environ=hub.env)}
    )
    service = f"{hub.url}/services/tre-stats/"

    public = request(service)  # no login for the published statistics
    assert public.status == 200 and "Statistikk fra KPR" in str(public.body)
    anonymous = request(f"{service}tilbakemelding/0301/")  # urllib follows the redirects to the hub's login
    assert anonymous.status == 200 and "/hub/login" in str(anonymous.body)

    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        try:
            oslo = _hub_login(browser, hub, "oslo")
            oslo.goto(f"{service}tilbakemelding/0301/")
            oslo.wait_for_selector("h1:has-text('kommune 0301')")  # hub OAuth, no second login
            other = oslo.goto(f"{service}tilbakemelding/4601/")
            assert other.status == 403
        finally:
            browser.close()
    assert any(e["actor"] == "oslo" for e in hub.audit("feedback.view"))
