"""`tre demo`: what a person running `make demo` sees, on a small population."""

import shutil
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]



def test_demo_runs_and_is_quick_to_rerun(cli, tre_env):
    shutil.copytree(REPO / "approvals", tre_env["TRE_APPROVALS_DIR"])
    first = cli.ok("demo", "--persons", "1500", "--years", "1")
    assert "generated synthetic registers for 1,500 persons, 2024-2024" in first.out
    assert "register deliveries (rows)" in first.out and "kuhr" in first.out
    assert "deliberate dirt for the ingest to catch" in first.out
    again = cli.ok("demo", "--persons", "1500", "--years", "1")
    assert "synthetic deliveries already in" in again.out and "already there" in again.out
    users = {u["name"]: u["roles"] for u in cli.ok("user", "list", "--json", as_user="ada").json()}
    assert users["olav"] == ["officer"] and users["kari"] == ["custodian"] and users["ada"] == ["admin"]
