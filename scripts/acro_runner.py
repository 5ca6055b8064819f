"""Run tables through ACRO and print its per-cell verdicts as JSON (peer conformance, benchmarks).

Runs in its own virtual environment (`make acro` builds `.venv-acro` with acro==1.0.2, which
pins pandas<=2.3.3), so it imports nothing from `tre`. Input on stdin:

    {"parameters": {"threshold": 5, "nk_n": 2, "nk_k": 0.9, "p_ratio": 0.1,
                    "zeros_are_disclosive": true},
     "tables": [{"name": "t1", "csv": "/path/records.csv", "index": ["kommune"],
                 "columns": ["sex"], "values": null, "aggfunc": null, "repeat": 1}]}

Each CSV holds records (one row per unit; label columns are read as text). Output on
stdout: {"acro_version": ..., "tables": [{"name": ..., "seconds": [...], "cells":
[{"key": {dim: label or "Total"}, "checks": [names of the checks the cell failed]}]}]}.
"""

import json
import logging
import sys
import time

import pandas as pd

logging.disable(logging.CRITICAL)

import acro  # noqa: E402  (after silencing its INFO logging)

TOTAL = "Total"
MARGINS = "__acro_margin__"


def run(spec: dict) -> dict:
    params = spec["parameters"]
    out = {"acro_version": acro.__version__ if hasattr(acro, "__version__") else "?", "tables": []}
    for table in spec["tables"]:
        session = acro.ACRO(suppress=table.get("suppress", False))
        config = session.config  # the very dict the checks read (SDCChecks keeps a reference)
        config["safe_threshold"] = params["threshold"]
        config["safe_nk_n"] = params["nk_n"]
        config["safe_nk_k"] = params["nk_k"]
        config["safe_pratio_p"] = params["p_ratio"]
        config["zeros_are_disclosive"] = params["zeros_are_disclosive"]
        dims = table["index"] + table["columns"]
        records = pd.read_csv(table["csv"], dtype={d: str for d in dims}, keep_default_na=False)
        index = [records[d] for d in table["index"]]
        columns = [records[d] for d in table["columns"]]
        values = records[table["values"]] if table.get("values") else None
        seconds = []
        for _ in range(table.get("repeat", 1)):
            started = time.perf_counter()
            session.crosstab(
                index if len(index) > 1 else index[0],
                columns if len(columns) > 1 else columns[0],
                values=values,
                aggfunc=table.get("aggfunc"),
                margins=True,
                margins_name=MARGINS,
            )
            seconds.append(time.perf_counter() - started)
        outcome = list(session.results.results.values())[-1].outcome
        out["tables"].append({"name": table["name"], "seconds": seconds, "cells": _cells(outcome, table)})
    return out


def _cells(outcome: pd.DataFrame, table: dict) -> list[dict]:
    cells = []
    for row_label, row in outcome.iterrows():
        row_key = row_label if isinstance(row_label, tuple) else (row_label,)
        for col_label, verdict in row.items():
            col_key = col_label if isinstance(col_label, tuple) else (col_label,)
            # a margin of a multi-level axis is labelled (margin, "", ...): the whole axis is a total
            rows = [TOTAL] * len(row_key) if MARGINS in map(str, row_key) else [str(v) for v in row_key]
            cols = [TOTAL] * len(col_key) if MARGINS in map(str, col_key) else [str(v) for v in col_key]
            labels = rows + cols
            key = dict(zip(table["index"] + table["columns"], labels, strict=True))
            checks = [c.strip() for c in str(verdict).split(";") if c.strip() and c.strip() != "ok"]
            cells.append({"key": key, "checks": checks})
    return cells


if __name__ == "__main__":
    json.dump(run(json.load(sys.stdin)), sys.stdout)
