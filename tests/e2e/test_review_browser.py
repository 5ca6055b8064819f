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

import pytest
from output_check_factories import make_notebook, records
from review_page import review_page
from review_world import PROJECT, build_world
from totp_codes import fresh_code

from tre.hub_config.launch import set_demo_logins

from .conftest import ARTIFACTS, CHROMIUM, CHROMIUM_ARGS

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

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
    logins = {
        x.user: x
        for x in set_demo_logins(
            world.store, ["rita", "olav", "oda"], actor="ada", settings=world.settings, environ=world.env
        )
    }
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
    page.fill("#code", fresh_code(login.totp_secret))
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


def coloured(png: bytes, colour: tuple[int, int, int], tolerance: int = 6) -> int:
    """How many pixels of a screenshot are close to `colour`."""
    import numpy as np
    from PIL import Image

    pixels = np.asarray(Image.open(io.BytesIO(png)).convert("RGB"), dtype=int)
    return int((np.abs(pixels - np.array(colour)).max(axis=-1) <= tolerance).sum())


SECONDARY, STATUS_APPROVED = (0xF9, 0xD9, 0xA8), (0x2E, 0x7D, 0x32)  # review.css: a protecting cell, a green badge


def test_a_request_walks_from_the_queue_to_release(setup):
    world, logins, url, browser, root = setup
    outputs = list(CONTEXT)
    exception = "The small cells are hidden and their margins protected; the municipalities are needed for planning."

    # The researcher: the project's queue, a new request, two outputs added together sharing a
    # context, one alone, an exception request, a note to the reviewers, submit.
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
    population, shows, relation = CONTEXT["by_kommune"]
    rita.check("#add-by_kommune")
    rita.check("#add-age_histogram")
    rita.fill("#add-population", population)
    rita.fill("#add-shows", "the cohort by municipality and sex, and its age at discharge")
    rita.fill("#add-relation", relation)
    rita.fill("#add-group", "cohort")
    rita.click("#add")
    rita.wait_for_selector("#output-age_histogram")
    added = rita.inner_text("#flash")
    assert added.startswith("added ") and "by_kommune (check protected)" in added and "age_histogram (check" in added
    assert "group: cohort" in rita.inner_text("#output-by_kommune h2")
    rita.check("#add-analysis")
    for key, value in zip(("population", "shows", "relation"), CONTEXT["analysis"], strict=True):
        rita.fill(f"#add-{key}", value)
    rita.click("#add")
    rita.wait_for_selector("#output-analysis")
    rita.fill("#output-by_kommune textarea.exception", exception)
    rita.click("#output-by_kommune button.save-exception")
    assert rita.inner_text("#flash") == "by_kommune: exception requested"
    rita.fill("#thread textarea[name='text']", "The notebook is included so you can see how the cohort was drawn.")
    rita.click("#thread button.comment")
    rita.wait_for_selector("#thread li.comment")
    rita.screenshot(path=str(ARTIFACTS / "review-2-request-pending.png"), full_page=True)
    rita.click("#submit-request")
    rita.wait_for_selector("#status:has-text('submitted')")

    # The first officer: the queue filtered to what waits for them, the request with its whole
    # reports, the researcher's exception and note, a question in the output's thread, votes.
    olav = _login(browser, url, logins["olav"])
    olav.click("#view-waiting-for-me")
    olav.wait_for_selector("#view-waiting-for-me.current")
    assert label in olav.inner_text("#queue")
    queue_shot = olav.locator("#queue").screenshot(path=str(ARTIFACTS / "review-3-officer-queue.png"))
    olav.click("#view-released")
    assert label not in olav.inner_text("#queue") and olav.is_visible("#queue-empty")
    olav.click("#view-waiting-for-me")
    olav.click(f"text={label}")
    olav.wait_for_selector("#output-by_kommune div.report table.grid")
    olav.wait_for_load_state("load")  # the figures and the notebook frame are in
    assert olav.locator("iframe.report").count() == 0  # the report stands in the page, whole
    report = olav.locator("#report-by_kommune")
    assert report.evaluate("e => e.scrollHeight <= e.clientHeight + 1")
    assert olav.inner_text("#exception-by_kommune") == exception
    assert "how the cohort was drawn" in olav.inner_text("#thread")
    # Every file that leaves is previewed, the table's sidecar too; the kernel's reports are not among them.
    previews = olav.locator("#output-by_kommune .preview").evaluate_all("ps => ps.map(p => p.dataset.file)")
    assert sorted(previews) == ["cells.csv", "cells.csv.json", "table.csv"]
    assert olav.locator("#output-age_histogram img").evaluate("img => img.naturalWidth") > 100
    notebook = olav.frame_locator("#output-analysis iframe.notebook")
    notebook.locator("text=safe.crosstab").first.wait_for(timeout=30_000)
    question = "olav: is 0301 Oslo as a whole, or the districts?"
    olav.fill("#thread-by_kommune textarea[name='text']", question)
    olav.click("#thread-by_kommune button.comment")
    olav.wait_for_selector("#thread-by_kommune li.comment.by-officer")
    _vote_all(olav, outputs, "approve", "olav: safe to release", override="olav: checked the flagged cells")
    olav.wait_for_load_state("networkidle")
    shot = olav.locator("#output-by_kommune").screenshot(path=str(ARTIFACTS / "review-4-officer-table.png"))
    assert coloured(shot, SECONDARY) > 50  # the report's protecting cells, painted by the page's stylesheet
    olav.locator("#output-age_histogram").screenshot(path=str(ARTIFACTS / "review-4-officer-figure.png"))
    olav.locator("#output-analysis").screenshot(path=str(ARTIFACTS / "review-4-officer-notebook.png"))
    olav.click("#submit-review")
    olav.wait_for_selector("#flash")
    assert "waits for the second review" in olav.inner_text("#flash")
    assert not olav.is_visible("#why-not")  # a review done: no note about who may review
    assert "olav — round 1, submitted" in olav.inner_text("#reviewers li")

    # The second officer sees none of the first one's votes or comments until both are in.
    oda = _login(browser, url, logins["oda"])
    oda.goto(f"{url}/requests/{label}")
    assert "olav: safe to release" not in oda.content() and question not in oda.content()
    _vote_all(oda, outputs, "approve", "oda: agreed", override="oda: checked the flagged cells")
    oda.click("#submit-review")
    oda.wait_for_selector("#status:has-text('approved')")
    assert "olav: safe to release" in oda.content() and question in oda.content()
    assert [li.inner_text().split(" — ")[0] for li in oda.locator("#reviewers li").all()] == ["olav", "oda"]
    oda.screenshot(path=str(ARTIFACTS / "review-5-approved.png"), full_page=True)

    # Release, and the bundle: the only way out.
    olav.goto(f"{url}/requests/{label}")
    olav.click("#release")
    olav.wait_for_selector("#status:has-text('released')")
    released_shot = olav.locator("h1").screenshot()
    assert coloured(released_shot, STATUS_APPROVED) > 100  # the green RELEASED badge
    with olav.expect_download() as download:
        olav.click("#bundle")
    saved = root / f"{label}.zip"
    download.value.save_as(saved)
    olav.screenshot(path=str(ARTIFACTS / "review-6-released.png"), full_page=True)
    with zipfile.ZipFile(saved) as z:
        manifest = json.loads(z.read(f"{label}/manifest.json"))
        assert f"{label}/outputs/age_histogram/figure.png" in z.namelist()
        everything = b"".join(z.read(n) for n in z.namelist())
    assert sorted(o["name"] for o in manifest["outputs"]) == sorted(outputs)
    assert all(len(o["votes"]) == 2 for o in manifest["outputs"])
    assert question.encode() not in everything and exception.encode() not in everything  # threads stay central
    assert saved.read_bytes() == (world.settings.exports_dir / PROJECT / f"{label}.zip").read_bytes()
    olav.goto(f"{url}/?view=released")
    assert label in olav.inner_text("#queue")

    rita.goto(f"{url}/requests/{label}")
    assert rita.inner_text("#status").lower() == "released"
    assert "oda: agreed" in rita.content() and question in rita.content()  # decided: the author sees the reviews
    assert coloured(queue_shot, (0x20, 0x33, 0x4D)) > 200  # the current view's dark pill
    for shot in ARTIFACTS.glob("review-*.png"):
        assert shot.stat().st_size > 10_000
