"""The hostile-delivery suite: each bad file, and what the admin must see.

Either the delivery stops with a one-line message naming the file (and line and column where
there is one) and nothing is stored, or the delivery lands and the bad rows are rejects with
a named rule and column. No message ever holds an ID number.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from delivery_factory import csv_bytes, people, row, write_delivery

from tre.config import load_settings
from tre.linkage.zone import CentralZone
from tre.registers import SOURCES, manifest_path

PERSONS = people(6, seed=21)
[D_PERSON] = people(1, seed=22, d_number=True)
KUHR = list(SOURCES["kuhr"].column_names)


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
    numbers = [p.fnr for p in PERSONS] + [D_PERSON.fnr]
    assert not any(n in result.err or n in result.out for n in numbers), "an ID number in the output"
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
