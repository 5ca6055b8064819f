"""Factories for output-checking tests: synthetic ID numbers, pseudonyms, extracts, records."""

from __future__ import annotations

import random
import string
from pathlib import Path

import numpy as np
import pandas as pd

FIRST = (3, 7, 6, 1, 8, 9, 4, 5, 2)
SECOND = (5, 4, 3, 2, 7, 6, 5, 4, 3, 2)


def synthetic_fnr(day: int, month: int, year: int, individual: int = 500, d_number: bool = False) -> str:
    """A synthetic national ID number (month + 80, as the national test-data service makes
    them), with the first individual number from `individual` up that gives valid check digits."""
    for ind in range(individual, individual + 200):
        base = f"{day + (40 if d_number else 0):02d}{month + 80:02d}{year % 100:02d}{ind % 1000:03d}"
        k1 = (11 - sum(int(d) * w for d, w in zip(base, FIRST, strict=True)) % 11) % 11
        if k1 == 10:
            continue
        k2 = (11 - sum(int(d) * w for d, w in zip(base + str(k1), SECOND, strict=True)) % 11) % 11
        if k2 == 10:
            continue
        return f"{base}{k1}{k2}"
    raise AssertionError("no valid synthetic number found")


def pseudonyms(n: int, seed: int = 1) -> list[str]:
    """Random 12-character pseudonyms, as an extract carries them."""
    rng = random.Random(seed)
    alphabet = string.ascii_uppercase + string.digits
    return ["".join(rng.choice(alphabet) for _ in range(12)) for _ in range(n)]


def make_extract(project_dir: Path, persons: list[str], seed: int = 0) -> Path:
    """A small project extract: `persons` (one row per pseudonym) and `contacts`."""
    import duckdb

    path = project_dir / "data" / "extract.duckdb"
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    people = pd.DataFrame(
        {
            "pseudonym": persons,
            "sex": rng.choice(["F", "M"], len(persons)),
            "kommune": rng.choice(["0301", "1103", "4601", "1151"], len(persons), p=[0.5, 0.3, 0.18, 0.02]),
            "age": rng.integers(18, 95, len(persons)),
        }
    )
    contacts = people.sample(frac=2.0, replace=True, random_state=seed)[["pseudonym"]].assign(
        icpc2=lambda d: rng.choice(["T90", "K86", "R96"], len(d))
    )
    con = duckdb.connect(str(path))
    con.register("people_df", people)
    con.register("contacts_df", contacts)
    con.execute("create table persons as select * from people_df")
    con.execute("create table contacts as select * from contacts_df")
    con.close()
    return path


def records(n: int, seed: int = 0, persons: list[str] | None = None) -> pd.DataFrame:
    """Person-level records for safe-API tests: municipality, sex, age, a cost.

    With `persons` (a project's pseudonyms), record i is about persons[i] (a `pseudonym`
    column), and its row labels are registered as `tre.connect()` registers a query's, so
    Series taken from it carry their persons too.
    """
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "kommune": rng.choice(["0301", "1103", "4601", "1151"], n, p=[0.5, 0.3, 0.19, 0.01]),
            "sex": rng.choice(["F", "M"], n),
            "age": rng.normal(50, 15, n).round(),
            "cost": rng.gamma(2.0, 1000.0, n),
        }
    )
    if persons is not None:
        return as_connected(frame.assign(pseudonym=[persons[i % len(persons)] for i in range(n)]))
    return frame


def as_connected(frame: pd.DataFrame, column: str = "pseudonym") -> pd.DataFrame:
    """`frame` as tre.connect() returns a query's result: row labels that map to its units."""
    from tre.output_check.units import REGISTRY

    frame = frame.copy()
    frame.index = REGISTRY.register(frame[column].to_numpy(dtype=object))
    return frame


def make_notebook(path: Path, cells: list[tuple[str, list[dict]]]) -> Path:
    """A notebook with code cells and the outputs they showed (as a kernel would have left them).

    Each output is a dict: {"stream": text}, {"html": markup}, {"png": True}, {"error": text},
    {"text": plain}, or {"markdown": text} for a markdown cell.
    """
    import nbformat

    notebook = nbformat.v4.new_notebook()
    tiny_png = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=="
    for count, (source, outputs) in enumerate(cells, start=1):
        if outputs and "markdown" in outputs[0]:
            notebook.cells.append(nbformat.v4.new_markdown_cell(outputs[0]["markdown"]))
            continue
        made = []
        for output in outputs:
            if "stream" in output:
                made.append(nbformat.v4.new_output("stream", name="stdout", text=output["stream"]))
            elif "error" in output:
                made.append(
                    nbformat.v4.new_output(
                        "error", ename="ValueError", evalue=output["error"], traceback=[output["error"]]
                    )
                )
            else:
                data = {"text/plain": output.get("text", "")}
                if "html" in output:
                    data["text/html"] = output["html"]
                if output.get("png"):
                    data["image/png"] = tiny_png
                made.append(nbformat.v4.new_output("display_data", data=data))
        notebook.cells.append(nbformat.v4.new_code_cell(source, outputs=made, execution_count=count))
    nbformat.write(notebook, str(path))
    return path


def add_project(store, project_id: str) -> None:
    """A project in the metadata store (the approvals workflow makes them for real)."""
    import datetime as dt

    from tre.models import Project

    with store.transaction() as session:
        session.add(Project(id=project_id, title=f"test project {project_id}", created_at=dt.datetime.now(dt.UTC)))
