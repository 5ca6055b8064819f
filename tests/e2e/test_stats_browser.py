"""The statistics site walked in headless Chromium, and the municipalities' feedback behind
its login: pages load, charts render (checked on screenshots), a hidden value shows its marker
and no number, the fallback chart stands without scripts, and a municipal user sees only
their own municipality. Screenshots go to test-artifacts/ (git-ignored)."""

from __future__ import annotations

import io
import re

import numpy as np
import pytest
from PIL import Image
from review_page import serving
from stats_world import make_world
from totp_codes import fresh_code

from tre.db import Store
from tre.hub_config.launch import set_demo_logins

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

from e2e.test_review_browser import ARTIFACTS, CHROMIUM, CHROMIUM_ARGS  # noqa: E402 - the same browser

LINE = (0x1F, 0x5F, 0x8B)  # the chart's colour of the region itself


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    if not CHROMIUM.exists():
        pytest.skip("chromium is not installed (make setup installs it)")
    playwright = pytest.importorskip("playwright.sync_api")
    root = tmp_path_factory.mktemp("statssite")
    world = make_world(root)
    world.ok("user", "add", "oslo", "--role", "municipality", "--municipality", "0301", as_user="ada")
    (login,) = set_demo_logins(
        Store(world.settings.db_url), ["oslo"], actor="ada", settings=world.settings, environ=world.environ
    )
    ARTIFACTS.mkdir(exist_ok=True)
    with (
        serving(["stats", "serve"], world.environ, root / "site.log", "the statistics site") as url,
        playwright.sync_playwright() as p,
    ):
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield world, url, browser, login
        finally:
            browser.close()


def coloured(png: bytes, colour: tuple[int, int, int], tolerance: int = 40) -> int:
    """How many pixels of a screenshot are close to `colour`."""
    pixels = np.asarray(Image.open(io.BytesIO(png)).convert("RGB"), dtype=int)
    return int((np.abs(pixels - np.array(colour)).max(axis=-1) <= tolerance).sum())


def test_the_site_loads_and_its_charts_render(site):
    world, url, browser, _ = site
    page = browser.new_page(viewport={"width": 1200, "height": 1000})
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("request", lambda r: None if r.url.startswith(url) else errors.append(f"outside request {r.url}"))
    response = page.goto(f"{url}/")
    assert response.status == 200 and "script-src 'self'" in response.headers["content-security-policy"]
    assert page.title().startswith("Statistikk fra KPR") and page.locator("html").get_attribute("lang") == "nb"
    page.screenshot(path=str(ARTIFACTS / "stats-1-index.png"))
    page.click("text=Kontakter med fastlege per 1000 innbyggere")
    page.wait_for_selector("figure.chart.rendered .vega svg")
    chart = page.locator("figure.chart").first
    assert chart.locator(".fallback").is_hidden()
    shot = chart.screenshot(path=str(ARTIFACTS / "stats-2-indicator-chart.png"))
    assert coloured(shot, LINE) > 150  # the country's line and points are drawn
    assert page.locator("table.regions tr.kommune").count() == 357
    assert not errors, errors


def test_a_hidden_value_shows_its_marker_and_no_number(site):
    world, url, browser, _ = site
    page = browser.new_page(viewport={"width": 1200, "height": 1000})
    page.goto(f"{url}/kommune/0301.html")
    page.wait_for_selector("figure.chart.rendered")
    charts = page.locator("figure.chart").count()
    assert charts + page.locator("figure.chart-empty").count() == 8  # one per indicator
    assert charts >= 1 and page.locator("figure.chart.rendered").count() == charts
    marker = page.locator("table.breakdown td.marker[data-reason='konfidensiell']").first
    marker.scroll_into_view_if_needed()
    assert marker.inner_text().strip() == ":"
    assert not re.search(r"\d", marker.inner_html())
    assert "personvern" in marker.locator("abbr").get_attribute("title")
    shot = marker.locator("xpath=ancestor::table").screenshot(path=str(ARTIFACTS / "stats-3-hidden-cell.png"))
    assert coloured(shot, (0x8A, 0x1C, 0x1C)) > 5  # the marker is drawn in its colour
    published = page.locator("table.breakdown td.num").first
    assert re.fullmatch(r"\d+,\d", published.inner_text().strip())


def test_without_scripts_the_drawn_chart_stands_in(site):
    world, url, browser, _ = site
    context = browser.new_context(java_script_enabled=False, viewport={"width": 1200, "height": 900})
    page = context.new_page()
    page.goto(f"{url}/indikator/fastlege.html")
    fallback = page.locator("figure.chart .fallback svg").first
    assert fallback.is_visible()
    shot = fallback.screenshot(path=str(ARTIFACTS / "stats-4-fallback.png"))
    assert coloured(shot, LINE) > 50
    context.close()


def test_feedback_needs_a_login_and_shows_only_the_users_municipality(site):
    world, url, browser, login = site
    context = browser.new_context(viewport={"width": 1200, "height": 900})
    page = context.new_page()
    page.goto(f"{url}/tilbakemelding/0301/")
    assert "/login" in page.url
    page.fill("input[name=username]", "oslo")
    page.fill("input[name=password]", login.password)
    page.fill("input[name=code]", fresh_code(login.totp_secret))
    page.click("button[type=submit]")
    page.wait_for_selector("h1:has-text('0301 Oslo')")
    page.screenshot(path=str(ARTIFACTS / "stats-5-feedback.png"), full_page=True)
    page.locator("table a").first.click()
    page.wait_for_selector("h2:has-text('Mot folkeregisteret')")
    assert "Kompletthet mot året før" in page.inner_text("main")
    assert not re.search(r"(?<!\d)\d{11}(?!\d)", page.content())  # never an ID number
    other = page.goto(f"{url}/tilbakemelding/1103/")
    assert other.status == 403 and "Ingen tilgang" in page.inner_text("main")
    context.close()
    log = world.ok("audit", "log", "--json", as_user="ada").json()
    actions = [(e["actor"], e["action"]) for e in log]
    assert ("oslo", "feedback.view") in actions and ("oslo", "access.denied") in actions
    anonymous = browser.new_context().new_page()
    assert anonymous.goto(f"{url}/tilbakemelding/0301/index.html").url.endswith(
        "next=%2Ftilbakemelding%2F0301%2Findex.html"
    )
