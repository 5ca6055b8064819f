"""A request from the queue to release, clicked through the review page in headless Chromium.

A researcher makes a request from three queued outputs (a table, a figure, a notebook),
describes and submits it; two officers review it independently (each unable to see the
other's votes), one releases it and downloads the bundle. Screenshots of every step go to
test-artifacts/ (git-ignored).
"""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import pytest
from output_check_factories import make_notebook, records
from review_page import review_page
from review_world import PROJECT, build_world

from tre.credentials import current_totp
from tre.hub_config.launch import set_demo_logins

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
CONTEXT = {
    "by_kommune": (
        "adults with type 2 diabetes discharged in 2023",
        "persons by municipality and sex",
        "the first output of the project",
    ),
    "age_histogram": ("the same cohort", "the age distribution at discharge", "same persons as by_kommune"),
    "analysis": ("the same cohort", "the notebook that made both outputs", "shows how by_kommune was made"),
}


def _queue_outputs(world) -> None:
    from tre.safe import Session

    session = Session(world.project_dir, PROJECT, out=io.StringIO())
    data = records(400, seed=3, persons=world.people)
    session.crosstab(data.kommune, data.sex, name="by_kommune")
    session.hist(data, "age", bins=8, name="age_histogram", title="Age at discharge")
    notebook = make_notebook(
        world.project_dir / "work" / "analysis.ipynb",
        [
            ("import tre.safe as safe", []),
            (
                "safe.crosstab(data.kommune, data.sex)",
                [{"html": "<table><tr><th>kommune</th><th>F</th></tr><tr><td>0301</td><td>104</td></tr></table>"}],
            ),
        ],
    )
    session.custom_output(notebook, "the analysis", name="analysis")


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    if not CHROMIUM.exists():
        pytest.skip("chromium is not installed (make setup installs it)")
    playwright = pytest.importorskip("playwright.sync_api")
    root = tmp_path_factory.mktemp("browser")
    world = build_world(root)
    (world.project_dir / "work").mkdir(parents=True, exist_ok=True)
    _queue_outputs(world)
    logins = {x.user: x for x in set_demo_logins(world.store, ["rita", "olav", "oda"], actor="ada")}
    ARTIFACTS.mkdir(exist_ok=True)
    with review_page(world.env, root / "page.log") as url, playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield world, logins, url, browser, root
        finally:
            browser.close()


def _login(browser, url, login):
    context = browser.new_context(viewport={"width": 1280, "height": 900}, accept_downloads=True)
    page = context.new_page()
    page.goto(f"{url}/")
    page.fill("#username", login.user)
    page.fill("#password", login.password)
    page.fill("#code", current_totp(login.totp_secret))
    page.click("#login")
    page.wait_for_selector("header .who")
    return page


def _vote_all(page, outputs, decision, comment, override=None):
    for name in outputs:
        form = page.locator(f"#output-{name} form.vote-form")
        page.wait_for_load_state("networkidle")  # images, reports and notebooks above the form are in place
        form.locator(f"input[value='{decision}']").check()
        form.locator("textarea[name='comment']").fill(comment)
        if override and form.locator("textarea[name='override']").count():
            form.locator("textarea[name='override']").fill(override)
        form.locator("button.vote").click()
        page.wait_for_selector("#flash")
        assert page.inner_text("#flash") == f"your vote on {name}: {decision}"


