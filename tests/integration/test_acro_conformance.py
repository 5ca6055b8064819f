"""Peer conformance: the same tables through ACRO (acro==1.0.2, in its own venv) and tre,
with matched parameters, give the same primary verdict for every cell and margin.

The intended differences are documented in docs/output-checking.md and pinned here too.
"""

import json
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tre.output_check import build_table, build_table_report, load_parameters

REPO = Path(__file__).resolve().parents[2]
ACRO_PYTHON = REPO / ".venv-acro" / "bin" / "python"
RUNNER = REPO / "scripts" / "acro_runner.py"


@pytest.fixture(scope="module")
def acro(tmp_path_factory):
    """Runs tables through ACRO in its venv (built by `make acro`, part of `make test`)."""
    if not ACRO_PYTHON.exists():
        subprocess.run(["make", "-s", "acro"], cwd=REPO, check=True, capture_output=True, timeout=600)
    folder = tmp_path_factory.mktemp("acro")

    def run(tables: list[dict], params: dict) -> dict:
        for table in tables:
            path = folder / f"{table['name']}.csv"
            table.pop("records").to_csv(path, index=False)
            table["csv"] = str(path)
        spec = {"parameters": params, "tables": tables}
        done = subprocess.run(
            [str(ACRO_PYTHON), str(RUNNER)],
            input=json.dumps(spec),
            capture_output=True,
            text=True,
            timeout=300,
            check=True,
        )
        return {t["name"]: t for t in json.loads(done.stdout)["tables"]}

    return run


def _people(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    people = pd.DataFrame(
        {
            "kommune": rng.choice(["0301", "1103", "4601", "1151", "5001"], n, p=[0.45, 0.3, 0.2, 0.03, 0.02]),
            "sex": rng.choice(["F", "M"], n),
            "age": rng.choice(["0-17", "18-66", "67+"], n, p=[0.2, 0.6, 0.2]),
            "cost": np.round(rng.pareto(1.2, n) * 1000 + 10, 2),
        }
    )
    # a few very large costs: some cells are dominated by one or two payers
    people.loc[rng.choice(n, 3, replace=False), "cost"] = [400_000.0, 900_000.0, 250_000.0]
    return people


TABLES = [
    ("frequency 2-D", ["kommune"], ["sex"], None, None),
    ("frequency 3-D", ["kommune", "age"], ["sex"], None, None),
    ("mean cost 2-D", ["kommune"], ["age"], "cost", "mean"),
    ("total cost 2-D", ["kommune"], ["sex"], "cost", "sum"),
]


def _tre_verdicts(records, rows, cols, value, aggfunc, params) -> dict:
    dims = rows + cols
    cats = [sorted(records[d].unique()) for d in dims]
    table = build_table(records, dims, value=value, statistic=aggfunc or "count", categories=cats, top_n=params.nk_n)
    report = build_table_report(table, params).as_dict()
    return {tuple(c["key"][d] for d in dims): c["status"] == "primary" for c in report["cells"]}


def _acro_verdicts(result, dims) -> dict:
    return {tuple(c["key"][d] for d in dims): bool(c["checks"]) for c in result["cells"]}


@pytest.mark.parametrize("threshold", [5, 10])
def test_primary_verdicts_match_acro_cell_by_cell(acro, threshold):
    params = load_parameters(threshold=threshold, zeros_are_disclosive=True)
    matched = {
        "threshold": threshold,
        "nk_n": params.nk_n,
        "nk_k": params.nk_k,
        "p_ratio": params.p_ratio,
        "zeros_are_disclosive": True,
    }
    datasets = {name: _people(220, seed=i) for i, (name, *_) in enumerate(TABLES)}
    specs = [
        {"name": name, "records": datasets[name], "index": rows, "columns": cols, "values": value, "aggfunc": aggfunc}
        for name, rows, cols, value, aggfunc in TABLES
    ]
    results = acro(specs, matched)
    for name, rows, cols, value, aggfunc in TABLES:
        ours = _tre_verdicts(datasets[name], rows, cols, value, aggfunc, params)
        theirs = _acro_verdicts(results[name], rows + cols)
        # pandas (and so ACRO) shows a 3-D table's outer margins only; tre checks every sub-margin too
        assert set(theirs) <= set(ours), name
        differing = {k for k in theirs if ours[k] != theirs[k]}
        assert differing == set(), f"{name}: verdicts differ for {sorted(differing)}"
        assert any(ours.values()) and not all(ours.values()), f"{name}: the table must test both verdicts"
    # dominance is compared on its own: cells large enough for the threshold that NK or p% fails
    dominated = [
        c for c in results["total cost 2-D"]["cells"] if c["checks"] and "MinimumThresholdCheck" not in c["checks"]
    ]
    assert dominated and all({"NKCheck", "PPercentCheck"} & set(c["checks"]) for c in dominated)


def test_intended_difference_zeros_not_disclosive(acro):
    """With zeros declared not disclosive, ACRO's MinimumThresholdCheck still fails empty cells
    (0 < threshold); tre counts only groups of 1 to threshold-1 as small."""
    records = _people(300, seed=42)
    params = load_parameters(threshold=5, zeros_are_disclosive=False, class_disclosure=False)
    matched = {"threshold": 5, "nk_n": 2, "nk_k": 0.9, "p_ratio": 0.1, "zeros_are_disclosive": False}
    results = acro([{"name": "t", "records": records, "index": ["kommune", "age"], "columns": ["sex"]}], matched)
    ours = _tre_verdicts(records, ["kommune", "age"], ["sex"], None, None, params)
    theirs = _acro_verdicts(results["t"], ["kommune", "age", "sex"])
    counts = records.groupby(["kommune", "age", "sex"]).size()
    differing = {k for k in theirs if ours[k] != theirs[k]}
    assert differing, "the data must contain empty cells"
    assert all(theirs[k] and not ours[k] and counts.get(k, 0) == 0 for k in differing)
