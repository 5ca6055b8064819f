"""`tre demo`: what a person running `make demo` sees, on a small population."""

import json
import re
import shutil
from pathlib import Path

from leaks import Facts, find_leaks, published_numbers, read_bundle, read_tree

REPO = Path(__file__).resolve().parents[2]


def _nothing_hidden_left(bundle: Path, central: Path, env: dict) -> None:
    """The demo's release holds no value its published tables do not show: searched for the
    hidden and unrounded values of the kernel's reports (kept centrally)."""
    reports = {p.parent.parent.name: json.loads(p.read_text()) for p in central.glob("*/received/report.json")}
    assert reports and any(c["published"] is None for r in reports.values() for c in r.get("cells", []))
    facts = Facts()
    published = published_numbers(list(reports.values()))
    for name, report in reports.items():
        facts.add_report(name, report, published)
    assert find_leaks(read_bundle(bundle), facts) == []
    projects = Path(env["TRE_PROJECTS_DIR"])
    assert find_leaks(read_tree(projects / "diabetes" / "released" / "REQ-1"), facts) == []


def test_demo_runs_and_is_quick_to_rerun(cli, tre_env):
    shutil.copytree(REPO / "approvals", tre_env["TRE_APPROVALS_DIR"])
    first = cli.ok("demo", "--persons", "1500", "--years", "1", "--no-hub")
    assert "generated synthetic registers for 1,500 persons, 2024-2024" in first.out
    assert "register deliveries (rows)" in first.out and "kuhr" in first.out
    assert "deliberate dirt for the ingest to catch" in first.out
    assert "Linkage and quality report" in first.out and re.search(r"ingest: \d+ ingested", first.out)
    for project in ("diabetes", "heartcohort", "bergen-care"):
        assert f"extract of {project}" in first.out
    assert "REK sør-øst 2026/118833, approved by the key custodian kari" in first.out  # § 5-2: two people
    assert "rita ran diabetes_followup.ipynb in diabetes" in first.out
    assert "olav reviewed REQ-1: approve" in first.out and "oda reviewed REQ-1: approve" in first.out
    bundle = Path(tre_env["TRE_HOME"]) / "exports" / "diabetes" / "REQ-1.zip"
    assert f"released bundle: {bundle}" in first.out and bundle.is_file()
    _nothing_hidden_left(bundle, Path(tre_env["TRE_HOME"]) / "outputs" / "diabetes" / "REQ-1", tre_env)

    def releases():
        return cli.ok("audit", "log", "--action", "release.record", "--json", as_user="ada").json()

    assert len(releases()) == 3  # one per example project's extract
    site = Path(tre_env["TRE_HOME"]) / "stats" / "site"
    assert re.search(r"statistics run 1: 8 tables \([\d,]+ cells\) for 2024", first.out)
    assert (site / "index.html").is_file() and (site / "kommune" / "0301.html").is_file()
    last = first.out.strip().splitlines()[-1]
    assert "Statistics site (§ 4-6) built in" in last and str(site) in last and "tre stats serve" in last
    again = cli.ok("demo", "--persons", "1500", "--years", "1", "--no-hub")
    assert "synthetic deliveries already in" in again.out and "already there" in again.out
    assert "already built for its approval in force" in again.out
    assert "were reviewed and released in an earlier run" in again.out and "REQ-2" not in again.out
    assert len(releases()) == 3  # the second run built nothing again: no new release record
    assert "statistics: already published (run 1)" in again.out
    users = {u["name"]: u["roles"] for u in cli.ok("user", "list", "--json", as_user="ada").json()}
    assert users["olav"] == ["officer"] and users["kari"] == ["custodian"] and users["ada"] == ["admin"]
    assert users["oslo"] == ["municipality"]
