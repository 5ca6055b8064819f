"""Register deliveries for tests: a data file and its manifest, written from rows.

Every ID number here is synthetic (month + 80), drawn by `idnumbers.generate_synthetic`.
`row(source, person, **overrides)` gives a valid row of a source for a person; tests change
the fields they are about.
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import io
import itertools
from dataclasses import dataclass
from pathlib import Path

import duckdb
import numpy as np

from tre.idnumbers import generate_synthetic
from tre.registers import SOURCES, Manifest, manifest_path


@dataclass(frozen=True)
class Person:
    fnr: str
    birth_date: dt.date
    sex: str


def people(n: int, *, seed: int = 1, d_number: bool = False) -> list[Person]:
    """n synthetic persons with distinct numbers, born 1930-2015."""
    rng = np.random.default_rng(seed)
    days = rng.integers(0, (dt.date(2015, 12, 31) - dt.date(1930, 1, 1)).days, n)
    births = np.datetime64("1930-01-01") + days.astype("timedelta64[D]")
    sexes = rng.choice(np.array(["M", "K"]), n)
    numbers = generate_synthetic(rng, births, sexes, d_number=d_number)
    return [Person(str(f), b.astype(dt.date), str(s)) for f, b, s in zip(numbers, births, sexes, strict=True)]


_serial = itertools.count(1)


def row(source: str, person: Person | None = None, **overrides) -> dict:
    """A valid row of `source` about `person`, with `overrides` applied."""
    n = next(_serial)
    fnr = person.fnr if person else ""
    base = {
        "dsf": lambda: {
            "fnr": fnr,
            "birth_date": person.birth_date.isoformat(),
            "sex": person.sex,
            "municipality": "0301",
            "marital_status": "ugift",
            "immigration_date": "",
            "emigration_date": "",
            "death_date": "",
        },
        "dsf_idhistory": lambda: {"old_id": "", "new_id": fnr, "change_date": "2020-01-01", "reason": "d_to_fnr"},
        "kuhr": lambda: {
            "claim_id": f"K{n:09d}",
            "fnr": fnr,
            "contact_time": "2023-03-01 10:15:00",
            "provider_type": "fastlege",
            "provider_id": "P1001",
            "municipality": "0301",
            "contact_type": "konsultasjon",
            "tariff_codes": "2ad 2cd",
            "icpc2": "R74",
            "refund_nok": "162.0",
        },
        "npr": lambda: {
            "episode_id": f"E{n:09d}",
            "fnr": fnr,
            "hospital": "OUS",
            "specialty": "indremedisin",
            "care_level": "poliklinikk",
            "admission_date": "2023-04-01",
            "discharge_date": "2023-04-01",
            "icd10_main": "E119",
            "icd10_secondary": "",
        },
        "ses": lambda: {
            "fnr": fnr,
            "year": "2023",
            "education": "videregaende",
            "income_decile": "5",
            "employment": "ansatt",
        },
        "helsestasjon": lambda: {
            "contact_id": f"H{n:09d}",
            "fnr": fnr,
            "contact_date": "2023-05-02",
            "service": "helsestasjon",
            "provider_id": "HS12",
            "municipality": "0301",
            "contact_type": "konsultasjon",
            "reason": "A97",
            "weight_kg": "12.5",
            "height_cm": "88",
        },
        "reservasjon": lambda: {
            "message_id": f"M{n:09d}",
            "fnr": fnr,
            "kind": "registration",
            "action": "activate",
            "effective_time": "2023-01-01 00:00:00",
        },
        "kvalitetsregister": lambda: {
            "record_id": f"Q{n:09d}",
            "fnr": fnr,
            "registered_date": "2023-02-01",
            "consent": "true",
            "consent_withdrawn_date": "",
            "diagnosis": "E11",
            "hba1c": "53",
        },
        "iplos_historisk_nokkel": lambda: {"old_pseudonym": f"OLD{n:07d}", "fnr": fnr},
        "iplos_historisk": lambda: {
            "old_pseudonym": f"OLD{n:07d}",
            "year": "2010",
            "municipality": "0301",
            "service": "hjemmesykepleie",
            "hours_per_week": "4",
            **{c.name: "2" for c in SOURCES["iplos_historisk"].columns if c.name.startswith("f_")},
        },
    }[source]()
    base.update(overrides)
    return base


def csv_bytes(columns: list[str], rows: list[dict], *, encoding: str = "utf-8", bom: bool = False) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(columns)
    for r in rows:
        writer.writerow([r.get(c, "") for c in columns])
    data = out.getvalue().encode(encoding)
    return (b"\xef\xbb\xbf" if bom else b"") + data


def write_delivery(
    folder: Path,
    source: str,
    rows: list[dict],
    *,
    period: str = "2023",
    fmt: str = "csv",
    encoding: str = "utf-8",
    bom: bool = False,
    columns: list[str] | None = None,
    data: bytes | None = None,
    manifest: dict | None = None,
) -> Path:
    """Write `<source>-<period>.<fmt>` and its manifest into `folder`; returns the data file.

    `data` replaces the file's bytes (hostile files); `manifest` overrides manifest fields
    (the sha256 and row count are the file's own unless overridden).
    """
    folder.mkdir(parents=True, exist_ok=True)
    columns = columns or list(SOURCES[source].column_names)
    path = folder / f"{source}-{period}.{fmt}"
    if data is not None:
        path.write_bytes(data)
    elif fmt == "csv":
        path.write_bytes(csv_bytes(columns, rows, encoding=encoding, bom=bom))
    else:
        _write_parquet(path, source, columns, rows)
    fields = {
        "source": source,
        "period": period,
        "file": path.name,
        "format": fmt,
        "rows": len(rows),
        "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
        "encoding": encoding,
        "producer": "tests",
    }
    fields.update(manifest or {})
    manifest_path(path).write_text(Manifest(**fields).to_json(), encoding="utf-8")
    return path


def _write_parquet(path: Path, source: str, columns: list[str], rows: list[dict]) -> None:
    """A Parquet file with the source's declared column types, as a reporter would write it."""
    types = {c.name: c.type for c in SOURCES[source].columns}
    con = duckdb.connect()
    con.execute("CREATE TABLE t (" + ", ".join(f'"{c}" VARCHAR' for c in columns) + ")")
    con.executemany(
        "INSERT INTO t VALUES (" + ", ".join("?" for _ in columns) + ")",
        [[r.get(c) or None for c in columns] for r in rows],
    )
    casts = ", ".join(f'CAST("{c}" AS {types.get(c, "VARCHAR")}) AS "{c}"' for c in columns)
    con.execute(f"COPY (SELECT {casts} FROM t) TO '{path}' (FORMAT parquet)")
    con.close()
