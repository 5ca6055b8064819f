"""The hostile-delivery suite: each bad file, and what the admin must see.

Either the delivery stops with a one-line message naming the file (and line and column where
there is one) and nothing is stored, or the delivery lands and the bad rows are rejects with
a named rule and column. No message ever holds an ID number.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import pytest
from delivery_factory import csv_bytes, people, row, write_delivery

from tre.config import load_settings
from tre.idnumbers import find_in_text
from tre.linkage.zone import CentralZone
from tre.registers import SOURCES, manifest_path

PERSONS = people(6, seed=21)
[D_PERSON] = people(1, seed=22, d_number=True)
# Someone born on day 1-9 of a month: their number starts with 0, which a spreadsheet drops.
ZERO = next(p for p in people(60, seed=23) if p.fnr.startswith("0"))
KUHR = list(SOURCES["kuhr"].column_names)
FULLWIDTH = str.maketrans("0123456789", "０１２３４５６７８９")


def kuhr_rows(**first_overrides) -> list[dict]:
    rows = [row("kuhr", p) for p in PERSONS[:3]]
    rows[0].update(first_overrides)
    return rows


def broken_check_digit(fnr: str) -> str:
    return fnr[:10] + str((int(fnr[10]) + 1) % 10)


@dataclass
class Case:
    name: str
    build: Callable[[Path], list[str]]  # writes the delivery into a folder; returns the `tre ingest` arguments
    fails: tuple[str, ...] = ()  # fragments of the one-line error; empty: the delivery lands
    rejects: dict = field(default_factory=dict)  # {rule: {column: n}} when it lands
    stored: int | None = None
    findings: dict | None = None  # {rule: n} the delivery's report must show


def simple(rows=None, source="kuhr", **kw) -> Callable[[Path], list[str]]:
    def build(folder: Path) -> list[str]:
        write_delivery(folder, source, kuhr_rows() if rows is None else rows, **kw)
        return [str(folder)]

    return build


def raw(data: bytes, *, rows: int, fmt: str = "csv") -> Callable[[Path], list[str]]:
    return simple(rows=[{}] * rows, data=data, fmt=fmt)


def truncated_with_old_manifest(folder: Path) -> list[str]:
    path = write_delivery(folder, "kuhr", kuhr_rows())
    path.write_bytes(path.read_bytes()[:-25])
    return [str(folder)]


def truncated_mid_line(folder: Path) -> list[str]:
    data = csv_bytes(KUHR, kuhr_rows())[:-25]
    write_delivery(folder, "kuhr", kuhr_rows(), data=data)
    return [str(folder)]


def latin1_declared_utf8(folder: Path) -> list[str]:
    data = csv_bytes(KUHR, kuhr_rows(provider_id="Bodø legevakt"), encoding="latin-1")
    write_delivery(folder, "kuhr", kuhr_rows(), data=data, manifest={"encoding": "utf-8"})
    return [str(folder)]


def with_header(header: list[str], source: str = "kuhr") -> Callable[[Path], list[str]]:
    def build(folder: Path) -> list[str]:
        data = csv_bytes(header, kuhr_rows())
        write_delivery(folder, source, kuhr_rows(), data=data)
        return [str(folder)]

    return build


def kuhr_for_npr(folder: Path) -> list[str]:
    return with_header(KUHR, source="npr")(folder)


def wrong_source_flag(folder: Path) -> list[str]:
    write_delivery(folder, "kuhr", kuhr_rows())
    return [str(folder), "--source", "npr"]


def no_manifest(folder: Path) -> list[str]:
    path = write_delivery(folder, "kuhr", kuhr_rows())
    manifest_path(path).unlink()
    return [str(path)]


def semicolons(folder: Path) -> list[str]:
    text = ";".join(KUHR) + "\n" + "\n".join(";".join(r[c] for c in KUHR) for r in kuhr_rows()) + "\n"
    write_delivery(folder, "kuhr", kuhr_rows(), data=text.encode())
    return [str(folder)]


def embedded_newline(folder: Path) -> list[str]:
    write_delivery(folder, "kuhr", kuhr_rows(tariff_codes="2ad\n2cd"))
    return [str(folder)]


def huge_line(folder: Path) -> list[str]:
    write_delivery(folder, "kuhr", kuhr_rows(tariff_codes="x" * (2 << 20)))
    return [str(folder)]


def header_only_claiming_rows(folder: Path) -> list[str]:
    write_delivery(folder, "kuhr", [], manifest={"rows": 5})
    return [str(folder)]


def spaced(number: str, separator: str = " ") -> str:
    return f"{number[:6]}{separator}{number[6:]}"


def linked_elsewhere(kind: str, what: str) -> Callable[[Path], list[str]]:
    """A delivery whose data file or manifest is a link to a file outside the delivery folder."""

    def build(folder: Path) -> list[str]:
        outside = folder.parent / "outside"
        path = write_delivery(outside, "kuhr", kuhr_rows())
        folder.mkdir(parents=True, exist_ok=True)
        target = path if what == "data" else manifest_path(path)
        other = manifest_path(path) if what == "data" else path
        (folder / other.name).write_bytes(other.read_bytes())
        if kind == "symlink":
            (folder / target.name).symlink_to(target)
        else:
            os.link(target, folder / target.name)
        return [str(folder)]

    return build


def fifo_data(folder: Path) -> list[str]:
    path = write_delivery(folder, "kuhr", kuhr_rows())
    path.unlink()
    os.mkfifo(path)
    return [str(folder)]


def line_ends(kind: str) -> Callable[[Path], list[str]]:
    def build(folder: Path) -> list[str]:
        data = csv_bytes(KUHR, kuhr_rows())
        if kind == "cr":
            data = data.replace(b"\n", b"\r")
        else:
            lines = data.split(b"\n")
            data = b"\r\n".join(lines[:3]) + b"\r\n" + b"\n".join(lines[3:])
        write_delivery(folder, "kuhr", kuhr_rows(), data=data)
        return [str(folder)]

    return build


def utf8_declared_latin1(folder: Path) -> list[str]:
    data = csv_bytes(KUHR, kuhr_rows(provider_id="Bodø legevakt"), encoding="utf-8")
    write_delivery(folder, "kuhr", kuhr_rows(), data=data, manifest={"encoding": "latin-1"})
    return [str(folder)]


def manifest_fields(**fields) -> Callable[[Path], list[str]]:
    def build(folder: Path) -> list[str]:
        path = write_delivery(folder, "kuhr", kuhr_rows())
        manifest = manifest_path(path)
        manifest.write_text(json.dumps({**json.loads(manifest.read_text()), **fields}))
        return [str(folder)]

    return build


def parquet_with(select: str, rows: int = 1) -> Callable[[Path], list[str]]:
    """A KUHR Parquet file made by `select` (the columns' values), with a manifest of `rows`."""

    def build(folder: Path) -> list[str]:
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / "kuhr-2023.parquet"
        con = duckdb.connect()
        con.execute(f"COPY ({select}) TO '{path}' (FORMAT parquet)")
        con.close()
        write_delivery(folder, "kuhr", [{}] * rows, data=path.read_bytes(), fmt="parquet")
        return [str(folder)]

    return build


KUHR_SELECT = (
    "SELECT 'K' || i AS claim_id, '{fnr}' AS fnr, TIMESTAMP '2023-03-01 10:15:00' AS contact_time, "
    "'fastlege' AS provider_type, 'P1' AS provider_id, '0301' AS municipality, 'konsultasjon' AS contact_type, "
    "'2ad' AS tariff_codes, 'R74' AS icpc2, {refund} AS refund_nok FROM range({n}) t(i)"
)


def id_history(pairs) -> Callable[[Path], list[str]]:
    rows = [row("dsf_idhistory", None, old_id=PERSONS[a].fnr, new_id=PERSONS[b].fnr) for a, b in pairs]
    return simple(rows, source="dsf_idhistory")


CASES = [
    Case(
        "bad check digits",
        simple(kuhr_rows(fnr=broken_check_digit(PERSONS[0].fnr))),
        rejects={"id_check_digits": {"fnr": 1}},
        stored=2,
    ),
    Case("not 11 digits", simple(kuhr_rows(fnr="1234")), rejects={"id_not_11_digits": {"fnr": 1}}),
    Case("empty ID number", simple(kuhr_rows(fnr="")), rejects={"missing": {"fnr": 1}}),
    Case("a D-number is a valid ID number", simple([row("kuhr", D_PERSON)]), stored=1),
    Case(
        "unknown column",
        with_header(KUHR + ["diagnose"]),
        fails=("kuhr-2023.csv line 1", "unknown column(s) 'diagnose'"),
    ),
    Case(
        "missing required column",
        with_header([c for c in KUHR if c != "icpc2"]),
        fails=("kuhr-2023.csv line 1", "missing required column(s) icpc2"),
    ),
    Case(
        "missing optional column",
        simple(
            [row("npr", p) for p in PERSONS[:2]],
            source="npr",
            columns=[c for c in SOURCES["npr"].column_names if c != "icd10_secondary"],
        ),
        stored=2,
    ),
    Case(
        "wrong types",
        simple(kuhr_rows(refund_nok="abc", contact_time="yesterday")),
        rejects={"bad_type": {"refund_nok": 1, "contact_time": 1}},
    ),
    Case("Latin-1 with æøå, declared", simple(kuhr_rows(provider_id="Bodø legevakt Æ"), encoding="latin-1"), stored=3),
    Case(
        "Latin-1 declared as UTF-8",
        latin1_declared_utf8,
        fails=("kuhr-2023.csv line 2 column provider_id", "not valid utf-8", "declare the file's encoding"),
    ),
    Case("UTF-8 with BOM", simple(kuhr_rows(), bom=True), stored=3),
    Case(
        "truncated (manifest of the whole file)",
        truncated_with_old_manifest,
        fails=("kuhr-2023.csv", "sha256 does not match"),
    ),
    Case(
        "truncated mid-line",
        truncated_mid_line,
        fails=("kuhr-2023.csv line 4 column", "fewer fields than the header's 10"),
    ),
    Case("empty file", raw(b"", rows=0), fails=("kuhr-2023.csv line 1", "the file is empty")),
    Case("header only", simple([]), stored=0),
    Case(
        "header only, manifest says 5 rows", header_only_claiming_rows, fails=("has 0 data rows; its manifest says 5",)
    ),
    Case(
        "duplicate rows",
        simple(kuhr_rows() + [row("kuhr", PERSONS[3], claim_id="DUP"), row("kuhr", PERSONS[4], claim_id="DUP")]),
        rejects={"duplicate": {"claim_id": 1}},
        stored=4,
    ),
    Case(
        "formula injection",
        simple(kuhr_rows(provider_id="=cmd|' /C calc'!A0", tariff_codes="@SUM(1+1)")),
        rejects={"formula": {"provider_id": 1, "tariff_codes": 1}},
    ),
    Case("NUL byte", simple(kuhr_rows(provider_id="P1\x00001")), rejects={"control_character": {"provider_id": 1}}),
    Case("very long field", simple(kuhr_rows(provider_id="P" * 5000)), rejects={"too_long": {"provider_id": 1}}),
    Case("line over 1 MB", huge_line, fails=("kuhr-2023.csv line 2", "longer than 1048576 bytes")),
    Case(
        "future date",
        simple(kuhr_rows(contact_time="2099-01-01 10:00:00")),
        rejects={"future_date": {"contact_time": 1}},
    ),
    Case(
        "date before 1854",
        simple(kuhr_rows(contact_time="1800-01-01 10:00:00")),
        rejects={"out_of_range": {"contact_time": 1}},
    ),
    Case("negative amount", simple(kuhr_rows(refund_nok="-150")), rejects={"out_of_range": {"refund_nok": 1}}),
    Case(
        "unknown codes",
        simple(kuhr_rows(provider_type="tannlegen", icpc2="R7", municipality="0000")),
        rejects={
            "unknown_code": {"provider_type": 1},
            "bad_icpc2": {"icpc2": 1},
            "unknown_municipality": {"municipality": 1},
        },
    ),
    Case(
        "11 digits that are no ID number",
        simple(kuhr_rows(provider_id=f"ab{broken_check_digit(PERSONS[5].fnr)}cd")),
        stored=3,
    ),
    Case(
        "an ID number in a free-text field",
        simple(kuhr_rows(claim_id=PERSONS[5].fnr)),
        rejects={"id_in_field": {"claim_id": 1}},
    ),
    Case(
        "manifest row count",
        simple(manifest={"rows": 4}),
        fails=("kuhr-2023.csv", "has 3 data rows; its manifest says 4"),
    ),
    Case("manifest hash", simple(manifest={"sha256": "0" * 64}), fails=("kuhr-2023.csv", "sha256 does not match")),
    Case(
        "wrong source (--source)",
        wrong_source_flag,
        fails=("kuhr-2023.manifest.json", "this is a kuhr delivery, not npr"),
    ),
    Case("wrong source (columns)", kuhr_for_npr, fails=("npr-2023.csv line 1", "these are the columns of kuhr")),
    Case("no manifest", no_manifest, fails=("kuhr-2023.manifest.json", "no manifest")),
    Case("semicolon-separated", semicolons, fails=("kuhr-2023.csv line 1", "not comma-separated")),
    Case(
        "a field spanning lines",
        embedded_newline,
        fails=("kuhr-2023.csv line 2 column tariff_codes", "spans several lines"),
    ),
    Case(
        "corrupt Parquet",
        raw(b"PAR1 not really", rows=1, fmt="parquet"),
        fails=("kuhr-2023.parquet", "not a readable Parquet file"),
    ),
    # ID numbers written another way (issue 15, finding 1)
    Case(
        "an ID number spaced in a free-text field",
        simple(kuhr_rows(provider_id=f"Pasient {spaced(PERSONS[5].fnr)}")),
        rejects={"id_in_field": {"provider_id": 1}},
    ),
    Case(
        "an ID number dashed in the record key",
        simple(kuhr_rows(claim_id=spaced(PERSONS[5].fnr, "-"))),
        rejects={"id_in_field": {"claim_id": 1}},
    ),
    Case(
        "an ID number with a no-break space in the key of a row broken otherwise",
        simple(kuhr_rows(claim_id=spaced(PERSONS[5].fnr, "\u00a0"), icpc2="R7")),
        rejects={"bad_icpc2": {"icpc2": 1}, "id_in_field": {"claim_id": 1}},
    ),
    Case(
        "an ID number in fullwidth digits",
        simple(kuhr_rows(tariff_codes=PERSONS[5].fnr.translate(FULLWIDTH))),
        rejects={"id_in_field": {"tariff_codes": 1}},
    ),
    Case(
        "an ID number with invisible characters between its digits",
        simple(kuhr_rows(provider_id="\u200b".join(PERSONS[5].fnr))),
        rejects={"id_in_field": {"provider_id": 1}},
    ),
    Case(
        "an ID number in a numeric column",
        simple(kuhr_rows(refund_nok=PERSONS[5].fnr)),
        rejects={"id_in_field": {"refund_nok": 1}},
    ),
    Case(
        "an ID number that lost its leading zero, in a numeric column",
        simple(kuhr_rows(refund_nok=ZERO.fnr[1:])),
        rejects={"id_in_field": {"refund_nok": 1}},
    ),
    Case(
        "an ID number in scientific notation",
        simple(kuhr_rows(refund_nok=f"{float(PERSONS[5].fnr):.10E}")),
        rejects={"id_in_field": {"refund_nok": 1}},
    ),
    Case(
        "an ID number that lost its leading zero, in scientific notation",
        simple(kuhr_rows(refund_nok=f"{float(ZERO.fnr):.9E}")),  # its digits glued to the E: only read as a number
        rejects={"id_in_field": {"refund_nok": 1}},
    ),
    Case(
        "an ID number stored as a number in Parquet",
        parquet_with(KUHR_SELECT.format(fnr=PERSONS[0].fnr, refund=f"{PERSONS[5].fnr}::DOUBLE", n=1)),
        rejects={"id_in_field": {"refund_nok": 1}},
    ),
    Case("a phone number and an amount are no ID numbers", simple(kuhr_rows(provider_id="tlf 22 33 44 55")), stored=3),
    # Data quality (finding 6)
    Case(
        "death before birth",
        simple([row("dsf", PERSONS[0], death_date="1900-01-01"), row("dsf", PERSONS[1])], source="dsf"),
        rejects={"date_order": {"death_date": 1}},
    ),
    Case(
        "discharge before admission",
        simple([row("npr", PERSONS[0], discharge_date="2023-03-01")], source="npr"),
        rejects={"date_order": {"discharge_date": 1}},
    ),
    Case(
        "a time with a +14:00 offset",
        simple(kuhr_rows(contact_time="2023-03-01 10:15:00+14:00")),
        rejects={"time_zone": {"contact_time": 1}},
    ),
    Case(
        "a time in a date column",
        simple([row("npr", PERSONS[0], admission_date="2023-04-01 23:30:00")], source="npr"),
        rejects={"bad_type": {"admission_date": 1}},
    ),
    Case(
        "rows outside the delivery's period",
        simple(kuhr_rows(contact_time="2021-06-01 10:00:00")),
        stored=3,
        findings={"outside_period": 1},
    ),
    Case(
        "a cyclic ID history",
        id_history([(0, 1), (1, 0), (2, 3)]),
        rejects={"id_history_cycle": {"old_id": 2}},
        stored=1,
    ),
    Case(
        "an ID change to itself",
        id_history([(4, 4)]),
        rejects={"id_history_cycle": {"old_id": 1}},
        stored=0,
    ),
    Case(
        "UTF-8 declared as Latin-1",
        utf8_declared_latin1,
        fails=("kuhr-2023.csv", "declared latin-1, but its bytes are UTF-8", "declare utf-8"),
    ),
    Case(
        "line ends CRLF and LF mixed",
        line_ends("mixed"),
        fails=("kuhr-2023.csv line 4", "line ends of more than one kind", "line 1 ends with CRLF"),
    ),
    Case("line ends CR only", line_ends("cr"), fails=("kuhr-2023.csv line 1", "CR only")),
    Case("manifest rows: true", manifest_fields(rows=True), fails=("kuhr-2023.manifest.json", "rows must be int")),
    Case(
        "a manifest with several problems",
        manifest_fields(rows=-1, sha256="x", format="xls"),
        fails=("kuhr-2023.manifest.json", "3 problem(s)", "rows must be"),
    ),
    Case(
        "a list-typed Parquet column",
        parquet_with(KUHR_SELECT.format(fnr=PERSONS[0].fnr, refund="[1.0, 2.0]", n=1)),
        fails=("kuhr-2023.parquet", "refund_nok hold lists"),
    ),
    # Guards before work (finding 5)
    Case(
        "a Parquet file with far more rows than its manifest",
        parquet_with(KUHR_SELECT.format(fnr=PERSONS[0].fnr, refund="1.0", n=50_000)),
        fails=("kuhr-2023.parquet", "has 50000 data rows by its own metadata; its manifest says 1"),
    ),
    Case(
        "a CSV file with more rows than its manifest",
        simple([row("kuhr", PERSONS[i % 6]) for i in range(200)], manifest={"rows": 2}),
        fails=("kuhr-2023.csv", "has 200 data rows; its manifest says 2"),
    ),
    Case(
        "a CSV file with far more rows than its manifest",
        simple([row("kuhr", PERSONS[i % 6]) for i in range(3000)], manifest={"rows": 2}),
        fails=("kuhr-2023.csv", "has more lines than the 2 rows its manifest says (reading stopped there)"),
    ),
    Case(
        "a CSV file too small for its manifest's rows",
        simple(manifest={"rows": 100_000}),
        fails=("kuhr-2023.csv", "too small for the 100000 rows"),
    ),
    Case(
        "a data file linked from outside the folder",
        linked_elsewhere("symlink", "data"),
        fails=("kuhr-2023.csv", "symbolic link"),
    ),
    Case(
        "a manifest linked from outside the folder",
        linked_elsewhere("symlink", "manifest"),
        fails=("kuhr-2023.manifest.json", "symbolic link"),
    ),
    Case(
        "a data file hard-linked from elsewhere",
        linked_elsewhere("hardlink", "data"),
        fails=("kuhr-2023.csv", "hard link"),
    ),
    Case("a FIFO for a data file", fifo_data, fails=("kuhr-2023.csv", "not a regular file")),
    # An ID number in a name: it would be shown, recorded and audited (and the audit refuses it)
    Case(
        "an ID number as the period, in the file names",
        simple(period=spaced(PERSONS[5].fnr, "-")),
        fails=("kuhr-<ID number>.manifest.json", "period must not hold an ID number"),
    ),
    Case(
        "eleven digits in the period",
        simple(period=f"2023_{PERSONS[5].fnr}"),
        fails=("period must not hold an ID number or a run of 11 digits",),
    ),
]


def digests(tre_env) -> dict:
    return CentralZone(load_settings(tre_env)).digests()


@pytest.fixture
def with_population(initialised, tmp_path):
    """A TRE that has ingested the population register of the persons the cases use."""
    write_delivery(tmp_path / "dsf", "dsf", [row("dsf", p) for p in PERSONS])
    initialised.ok("ingest", str(tmp_path / "dsf"), as_user="ada")
    return initialised


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_hostile_delivery(case: Case, with_population, tre_env, tmp_path):
    arguments = case.build(tmp_path / "hostile")
    before = digests(tre_env)
    result = with_population("ingest", *arguments, "--json", as_user="ada")
    numbers = [p.fnr for p in PERSONS] + [D_PERSON.fnr, ZERO.fnr]
    assert not any(n in result.err or n in result.out for n in numbers), "an ID number in the output"
    assert not find_in_text(result.err + result.out), "an ID number in the messages"
    if case.fails:
        assert result.code == 7, result.err
        [line] = result.err.strip().splitlines()[-1:]
        assert line.startswith("tre: 1 of 1 deliveries failed")
        for fragment in case.fails:
            assert fragment in line, line
        assert "Traceback" not in result.err
        assert digests(tre_env) == before, "a failed delivery changed the stores"
        failed = with_population.ok("audit", "log", "--action", "delivery.failed", "--json", as_user="ada").json()
        assert len(failed) == 1
        return
    assert result.code == 0, result.err
    [outcome] = result.json()
    report = outcome["report"]
    assert report["rejects"] == case.rejects
    if case.findings is not None:
        assert report["findings"] == case.findings
    rejected = sum(sum(c.values()) for c in case.rejects.values())
    if case.stored is not None:
        assert report["rows_stored"] == case.stored
    assert report["rows_rejected"] == report["rows_delivered"] - report["rows_stored"]
    assert report["rows_rejected"] <= rejected
    if case.rejects:
        rejects_file = load_settings(tre_env).central_dir / "rejects" / report["rejects_file"]
        text = rejects_file.read_text()
        assert text.startswith("delivery,file,line,rule,column,key,municipality\n")
        assert not any(n in text for n in numbers)
        assert not find_in_text(text), "an ID number in the rejects file"
        for rule, columns in case.rejects.items():
            for column in columns:
                assert f",{rule},{column}," in text


def test_the_suite_is_large_enough():
    assert len(CASES) >= 20
    assert sum(1 for c in CASES if c.fails) >= 10 and sum(1 for c in CASES if c.rejects) >= 10


def test_a_record_delivered_again_is_stored_as_its_newer_version(with_population, tmp_path):
    rows = kuhr_rows()
    write_delivery(tmp_path / "first", "kuhr", rows, period="2023a")
    corrected = {**rows[0], "icpc2": "K86"}
    write_delivery(tmp_path / "second", "kuhr", [corrected, row("kuhr", PERSONS[4])], period="2023b")
    with_population.ok("ingest", str(tmp_path / "first"), as_user="ada")
    [outcome] = with_population.ok("ingest", str(tmp_path / "second"), "--json", as_user="ada").json()
    assert outcome["report"]["rejects"] == {}
    assert outcome["report"]["rows_stored"] == 2 and outcome["report"]["updated_records"] == 1


def test_a_failed_file_does_not_stop_the_others(with_population, tmp_path):
    folder = tmp_path / "mixed"
    write_delivery(folder, "kuhr", kuhr_rows(), manifest={"rows": 9})
    write_delivery(folder, "npr", [row("npr", p) for p in PERSONS[:2]])
    result = with_population("ingest", str(folder), "--json", as_user="ada")
    assert result.code == 7
    assert {o["file"]: o["status"] for o in result.json()} == {"kuhr-2023.csv": "failed", "npr-2023.csv": "ingested"}
    # the fixed delivery goes in afterwards (the failed one is retried by the same sha256)
    manifest = manifest_path(folder / "kuhr-2023.csv")
    manifest.write_text(manifest.read_text().replace('"rows": 9', '"rows": 3'))
    again = with_population.ok("ingest", str(folder), "--json", as_user="ada").json()
    assert {o["file"]: o["status"] for o in again} == {"kuhr-2023.csv": "ingested", "npr-2023.csv": "already_ingested"}
    assert hashlib.sha256((folder / "kuhr-2023.csv").read_bytes()).hexdigest() == again[0]["report"]["sha256"]


def test_each_bad_delivery_fails_on_its_own_and_is_audited(with_population, tmp_path):
    """A CR-only CSV and a manifest with several problems beside a valid delivery: each bad one
    fails with its own message and a delivery.failed event; the valid one lands."""
    folder = tmp_path / "run"
    line_ends("cr")(folder)
    npr = write_delivery(folder, "npr", [row("npr", p) for p in PERSONS[:2]])
    manifest_path(npr).write_text(json.dumps({**json.loads(manifest_path(npr).read_text()), "rows": -1, "sha256": "x"}))
    write_delivery(folder, "ses", [row("ses", p) for p in PERSONS[:3]])
    result = with_population("ingest", str(folder), "--json", as_user="ada")
    assert result.code == 7 and "internal error" not in result.err
    outcomes = {o["file"]: o for o in result.json()}
    assert {name: o["status"] for name, o in outcomes.items()} == {
        "kuhr-2023.csv": "failed",
        "npr-2023": "failed",
        "ses-2023.csv": "ingested",
    }
    assert "CR only" in outcomes["kuhr-2023.csv"]["message"]
    assert "2 problem(s)" in outcomes["npr-2023"]["message"]
    failed = with_population.ok("audit", "log", "--action", "delivery.failed", "--json", as_user="ada").json()
    assert len(failed) == 2


def test_a_fault_inside_one_delivery_fails_only_that_one(with_population, tmp_path, monkeypatch, tre_env):
    """Whatever goes wrong while one delivery is read (here: a fault in a step), that delivery
    is undone, recorded and audited as failed, and the others of the run land."""
    from tre.linkage import ingest

    folder = tmp_path / "run"
    write_delivery(folder, "npr", [row("npr", p) for p in PERSONS[:2]])
    write_delivery(folder, "ses", [row("ses", p) for p in PERSONS[:3]])
    before = digests(tre_env)
    findings = ingest._Run.findings

    def faulty(run):
        if run.source.name == "npr":
            raise RuntimeError(f"a fault quoting {PERSONS[0].fnr}")
        findings(run)

    monkeypatch.setattr(ingest._Run, "findings", faulty)
    result = with_population("ingest", str(folder), "--json", as_user="ada")
    assert result.code == 7
    outcomes = {o["file"]: o for o in result.json()}
    assert outcomes["npr-2023.csv"]["status"] == "failed" and outcomes["ses-2023.csv"]["status"] == "ingested"
    assert "internal error (RuntimeError)" in outcomes["npr-2023.csv"]["message"]
    after = digests(tre_env)
    assert after["registers"]["npr"] == before["registers"]["npr"]  # nothing of it stored
    log = (load_settings(tre_env).home / "logs" / "errors.log").read_text()
    assert "RuntimeError" in log and PERSONS[0].fnr not in log
