"""A researcher's day in the TRE, clicked through in headless Chromium (issue 18): the login form,
the home page with the project's approval, JupyterLab with the README and only the project's
notebooks, a Parquet file as a table, the notes where Download and Terminal were, a notebook
whose shell command and tre.safe mistake answer in one line, the TRE page instead of a download,
and on the review page a request with an exception, submitted. Screenshots of each step go to
test-artifacts/ and are checked."""

from __future__ import annotations

import datetime as dt
import grp
import io
import json
import os
import shutil

import duckdb
import pytest

from tre.models import Approval, Project
from tre.workspace import seal_data

from .conftest import ARTIFACTS, CHROMIUM, CHROMIUM_ARGS, running_hub

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

CONDITION = "Only aggregate results checked by the TRE may leave the project."
NOTEBOOK = {
    "cells": [
        {
            "cell_type": "code",
            "metadata": {},
            "outputs": [],
            "execution_count": None,
            "source": "import tre\nimport tre.safe as safe\n\npersons = tre.connect().sql('SELECT * FROM persons').df()\n"
            "years = persons['birth_date'].dt.year\nprint('born', int(years.min()), 'to', int(years.max()))\n"
            "safe.crosstab(persons['municipality'], persons['sex'], name='by_municipality')",
        },
        {"cell_type": "code", "metadata": {}, "outputs": [], "execution_count": None, "source": "!ls /"},
        {
            "cell_type": "code",
            "metadata": {},
            "outputs": [],
            "execution_count": None,
            "source": "safe.custom_output('no-such-table.csv')",
        },
    ],
    "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3"}, "tre": {"projects": ["alpha"]}},
    "nbformat": 4,
    "nbformat_minor": 5,
}


# A GET from the page as JupyterLab makes it: the server wants the XSRF token of its cookie.
FETCH = """async url => {
  const token = (document.cookie.match(/_xsrf=([^;]+)/) || [])[1] || "";
  return await (await fetch(url, {headers: {"X-XSRFToken": decodeURIComponent(token)}})).json();
}"""


def _isolation() -> str:
    from .conftest import _tools_missing

    return "off" if _tools_missing() else "on"


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    if not CHROMIUM.exists():
        pytest.skip("chromium is not installed (make setup installs it)")
    pytest.importorskip("playwright.sync_api")
    projects = {"alpha": (["rita"], 365), "beta": (["rita"], 365)}
    with running_hub(tmp_path_factory, isolation=_isolation(), projects=projects) as hub:
        _extract(hub)
        notebooks = hub.settings.hub_notebooks_dir
        (notebooks / "alpha_analysis.ipynb").write_text(json.dumps(NOTEBOOK))
        (notebooks / "beta_only.ipynb").write_text(
            json.dumps({**NOTEBOOK, "metadata": {"tre": {"projects": ["beta"]}}})
        )
        with hub.store.transaction() as session:
            approval = session.get(Approval, "approval-alpha")
            approval.document = {**approval.document, "conditions": [CONDITION], "purpose_description": "follow-up"}
        yield hub


def _extract(hub) -> None:
    """alpha's extract as the extracts module writes it: DuckDB, Parquet (dates as timestamps), manifest."""
    ws = hub.workspace("alpha")
    shutil.rmtree(ws.data)
    ws.data.mkdir()
    con = duckdb.connect(str(ws.extract))
    con.execute(
        "CREATE TABLE persons AS SELECT 'P' || lpad(i::VARCHAR, 6, '0') AS pseudonym, "
        "CAST(DATE '1950-01-01' + INTERVAL (i % 480) MONTH AS DATE) AS birth_date, "
        "CASE WHEN i % 2 = 0 THEN 'K' ELSE 'M' END AS sex, "
        "CASE WHEN i % 3 = 0 THEN '0301' WHEN i % 3 = 1 THEN '4601' ELSE '5001' END AS municipality "
        "FROM range(600) t(i)"
    )
    con.execute(
        "COPY (SELECT * REPLACE (CAST(birth_date AS TIMESTAMP) AS birth_date) FROM persons) "
        f"TO '{ws.data / 'persons.parquet'}' (FORMAT parquet)"
    )
    con.close()
    manifest = {
        "extract": 1,
        "project": "alpha",
        "period": {"from": "2023-01-01", "to": "2024-12-31"},
        "date_precision": "month",
        "variables": {"dsf": ["birth_date", "sex", "municipality"]},
        "tables": {"persons": 600},
        "cohort_size": 600,
        "built_at": dt.datetime.now(dt.UTC).isoformat(),
        "notes": ["dates are coarsened to the month: a date stands for the first day of its month"],
    }
    (ws.data / "manifest.json").write_text(json.dumps(manifest))
    with hub.store.transaction() as session:
        group = session.get(Project, "alpha").os_group
    seal_data(ws, grp.getgrnam(group).gr_gid if group else None)


