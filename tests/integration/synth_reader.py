"""Reading synthetic deliveries back, and an independent check of every row against the contract.

The checker does not use the generator's code: it reads the files as an ingest would, with
the contract in `tre.registers`, and lists each row's problems by dirt kind, so tests can
compare what it finds with `dirt.json`.
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from tre.idnumbers import validate_array
from tre.registers import CODE_LISTS, ICD10, ICPC2, SOURCES, Manifest, municipality_numbers

FAMILY = {
    "VARCHAR": pa.types.is_string,
    "DATE": pa.types.is_date32,
    "TIMESTAMP": pa.types.is_timestamp,
    "INTEGER": pa.types.is_int32,
    "DOUBLE": pa.types.is_float64,
    "BOOLEAN": pa.types.is_boolean,
}
ARROW = {
    "VARCHAR": pa.string(),
    "DATE": pa.date32(),
    "TIMESTAMP": pa.timestamp("s"),
    "INTEGER": pa.int32(),
    "DOUBLE": pa.float64(),
    "BOOLEAN": pa.bool_(),
}


def read(path: Path) -> pa.Table:
    """A delivery file as an Arrow table typed by the contract (CSV) or as stored (Parquet)."""
    source = SOURCES[path.name.split("-")[0]]
    if path.suffix == ".parquet":
        return pq.read_table(path)
    header = path.open(encoding="utf-8").readline().rstrip("\n").split(",")
    assert header == list(source.column_names), f"{path.name}: header {header}"
    options = pacsv.ConvertOptions(
        column_types={c.name: ARROW[c.type] for c in source.columns},
        strings_can_be_null=True,
        null_values=[""],
    )
    return pacsv.read_csv(path, convert_options=options)


def deliveries(out: Path) -> dict[tuple[str, str], Path]:
    """{(source, period): data file} from the manifests in `out`."""
    found = {}
    for manifest_file in sorted(out.glob("*.manifest.json")):
        m = Manifest.read(manifest_file)
        found[(m.source, m.period)] = out / m.file
    return found


def dirt_ledger(out: Path) -> dict:
    return json.loads((out / "dirt.json").read_text(encoding="utf-8"))


class Universe:
    """Everyone the population register knows, from the DSF snapshots and the ID history."""

    def __init__(self, files: dict):
        self.death: dict[str, str] = {}
        self.emigration: dict[str, str] = {}
        self.current: dict[str, str] = {}  # any ID -> the person's latest ID
        for (source, _), path in sorted(files.items()):
            if source == "dsf":
                t = read(path).to_pydict()
                for fnr, death, emigration in zip(t["fnr"], t["death_date"], t["emigration_date"], strict=True):
                    self.current.setdefault(fnr, fnr)
                    if death is not None:
                        self.death[fnr] = str(death)
                    if emigration is not None:
                        self.emigration[fnr] = str(emigration)
        for (source, _), path in sorted(files.items()):
            if source == "dsf_idhistory":
                t = read(path).to_pydict()
                for old, new in zip(t["old_id"], t["new_id"], strict=True):
                    self.current[old] = new

    def latest(self, fnr: str) -> str:
        seen = set()
        while self.current.get(fnr, fnr) != fnr and fnr not in seen:
            seen.add(fnr)
            fnr = self.current[fnr]
        return fnr


def problems(path: Path, period: str, universe: Universe) -> dict[str, set[int]]:
    """Row numbers of each kind of problem in one delivery ('contract' for anything else)."""
    source = SOURCES[path.name.split("-")[0]]
    table = read(path)
    n = table.num_rows
    found: dict[str, set[int]] = defaultdict(set)
    for c in source.columns:
        column = table.column(c.name)
        assert FAMILY[c.type](column.type), f"{path.name}: {c.name} is {column.type}, contract says {c.type}"
        values = column.to_pylist()
        missing = [i for i, v in enumerate(values) if v is None]
        if c.required:
            found["contract"].update(missing)
        present = [(i, v) for i, v in enumerate(values) if v is not None]
        if c.codes == "municipality":
            known = municipality_numbers()
            found["unknown_municipality"].update(i for i, v in present if v not in known)
        elif c.codes == "icpc2":
            found["contract"].update(i for i, v in present if not ICPC2.match(v))
        elif c.codes == "icd10":
            found["contract"].update(i for i, v in present if not ICD10.match(v))
        elif c.codes:
            found["contract"].update(i for i, v in present if v not in CODE_LISTS[c.codes])
        if c.minimum is not None:
            found["contract"].update(i for i, v in present if v < c.minimum)
        if c.maximum is not None:
            found["contract"].update(i for i, v in present if v > c.maximum)

    ids = [c.name for c in source.columns if c.role == "identity"]
    for name in ids:
        values = np.array(table.column(name).to_pylist(), dtype=object).astype(str)
        check = validate_array(values)
        bad = set(np.flatnonzero(~check["valid"]).tolist())
        found["bad_check_digits"].update(bad)
        found["contract"].update(i for i in np.flatnonzero(check["valid"] & ~check["synthetic"]).tolist())
        if source.name.startswith("dsf"):
            continue
        for i, fnr in enumerate(values):
            if i in bad:
                continue
            if fnr not in universe.current:
                found["unknown_fnr"].add(i)
    if source.event_date and "fnr" in source.column_names:
        events = table.column(source.event_date)
        if pa.types.is_timestamp(events.type):
            events = pc.cast(events, pa.date32())
        dates = [str(d) for d in events.to_pylist()]
        fnrs = table.column("fnr").to_pylist()
        for i, (fnr, when) in enumerate(zip(fnrs, dates, strict=True)):
            person = universe.latest(fnr)
            if person in universe.death and when > universe.death[person]:
                found["after_death"].add(i)
            if person in universe.emigration and when > universe.emigration[person]:
                found["after_emigration"].add(i)
        if period.isdigit() and source.name != "iplos":
            found["outside_period"].update(i for i, d in enumerate(dates) if d[:4] != period)
    if source.key:
        keys = table.column(source.key).to_pylist()
        rows = table.to_pylist()
        first_of: dict = {}
        for i, (key, row) in enumerate(zip(keys, rows, strict=True)):
            if key in first_of:
                found["duplicate"].add(i)
                assert row == rows[first_of[key]], f"{path.name}: row {i} reuses a key with other content"
            else:
                first_of[key] = i
    assert all(0 <= i < n for rows in found.values() for i in rows)
    return {k: v for k, v in found.items() if v}