def test_a_request_walks_from_the_queue_to_release(setup):
    world, logins, url, browser, root = setup
    outputs = list(CONTEXT)

    # The researcher: the project's queue, a new request, outputs with their context, submit.
    rita = _login(browser, url, logins["rita"])
    rita.click(f"text={PROJECT}")
    rita.wait_for_selector("#queued")
    for name in outputs:
        assert name in rita.inner_text("#queued")
    rita.screenshot(path=str(ARTIFACTS / "review-1-project-queue.png"), full_page=True)
    rita.fill("#title", "GP follow-up after discharge")
    rita.click("#new")
    rita.wait_for_selector("#add-output")
    label = rita.url.rsplit("/", 1)[-1]
    for name, (population, shows, relation) in CONTEXT.items():
        rita.select_option("#add-name", name)
        rita.fill("#add-population", population)
        rita.fill("#add-shows", shows)
        rita.fill("#add-relation", relation)
        rita.click("#add")
        rita.wait_for_selector(f"#output-{name}")
    rita.screenshot(path=str(ARTIFACTS / "review-2-request-pending.png"), full_page=True)
    rita.click("#submit-request")
    rita.wait_for_selector("#status:has-text('submitted')")

    # The first officer: the queue, the request with its reports and previews, votes.
    olav = _login(browser, url, logins["olav"])
    assert label in olav.inner_text("#queue")
    olav.screenshot(path=str(ARTIFACTS / "review-3-officer-queue.png"), full_page=True)
    olav.click(f"text={label}")
    olav.wait_for_selector("#output-by_kommune iframe.report")
    olav.wait_for_load_state("load")
    assert olav.frame_locator("#output-by_kommune iframe.report").locator("table.grid").count() >= 1
    assert olav.locator("#output-age_histogram img").evaluate("img => img.naturalWidth") > 100
    notebook = olav.frame_locator("#output-analysis iframe.notebook")
    notebook.locator("text=safe.crosstab").first.wait_for(timeout=30_000)
    _vote_all(olav, outputs, "approve", "olav: safe to release", override="olav: checked the flagged cells")
    olav.wait_for_load_state("networkidle")
    olav.locator("#output-by_kommune").screenshot(path=str(ARTIFACTS / "review-4-officer-table.png"))
    olav.locator("#output-age_histogram").screenshot(path=str(ARTIFACTS / "review-4-officer-figure.png"))
    olav.locator("#output-analysis").screenshot(path=str(ARTIFACTS / "review-4-officer-notebook.png"))
    olav.click("#submit-review")
    olav.wait_for_selector("#flash")
    assert "waits for the second review" in olav.inner_text("#flash")

    # The second officer sees none of the first one's votes until both are in.
    oda = _login(browser, url, logins["oda"])
    oda.goto(f"{url}/requests/{label}")
    assert "olav: safe to release" not in oda.content()
    _vote_all(oda, outputs, "approve", "oda: agreed", override="oda: checked the flagged cells")
    oda.click("#submit-review")
    oda.wait_for_selector("#status:has-text('approved')")
    assert "olav: safe to release" in oda.content()
    oda.screenshot(path=str(ARTIFACTS / "review-5-approved.png"), full_page=True)

    # Release, and the bundle: the only way out.
    olav.goto(f"{url}/requests/{label}")
    olav.click("#release")
    olav.wait_for_selector("#status:has-text('released')")
    with olav.expect_download() as download:
        olav.click("#bundle")
    saved = root / f"{label}.zip"
    download.value.save_as(saved)
    olav.screenshot(path=str(ARTIFACTS / "review-6-released.png"), full_page=True)
    with zipfile.ZipFile(saved) as z:
        manifest = json.loads(z.read(f"{label}/manifest.json"))
        assert f"{label}/outputs/age_histogram/figure.png" in z.namelist()
    assert sorted(o["name"] for o in manifest["outputs"]) == sorted(outputs)
    assert all(len(o["votes"]) == 2 for o in manifest["outputs"])
    assert saved.read_bytes() == (world.settings.exports_dir / PROJECT / f"{label}.zip").read_bytes()

    rita.goto(f"{url}/requests/{label}")
    assert rita.inner_text("#status") == "RELEASED" or rita.inner_text("#status").lower() == "released"
    assert "oda: agreed" in rita.content()  # decided: the author sees the reviews
    for shot in ARTIFACTS.glob("review-*.png"):
        assert shot.stat().st_size > 10_000