def _pixels(png: bytes) -> int:
    """How many pixels of a screenshot are not plain background (something was drawn)."""
    import numpy as np
    from PIL import Image

    pixels = np.asarray(Image.open(io.BytesIO(png)).convert("L"), dtype=int)
    return int((pixels < 200).sum())


def test_a_researcher_goes_from_login_to_a_submitted_request(hub):
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    login = hub.logins["rita"]
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 860})
            errors = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            refused = []
            page.on(
                "response",
                lambda r: refused.append(f"{r.status} {r.request.method} {r.url}") if r.status == 403 else None,
            )

            # The login form: every field says what it is; the password can be shown.
            page.goto(f"{hub.url}/hub/login")
            assert page.inner_text("label[for='2fa_input']") == "One-time code"
            assert "authenticator app" in page.inner_text("#code-help")
            assert "leave empty" not in page.content()
            page.fill("#username_input", "rita")
            page.fill("#password_input", login.password)
            box = page.locator("#show-password").bounding_box()
            assert box["width"] > 30 and page.inner_text("#show-password") == "Show"
            page.click("#show-password")
            assert page.get_attribute("#password_input", "type") == "text"
            shot = page.locator("#login-main").screenshot(path=str(ARTIFACTS / "researcher-1-login.png"))
            assert _pixels(shot) > 500
            page.fill("input[name='2fa']", hub.code_for("rita"))
            page.click("#login_submit")

            # The home page: each project with its approval; no named-server section.
            page.wait_for_selector("#project-alpha .tre-approval")
            approval = page.inner_text("#project-alpha .tre-approval")
            assert "REF-2026-0001" in approval and CONDITION in approval and "at least 5 persons" in approval
            until = (dt.date.today() + dt.timedelta(days=365)).isoformat()
            assert f"until {until}" in approval
            assert "Named Servers" not in page.content() and page.locator(".new-server-btn").count() == 0
            shot = page.screenshot(path=str(ARTIFACTS / "researcher-2-home.png"), full_page=True)
            assert _pixels(shot) > 2000

            # JupyterLab on alpha: the README and the project's own notebooks only.
            page.click("#start-alpha")
            page.wait_for_url("**/user/rita/alpha/lab**", timeout=120_000)
            page.wait_for_selector(".jp-DirListing-item >> text=README.md", timeout=60_000)
            listed = page.locator(".jp-DirListing-item .jp-DirListing-itemName").all_inner_texts()
            assert {"README.md", "alpha_analysis.ipynb", "example.ipynb"} <= set(listed)
            assert "beta_only.ipynb" not in listed
            readme = page.evaluate(FETCH, "/user/rita/alpha/api/contents/work/README.md")["content"]
            for words in ("REF-2026-0001", CONDITION, "| `birth_date` | date | date of birth (month precision)"):
                assert words in readme, words
            translations = page.evaluate(FETCH, "/user/rita/alpha/lab/api/translations")
            assert "no_NO" in translations["data"]  # Norwegian Bokmål, under Settings > Language

            # A Parquet file opens as a table, its dates as dates.
            page.goto(f"{hub.url}/user/rita/alpha/lab/tree/data/persons.parquet")
            page.wait_for_selector(".tre-parquet table", timeout=60_000)
            assert "of 600 rows" in page.inner_text(".tre-parquet p.tre-about")
            assert page.inner_text(".tre-parquet tbody tr:first-child td:nth-child(2)") == "1950-01-01"
            shot = page.locator(".tre-parquet").screenshot(path=str(ARTIFACTS / "researcher-3-parquet.png"))
            assert _pixels(shot) > 2000

            # Where Download and Terminal were: a note that says what to do instead.
            page.click("text=File")
            page.click(".lm-Menu >> text=Download (closed in the TRE)")
            page.wait_for_selector(".jp-Dialog")
            assert "Output review" in page.inner_text(".jp-Dialog")
            page.click(".jp-Dialog button:has-text('OK')")
            page.keyboard.press("Control+Shift+L")  # a new launcher
            page.wait_for_selector(".jp-LauncherCard:has-text('Terminal (closed in the TRE)')")

            # The notebook: a checked output, a shell command and a mistake, each in one line.
            page.goto(f"{hub.url}/user/rita/alpha/lab/tree/work/alpha_analysis.ipynb")
            page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=60_000)
            page.wait_for_selector(".jp-StatusBar-Widget:has-text('Python 3 (TRE) | Idle')", timeout=60_000)
            page.click(".jp-Notebook .jp-Cell >> nth=0 >> .jp-InputArea-prompt")
            page.keyboard.press("Escape")  # command mode: Shift+Enter runs a cell and selects the next
            for i in range(3):  # cell by cell: the cells after a failing one still run
                page.keyboard.press("Shift+Enter")
                page.wait_for_selector(f".jp-Cell >> nth={i} >> .jp-OutputArea-output", timeout=90_000)
                # The kernel drops what comes while it clears up after an error: wait until it is done.
                page.wait_for_selector(f".jp-Cell >> nth={i} >> .jp-InputPrompt:has-text('[{i + 1}]')")
                page.wait_for_selector(".jp-StatusBar-Widget:has-text('| Idle')")
                page.wait_for_timeout(500)
            outputs = [page.inner_text(f".jp-Cell >> nth={i} >> .jp-OutputArea") for i in range(3)]
            assert "born 1950 to 1989" in outputs[0] and "by_municipality" in outputs[0]
            assert outputs[1].startswith("Shell commands are closed: ") and "Traceback" not in outputs[1]
            assert outputs[2].startswith("SafeError: no such file") and "Traceback" not in outputs[2]
            shot = page.screenshot(path=str(ARTIFACTS / "researcher-4-notebook.png"))
            assert _pixels(shot) > 5000

            # A download asked for by its address: the TRE's page, not a bare 403.
            response = page.goto(f"{hub.url}/user/rita/alpha/files/work/README.md")
            assert response.status == 403
            assert page.inner_text("#tre-closed h1") == "Downloads are closed in the TRE"

            # The review page: a request with the queued output, its context and an exception, submitted.
            page.goto(f"{hub.url}/services/tre-review/projects/alpha")
            page.wait_for_selector("#queued")
            assert "by_municipality" in page.inner_text("#queued")
            page.fill("#title", "Persons by municipality")
            page.click("#new")
            page.wait_for_selector("#add-output")
            page.check("#add-by_municipality")
            page.fill("#add-population", "the 600 persons of the extract")
            page.fill("#add-shows", "persons by municipality and sex")
            page.fill("#add-relation", "the first output of the project")
            page.click("#add")
            page.wait_for_selector("#output-by_municipality")
            page.fill("#output-by_municipality textarea.exception", "Municipality is needed to plan the follow-up.")
            page.click("#output-by_municipality button.save-exception")
            page.wait_for_selector("#flash")
            page.click("#submit-request")
            page.wait_for_selector("#status:has-text('submitted')")
            shot = page.screenshot(path=str(ARTIFACTS / "researcher-5-submitted.png"), full_page=True)
            assert _pixels(shot) > 5000
            assert errors == [], (errors, refused)
        finally:
            browser.close()
    submitted = [e for e in hub.audit("request.submit") if e["actor"] == "rita"]
    assert len(submitted) == 1 and submitted[0]["details"]["project"] == "alpha"
    exceptions = hub.audit("request.exception")
    assert [e["details"]["output"] for e in exceptions] == ["by_municipality"]
    assert os.path.exists(hub.settings.projects_dir / "alpha" / "work" / "README.md")
