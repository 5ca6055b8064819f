"""Project extracts and data-subject access, on a small world whose every person is known.

Persons (index: what they have):
  0-5   myocardial infarction (I21) in 2023: the heart cohort; 3-8 also type 2 diabetes (E11)
  0     an opt-out effective at 12:30 Norwegian time on the build day (11:30 UTC): left out
  1     an active release-with-FNR opt-out: left out of the § 4-5 delivery
  2     an opt-out activated and deactivated again: delivered
  4     an opt-out effective only in 2030: delivered
  9     I21 in 2022, before the period: not in the cohort
  10    a child with I21: under the cohort's minimum age
  3     consented to the quality register; 4 did not; 5 withdrew
  6     historic IPLOS through the historic key table (§ 6-1)
  11    lives in Bergen, an IPLOS recipient (the § 4-3 statistics)
  12    born in Bergen in March 2024, an IPLOS recipient from June: aged 0 in the cohort
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest
from delivery_factory import Person, people, row, write_delivery

from tre.idnumbers import generate_synthetic

NOW = dt.datetime(2026, 11, 26, 12, 0, tzinfo=dt.UTC)

HEART = """
id = "rek-test-1"
kind = "direct45"
reference = "REK vest 2026/1"
basis = "rek"
legal_basis = "REK approval"
purpose = "research"
purpose_description = "heart cohort"
applicant = "A hospital"
recipient = { org_number = "100000059", name = "A hospital", kind = "health_trust" }
linkage = true
application_complete = 2026-09-01
valid_from = 2026-09-01
valid_until = 2027-12-31
retention_years = 1
date_precision = "day"
threshold = 3

[project]
id = "heart"
title = "Heart cohort"

[[members]]
user = "sara"
role = "pi"

[period]
from = 2023-01-01
to = 2024-12-31

[sources]
npr = ["admission_date", "icd10_main"]
kuhr = ["contact_time", "icpc2"]
dsf = ["birth_date", "sex"]

[cohort]
source = "npr"

[cohort.codes]
icd10_main = ["I21"]

[cohort.age]
min = 18
"""

DIABETES = """
id = "hrl20-test-1"
kind = "hrl20"
reference = "26/1"
basis = "hrl20"
legal_basis = "hrl § 20"
purpose = "research"
purpose_description = "diabetes"
applicant = "A university"
recipient = { org_number = "100000040", name = "A university", kind = "university" }
linkage = true
application_complete = 2026-09-01
valid_from = 2026-09-01
valid_until = 2028-12-31
retention_years = 2
date_precision = "month"

[project]
id = "sugar"
title = "Diabetes"

[[members]]
user = "rita"
role = "pi"

[period]
from = 2023-01-01
to = 2024-12-31

[sources]
npr = ["admission_date", "icd10_main"]
kvalitetsregister = ["registered_date", "hba1c"]
iplos_historisk = ["old_pseudonym", "year", "service"]
dsf = ["birth_date", "sex", "municipality"]

[cohort]
source = "npr"

[cohort.codes]
icd10_main = ["E11"]
"""

BERGEN = """
id = "anon43-test-1"
kind = "anon43"
reference = "26/2"
basis = "anonymous"
legal_basis = "§ 4-3"
purpose = "planning"
purpose_description = "care statistics"
applicant = "Bergen kommune"
recipient = { org_number = "100000032", name = "Bergen kommune", kind = "municipality" }
linkage = false
application_complete = 2026-09-01
valid_from = 2026-09-01
valid_until = 2027-12-31
retention_years = 1
date_precision = "year"
threshold = 3

[project]
id = "bergen"
title = "Care statistics"

[[members]]
user = "mona"
role = "pi"

[period]
from = 2023-01-01
to = 2024-12-31

[sources]
iplos = ["service", "start_date", "hours_per_week"]
dsf = ["birth_date", "sex"]

[cohort]
source = "iplos"
municipalities = ["4601"]

[cohort.age]
min = 0
"""

HISTORY = """
id = "hrl20-test-2"
kind = "hrl20"
reference = "26/3"
basis = "hrl20"
legal_basis = "hrl § 20"
purpose = "research"
purpose_description = "care before 2017"
applicant = "A university"
recipient = { org_number = "100000040", name = "A university", kind = "university" }
linkage = true
application_complete = 2026-09-01
valid_from = 2026-09-01
valid_until = 2028-12-31
retention_years = 2
date_precision = "year"

[project]
id = "history"
title = "Historic care"

[[members]]
user = "rita"
role = "pi"

[period]
from = 2023-01-01
to = 2024-12-31

[sources]
iplos_historisk = ["year", "service"]

[cohort]
source = "iplos_historisk"
"""


def clock(moment=NOW):
    return lambda: moment


def world_people() -> list[Person]:
    """Thirteen synthetic persons: adults born 1950-1972, person 10 a child born 2012 and
    person 12 a baby born 2024."""
    births = [dt.date(1950 + 2 * i, 1 + i % 12, 10 + i) for i in range(13)]
    births[10] = dt.date(2012, 6, 1)
    births[12] = dt.date(2024, 3, 1)
    sexes = ["M", "K"] * 6 + ["K"]
    numbers = generate_synthetic(np.random.default_rng(7), np.array(births, dtype="datetime64[D]"), np.array(sexes))
    return [Person(str(n), b, s) for n, b, s in zip(numbers, births, sexes, strict=True)]


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """Deliveries of the small world, ingested; approvals synced; projects provisioned."""
    from conftest import CLI

    base = tmp_path_factory.mktemp("extracts")
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRE_")}
    env["TRE_CLI_IDENTITY"] = "demo"  # who acts is asserted here, as in make demo (tre/identity.py)
    env["TRE_PROJECT_DISK_QUOTA"] = "0"  # no loop-mounted volumes unless a test wants them
    env.update(
        TRE_HOME=str(base / "home"), TRE_PROJECTS_DIR=str(base / "projects"), TRE_APPROVALS_DIR=str(base / "approvals")
    )
    cli = CLI(env)
    cli.ok("init")
    cli.ok("user", "add", "ada", "--role", "admin")
    for name, role in (("kari", "custodian"), ("sara", "researcher"), ("rita", "researcher"), ("mona", "researcher")):
        cli.ok("user", "add", name, "--role", role, as_user="ada")

    p = world_people()
    dsf = [row("dsf", person) for person in p]
    dsf[11]["municipality"] = dsf[12]["municipality"] = "4601"
    npr = [
        row("npr", p[i], icd10_main="I219", admission_date="2023-03-14", discharge_date="2023-03-20") for i in range(6)
    ]
    npr += [
        row("npr", p[i], icd10_main="E119", admission_date="2024-05-02", discharge_date="2024-05-02")
        for i in range(3, 9)
    ]
    npr += [row("npr", p[9], icd10_main="I210", admission_date="2022-06-01", discharge_date="2022-06-02")]
    npr += [row("npr", p[10], icd10_main="I219", admission_date="2023-08-01", discharge_date="2023-08-02")]
    kuhr = [row("kuhr", p[i], contact_time="2023-05-17 09:30:00", icpc2="K74") for i in range(9)]
    reservations = [
        row("reservasjon", p[0], kind="release_with_fnr", action="activate", effective_time="2026-11-26 12:30:00"),
        row("reservasjon", p[1], kind="release_with_fnr", action="activate", effective_time="2024-02-01 00:00:00"),
        row("reservasjon", p[2], kind="release_with_fnr", action="activate", effective_time="2024-02-01 00:00:00"),
        row("reservasjon", p[2], kind="release_with_fnr", action="deactivate", effective_time="2025-02-01 00:00:00"),
        row("reservasjon", p[4], kind="release_with_fnr", action="activate", effective_time="2030-01-01 00:00:00"),
    ]
    quality = [
        row("kvalitetsregister", p[3], consent="true"),
        row("kvalitetsregister", p[4], consent="false"),
        row("kvalitetsregister", p[5], consent="true", registered_date="2023-02-01"),
        row(
            "kvalitetsregister", p[5], consent="true", registered_date="2023-09-01", consent_withdrawn_date="2023-09-01"
        ),
    ]
    key = row("iplos_historisk_nokkel", p[6])
    historic = [row("iplos_historisk", None, old_pseudonym=key["old_pseudonym"])]
    iplos = [
        {
            **{c: "" for c in ("end_date",)},
            "decision_id": f"D{i}",
            "fnr": p[i].fnr,
            "municipality": "4601",
            "service": "hjemmesykepleie",
            "start_date": "2023-01-10" if i == 11 else "2024-06-01",
            "hours_per_week": "3.5",
            **{
                f"f_{n}": "2"
                for n in (
                    "housework",
                    "shopping",
                    "cooking",
                    "personal_hygiene",
                    "dressing",
                    "eating",
                    "toilet",
                    "mobility_indoor",
                    "mobility_outdoor",
                    "memory",
                    "communication",
                    "own_health",
                )
            },
        }
        for i in (11, 12)
    ]
    deliveries = base / "deliveries"
    for source, rows in (
        ("dsf", dsf),
        ("npr", npr),
        ("kuhr", kuhr),
        ("reservasjon", reservations),
        ("kvalitetsregister", quality),
        ("iplos_historisk_nokkel", [key]),
        ("iplos_historisk", historic),
        ("iplos", iplos),
    ):
        period = "2006-2016" if source.startswith("iplos_historisk") else "2023"
        write_delivery(deliveries, source, rows, period=period)
    cli.ok("ingest", str(deliveries), as_user="ada", clock=clock())

    approvals = Path(env["TRE_APPROVALS_DIR"])
    approvals.mkdir()
    for name, text in (("heart", HEART), ("sugar", DIABETES), ("bergen", BERGEN), ("history", HISTORY)):
        (approvals / f"{name}.toml").write_text(text)
    cli.ok("approvals", "sync", as_user="ada", clock=clock())
    for project in ("heart", "sugar", "bergen", "history"):
        cli.ok("project", "provision", project, as_user="ada", clock=clock())
    cli.people = p
    cli.base = base
    return cli


def extract_tables(world, project) -> dict:
    path = Path(world.environ["TRE_PROJECTS_DIR"]) / project / "data" / "extract.duckdb"
    con = duckdb.connect(str(path), read_only=True)
    try:
        return {
            t: con.sql(f'SELECT * FROM "{t}"').df()
            for (t,) in con.sql("SELECT table_name FROM duckdb_tables()").fetchall()
        }
    finally:
        con.close()


def build(world, project, *options, custodian="kari"):
    """`tre extract build` as ada; a § 4-5 build the custodian approves first (§ 5-2)."""
    first = world("extract", "build", project, *options, as_user="ada", clock=clock())
    if first.code == 8 and "a key custodian must approve this build" in first.err:
        number = re.search(r"--build (\d+)", first.err).group(1)
        world.ok("extract", "approve", project, "--build", number, as_user=custodian, clock=clock())
        first = world("extract", "build", project, *options, as_user="ada", clock=clock())
    assert first.code == 0, first.err
    return first


@pytest.fixture(scope="module")
def built(world):
    results = {p: build(world, p, "--json").json() for p in ("heart", "sugar", "bergen", "history")}
    world.results = results
    return world


def test_the_direct45_delivery_leaves_out_exactly_the_opted_out(built):
    p = built.people
    heart = extract_tables(built, "heart")
    # Person 0's opt-out took effect at 12:30 Norwegian time, half an hour before the build
    # (12:00 UTC is 13:00 in Oslo in November): it counts.
    assert set(heart["persons"]["fnr"]) == {p[i].fnr for i in (2, 3, 4, 5)}
    assert built.results["heart"]["excluded_opt_out"] == 2
    manifest = json.loads((Path(built.environ["TRE_PROJECTS_DIR"]) / "heart" / "data" / "manifest.json").read_text())
    # Described by age, sex and municipality only as a group of at least the threshold (3):
    # the two who opted out are given by their number alone.
    assert manifest["representativeness"]["excluded"] == {"persons": 2}
    assert manifest["representativeness"]["included"]["persons"] == 4
    assert manifest["representativeness"]["included"]["share_women"] == 0.5  # persons 2-5
    # every table says which column names its persons (tre.safe counts them, not rows)
    assert set(manifest["units"]) == set(manifest["tables"]) and set(manifest["units"].values()) == {"pseudonym"}
    # The approval's threshold (3) is written with the extract: the kernel's tre.safe reads it
    # there and cannot go below it.
    assert manifest["disclosure"] == {"threshold": 3}
    from tre.safe import Session

    kernel = Session(Path(built.environ["TRE_PROJECTS_DIR"]) / "heart", "heart", threshold=2)
    assert kernel.params.threshold == 3
    decryptions = built.ok("audit", "log", "--action", "vault.decrypt", "--json", as_user="ada").json()
    assert len(decryptions) == 4 and len({e["subject"] for e in decryptions}) == 4


def test_only_approved_variables_and_coarsened_dates(built):
    sugar = extract_tables(built, "sugar")
    assert set(sugar) == {"persons", "npr", "kvalitetsregister", "iplos_historisk"}
    assert list(sugar["persons"].columns) == ["pseudonym", "birth_date", "sex", "municipality"]
    assert list(sugar["npr"].columns) == ["pseudonym", "admission_date", "icd10_main"]
    assert list(sugar["iplos_historisk"].columns) == ["pseudonym", "year", "service"]  # never the old key
    for frame in (sugar["persons"], sugar["npr"], sugar["kvalitetsregister"]):
        for column in frame.columns:
            if column.endswith("date"):
                assert (frame[column].dropna().map(lambda d: d.day) == 1).all(), column
    heart = extract_tables(built, "heart")
    assert list(heart["persons"].columns) == ["pseudonym", "fnr", "birth_date", "sex"]
    assert {d.day for d in heart["npr"]["admission_date"]} == {14, 2}  # day precision keeps the day


def test_dates_are_dates_for_pandas_in_the_extract_and_its_parquet_files(built):
    """A researcher's `df["birth_date"].dt.year` works whether the table came from DuckDB or
    from its Parquet file (Parquet's DATE would read as objects)."""
    import pandas as pd

    data = Path(built.environ["TRE_PROJECTS_DIR"]) / "sugar" / "data"
    from_duckdb = extract_tables(built, "sugar")["persons"]
    from_parquet = pd.read_parquet(data / "persons.parquet")
    for frame in (from_duckdb, from_parquet):
        assert pd.api.types.is_datetime64_any_dtype(frame["birth_date"])
        assert (frame["birth_date"].dt.day == 1).all()
    assert list(from_parquet["birth_date"].dt.year) == list(from_duckdb["birth_date"].dt.year)
    npr = pd.read_parquet(data / "npr.parquet")
    assert pd.api.types.is_datetime64_any_dtype(npr["admission_date"])


def test_consent_and_historic_iplos_are_exact(built):
    sugar = extract_tables(built, "sugar")
    assert len(sugar["persons"]) == 6  # persons 3-8
    # Only person 3 consented and kept the consent: person 4 never did, and person 5 withdrew,
    # which takes their earlier row out too.
    assert len(sugar["kvalitetsregister"]) == 1
    assert len(sugar["iplos_historisk"]) == 1


def test_a_cohort_from_historic_iplos_without_period_or_age(built):
    """A cohort whose SQL needs none of the period's dates (historic IPLOS is delivered whole,
    § 6-1; no age limits) builds: its persons found through the historic key table."""
    history = extract_tables(built, "history")
    assert built.results["history"]["persons"] == 1  # person 6
    assert len(history["persons"]) == 1 and len(history["iplos_historisk"]) == 1
    assert list(history["iplos_historisk"].columns) == ["pseudonym", "year", "service"]


def test_pseudonyms_stable_per_project_and_different_across_projects(built):
    before = extract_tables(built, "sugar")["persons"]["pseudonym"].tolist()
    built.ok("extract", "build", "sugar", as_user="ada", clock=clock())
    after = extract_tables(built, "sugar")["persons"]["pseudonym"].tolist()
    assert sorted(before) == sorted(after)
    heart = set(extract_tables(built, "heart")["persons"]["pseudonym"])
    assert not heart & set(after)  # persons 3-5 are in both, under different pseudonyms


def test_the_anonymous_delivery_holds_only_protected_statistics(built):
    bergen = extract_tables(built, "bergen")
    assert set(bergen) == {"iplos_service", "iplos_hours_per_week"}
    for table in bergen.values():
        assert "pseudonym" not in table.columns
    service = bergen["iplos_service"]
    # one recipient: under the threshold of 3, so suppressed everywhere it could show
    assert service["persons"].dropna().isin([0]).all()
    assert built.results["bergen"]["persons"] == 2  # the baby is aged 0 (not -1) at the period's start


def test_the_anonymous_delivery_forgets_its_persons_once_the_statistics_are_made(built):
    """§ 4-6 second paragraph, § 4-3: after the build no key table and no person-level working
    set of the project is left (a § 20 project keeps its key table), and the audit says so."""
    central = Path(built.environ["TRE_HOME"]) / "central"
    assert not (central / "keys" / "bergen.duckdb").exists() and not (central / "building" / "bergen").exists()
    assert (central / "keys" / "heart.duckdb").exists()
    data = Path(built.environ["TRE_PROJECTS_DIR"]) / "bergen" / "data"
    con = duckdb.connect(str(data / "extract.duckdb"), read_only=True)
    columns = {c for (c,) in con.sql("SELECT column_name FROM duckdb_columns()").fetchall()}
    con.close()
    assert not columns & {"pid", "pseudonym", "fnr"}
    log = built.ok("audit", "log", "--action", "extract.forget_persons", "--json", as_user="ada").json()
    assert {e["object"] for e in log} == {"project:bergen"} and log[0]["details"]["key_table"] is True


def test_a_failed_anonymous_build_forgets_its_persons_too(built, monkeypatch):
    from tre.linkage import extracts

    def dies(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(extracts, "_write_parquet", dies)  # before anything is released
    assert built("extract", "build", "bergen", as_user="ada", clock=clock()).code != 0
    central = Path(built.environ["TRE_HOME"]) / "central"
    assert not (central / "keys" / "bergen.duckdb").exists() and not (central / "building" / "bergen").exists()
    log = built.ok("audit", "log", "--action", "extract.forget_persons", "--json", as_user="ada").json()
    assert max(log, key=lambda e: e["seq"])["details"]["build"] == "failed"


def test_no_id_number_and_no_pid_anywhere_in_the_projects(built):
    """Every file under projects/, DuckDB and Parquet contents included: no FNR but the
    § 4-5 delivery's, and never a central person key."""
    home = Path(built.environ["TRE_HOME"])
    con = duckdb.connect(str(home / "central" / "registers.duckdb"), read_only=True)
    keys = [r[0] for r in con.sql("SELECT DISTINCT pid FROM dsf").fetchall()]
    con.close()
    # A person key as text (with or without dashes) or as its 16 bytes.
    pids = {str(k) for k in keys} | {str(k).replace("-", "") for k in keys}
    pid_bytes = [k.bytes for k in keys] if hasattr(keys[0], "bytes") else []
    fnrs = {p.fnr for p in built.people}
    allowed = set(extract_tables(built, "heart")["persons"]["fnr"])
    projects = Path(built.environ["TRE_PROJECTS_DIR"])
    for path in projects.rglob("*"):
        if not path.is_file():
            continue
        data = path.read_bytes()
        raw = data.decode("latin-1")
        assert not any(pid in raw for pid in pids), path
        assert not any(b in data for b in pid_bytes), path
        found = set(re.findall(r"(?<!\d)\d{11}(?!\d)", raw)) & fnrs
        if path.suffix in (".duckdb", ".parquet"):
            con = duckdb.connect()
            source = f"read_parquet('{path}')" if path.suffix == ".parquet" else None
            if source is None:
                con.execute(f"ATTACH '{path}' AS x (READ_ONLY)")
                tables = [
                    t for (t,) in con.sql("SELECT table_name FROM duckdb_tables() WHERE database_name='x'").fetchall()
                ]
                texts = [con.sql(f'SELECT * FROM x."{t}"').df().astype(str).to_csv() for t in tables]
            else:
                texts = [con.sql(f"SELECT * FROM {source}").df().astype(str).to_csv()]
            con.close()
            for text in texts:
                assert not any(pid in text for pid in pids), path
                found |= set(re.findall(r"(?<!\d)\d{11}(?!\d)", text)) & fnrs
        if "heart" not in path.parts:
            assert not found, path
        else:
            assert found <= allowed, path


def test_release_records_name_who_received_what(built):
    from tre.config import load_settings
    from tre.db import Store
    from tre.linkage import releases

    home = Path(built.environ["TRE_HOME"])
    con = duckdb.connect(str(home / "central" / "releases.duckdb"), read_only=True)
    per_batch = dict(con.sql("SELECT batch, count(*) FROM release_persons GROUP BY 1").fetchall())
    con.close()
    assert sorted(per_batch.values())[:3] == [1, 2, 4]  # history, bergen, heart
    log = built.ok("audit", "log", "--action", "release.record", "--json", as_user="ada").json()
    assert {e["details"]["recipient"] for e in log} == {
        "A hospital (org. no. 100000059)",
        "A university (org. no. 100000040)",
        "Bergen kommune (org. no. 100000032)",
    }
    settings = load_settings(built.environ)
    assert releases.check_records(settings, Store(settings.db_url)) == []  # every record's persons, by digest


def test_innsyn_matches_the_persons_history(built):
    p = built.people
    report = built.ok("innsyn", "--fnr", p[3].fnr, "--json", as_user="kari", clock=clock()).json()
    sources = {s["source"]: s["records"] for s in report["sources"]}
    assert sources["npr"] == 2 and sources["kuhr"] == 1 and sources["kvalitetsregister"] == 1 and sources["dsf"] == 1
    assert {r["project"] for r in report["releases"]} == {"heart", "sugar"}
    whats = [a["what"] for a in report["identity_accesses"]]
    assert whats.count("vault.decrypt") == 1 and whats[-1] == "vault.lookup"
    assert report["reservations"]["status"] == {"registration": False, "release_with_fnr": False}

    two = built.ok("innsyn", "--fnr", p[2].fnr, "--json", as_user="kari", clock=clock()).json()
    assert [h["active"] for h in two["reservations"]["history"]] == [True, False]
    one = built.ok("innsyn", "--fnr", p[1].fnr, "--json", as_user="kari", clock=clock()).json()
    assert one["reservations"]["status"]["release_with_fnr"] is True
    assert {r["project"] for r in one["releases"]} == set()  # opted out of the only release with FNR
    html = built.ok("innsyn", "--fnr", p[3].fnr, "--html", as_user="kari", clock=clock()).out
    assert "<h2>Releases that included you" in html and p[3].fnr not in html
    refused = built("innsyn", "--fnr", p[3].fnr, as_user="ada", clock=clock())
    assert refused.code == 5
    # `-` reads the number from standard input: out of the shell history and the process list.
    piped = built.subprocess("innsyn", "--fnr", "-", "--json", "--as", "kari", input=p[3].fnr + "\n")
    assert piped.code == 0, piped.err
    assert {r["project"] for r in piped.json()["releases"]} == {"heart", "sugar"}


def test_a_killed_build_leaves_no_persons_for_a_later_release(built, monkeypatch):
    """A build that dies after writing its persons to releases.duckdb but before the metadata
    store commits its release record must not leave them to the next release (the metadata
    store hands a rolled-back id out again): an output release recorded next is not one of
    theirs, and recovery removes the orphaned persons."""
    from tre import audit
    from tre.config import load_settings
    from tre.db import Store
    from tre.models import ReleaseRecord
    from tre.release_anchors import anchor

    record = audit.record

    def dies_before_the_record_commits(session, **event):
        if event.get("action") == "release.record":
            raise KeyboardInterrupt  # as a kill -9 would, in the metadata transaction
        return record(session, **event)

    monkeypatch.setattr(audit, "record", dies_before_the_record_commits)
    assert built("extract", "build", "history", as_user="ada", clock=clock()).code == 130
    monkeypatch.undo()
    # The review page's release of an output comes next and records itself.
    store = Store(load_settings(built.environ).db_url)
    with store.transaction() as session:
        output = ReleaseRecord(
            kind="output",
            project_id="bergen",
            approval_id="anon43-test-1",
            approval_version=1,
            recipient="Bergen kommune",
            legal_basis="§ 4-3",
            persons=None,
            reference="REQ-99",
            released_at=NOW,
            keep_until=dt.date(2031, 12, 31),
        )
        session.add(output)
        anchor(session, output, actor="ada", at=NOW)
    report = built.ok("innsyn", "--fnr", built.people[6].fnr, "--json", as_user="kari", clock=clock()).json()
    assert "REQ-99" not in {r["reference"] for r in report["releases"]}
    assert {r["project"] for r in report["releases"]} == {"sugar", "history"}
    recover = built.ok("audit", "log", "--action", "central.recover", "--json", as_user="ada").json()
    assert recover[0]["details"]["removed_release_batches"] == 1
    home = Path(built.environ["TRE_HOME"])
    con = duckdb.connect(str(home / "central" / "releases.duckdb"), read_only=True)
    batches = {b for (b,) in con.sql("SELECT DISTINCT batch FROM release_persons").fetchall()}
    con.close()
    with store.transaction() as session:
        named = {r.persons_batch for r in session.query(ReleaseRecord).all() if r.persons_batch}
    assert batches == named


def _tampered(built, *statements: tuple[str, dict]):
    """Run raw SQL on the metadata store, past the ORM's guards, as an intruder with the file would."""
    from sqlalchemy import text

    from tre.config import load_settings
    from tre.db import Store

    with Store(load_settings(built.environ).db_url).engine.begin() as connection:
        for statement, values in statements:
            connection.execute(text(statement), values)


def _record_row(built, project: str) -> dict:
    from sqlalchemy import text

    from tre.config import load_settings
    from tre.db import Store

    with Store(load_settings(built.environ).db_url).engine.begin() as connection:
        return dict(
            connection.execute(
                text("SELECT * FROM release_records WHERE project_id = :p ORDER BY id DESC"), {"p": project}
            )
            .mappings()
            .first()
        )


def _refused(built, expected: str) -> None:
    verify = built("audit", "verify", as_user="ada")
    assert verify.code == 11 and expected in verify.err, verify.err
    innsyn = built("innsyn", "--fnr", built.people[3].fnr, "--json", as_user="kari", clock=clock())
    assert innsyn.code == 11 and "record of releases is damaged" in innsyn.err, innsyn.err  # never "no release"
    assert built.people[3].fnr not in innsyn.err + verify.err


def test_a_release_record_deleted_altered_renumbered_or_inserted_is_found(built):
    """§ 4-10: each release record is anchored in the audit chain; `tre audit verify` finds a
    row deleted, altered, renumbered or inserted in the metadata store, and a person deleted
    from its batch in releases.duckdb; innsyn refuses rather than show "no release"."""
    verify = built.ok("audit", "verify", "--json", as_user="ada").json()
    assert verify["release_records"]["problems"] == [] and verify["release_records"]["anchored"] >= 4
    sugar, heart = _record_row(built, "sugar"), _record_row(built, "heart")
    columns = ", ".join(sugar)
    restore = (f"INSERT INTO release_records ({columns}) VALUES ({', '.join(':' + c for c in sugar)})", sugar)

    _tampered(built, ("DELETE FROM release_records WHERE id = :id", sugar))
    _refused(built, f"release record {sugar['id']} (anchored by audit event")
    home = Path(built.environ["TRE_HOME"])
    con = duckdb.connect(str(home / "central" / "releases.duckdb"), read_only=True)
    kept = con.execute("SELECT count(*) FROM release_persons WHERE batch = $1", [sugar["persons_batch"]]).fetchone()
    con.close()
    assert kept[0] == sugar["persons"]  # recovery ran (innsyn) and kept the anchored batch as evidence
    _tampered(built, restore)
    built.ok("audit", "verify", as_user="ada")

    _tampered(built, ("UPDATE release_records SET recipient = 'Nobody' WHERE id = :id", sugar))
    _refused(built, "altered")
    _tampered(built, ("UPDATE release_records SET recipient = :recipient WHERE id = :id", sugar))

    # Renumbered: the two rows trade ids (the record's order and its references change).
    swap = [
        ("UPDATE release_records SET id = -1 WHERE id = :id", sugar),
        ("UPDATE release_records SET id = :id WHERE id = :other", {"id": sugar["id"], "other": heart["id"]}),
        ("UPDATE release_records SET id = :other WHERE id = -1", {"other": heart["id"]}),
    ]
    _tampered(built, *swap)
    _refused(built, "altered or renumbered")
    _tampered(built, *swap)
    built.ok("audit", "verify", as_user="ada")

    forged = {**sugar, "id": 900, "persons_batch": None, "persons_digest": None, "reference": "extract-900"}
    _tampered(built, (restore[0], forged))
    _refused(built, "release record 900 has no anchor in the audit chain")
    _tampered(built, ("DELETE FROM release_records WHERE id = 900", {}))
    # Below the first anchored id is not "from before anchoring": the first anchoring recorded
    # that set (release.legacy: none here), and a record outside it is inserted.
    for low in (0, -1):
        _tampered(built, (restore[0], {**forged, "id": low, "reference": f"extract-{low}"}))
        _refused(built, f"release record {low} has no anchor in the audit chain and is not one of the records")
        _tampered(built, ("DELETE FROM release_records WHERE id = :id", {"id": low}))
    (legacy,) = built.ok("audit", "log", "--action", "release.legacy", "--json", as_user="ada").json()
    assert (legacy["details"]["records"], legacy["details"]["highest"]) == (0, None)

    con = duckdb.connect(str(home / "central" / "releases.duckdb"))
    pid = con.execute("SELECT min(pid) FROM release_persons WHERE batch = $1", [sugar["persons_batch"]]).fetchone()[0]
    con.execute("DELETE FROM release_persons WHERE batch = $1 AND pid = $2", [sugar["persons_batch"], pid])
    con.close()
    try:
        _refused(built, "holds other persons than its digest says")
    finally:
        con = duckdb.connect(str(home / "central" / "releases.duckdb"))
        con.execute("INSERT INTO release_persons VALUES ($1, $2)", [sugar["persons_batch"], pid])
        con.close()
    built.ok("audit", "verify", as_user="ada")


def test_release_records_export_for_an_authority_per_release_without_persons(built, tmp_path):
    """`tre releases export`: one row per release with counts and digests, filtered by project and
    period; no pid and no ID number; who exported is audited; an existing file is not replaced."""
    import csv

    out = tmp_path / "releases.csv"
    built.ok("releases", "export", "--project", "sugar", "--from", "2026-11-26", "--output", str(out), as_user="kari")
    rows = list(csv.DictReader(out.open()))
    assert rows and {(r["project"], r["recipient"], r["persons"]) for r in rows} == {
        ("sugar", "A university (org. no. 100000040)", "6")
    }
    assert all(r["record_digest"] and r["persons_digest"] and r["anchor_event"] for r in rows)
    text = out.read_text()
    home = Path(built.environ["TRE_HOME"])
    con = duckdb.connect(str(home / "central" / "releases.duckdb"), read_only=True)
    pids = {p for (p,) in con.sql("SELECT pid FROM release_persons").fetchall()}
    con.close()
    assert not any(pid in text for pid in pids) and not any(p.fnr in text for p in built.people)
    assert built("releases", "export", "--output", str(out), as_user="kari").code != 0  # not overwritten
    later = tmp_path / "later.json"
    built.ok("releases", "export", "--from", "2026-11-27", "--format", "json", "--output", str(later), as_user="ada")
    assert json.loads(later.read_text()) == []
    listed = built.ok("releases", "list", "--json", as_user="kari").json()
    assert {r["project"] for r in listed} >= {"heart", "sugar", "bergen", "history"}
    assert built("releases", "list", as_user="sara").code == 5  # a researcher may not
    log = built.ok("audit", "log", "--action", "release.export", "--oldest-first", "--json", as_user="ada").json()
    assert [(e["actor"], e["details"]["project"], e["details"]["records"]) for e in log] == [
        ("kari", "sugar", len(rows)),
        ("ada", None, 0),
    ]


def test_no_id_number_leaves_in_an_extract_whatever_the_store_holds(built):
    """An ID number the register store holds in a released column (stored by an older version,
    in any written form) is withheld when the extract is written, and counted in the manifest."""
    p = built.people
    home = Path(built.environ["TRE_HOME"])
    con = duckdb.connect(str(home / "central" / "registers.duckdb"))
    pid = con.sql("SELECT pid FROM dsf WHERE __line = 5").fetchall()[0][0]  # person 3, in the sugar cohort
    spaced = f"E11 {p[11].fnr[:6]} {p[11].fnr[6:]}"
    con.execute(
        "INSERT INTO npr (pid, episode_id, hospital, specialty, care_level, admission_date, icd10_main, __delivery, __line) "
        "VALUES ($1, 'LEGACY1', 'OUS', 'indremedisin', 'poliklinikk', DATE '2023-06-01', $2, 2, 999)",
        [pid, spaced],
    )
    con.close()
    try:
        result = built.ok("extract", "build", "sugar", "--json", as_user="ada", clock=clock()).json()
        assert result["withheld_id_numbers"] == {"npr.icd10_main": 1}
        npr = extract_tables(built, "sugar")["npr"]
        assert npr["icd10_main"].isna().sum() == 1  # that row stays, without the value
        data = Path(built.environ["TRE_PROJECTS_DIR"]) / "sugar" / "data"
        manifest = json.loads((data / "manifest.json").read_text())
        assert manifest["withheld_id_numbers"] == {"npr.icd10_main": 1}
        for path in data.iterdir():
            assert p[11].fnr[:6].encode() + b" " not in path.read_bytes(), path
        log = built.ok("audit", "log", "--action", "extract.build", "--json", as_user="ada").json()
        assert log[0]["details"]["withheld_id_numbers"] == {"npr.icd10_main": 1}
    finally:
        con = duckdb.connect(str(home / "central" / "registers.duckdb"))
        con.execute("DELETE FROM npr WHERE episode_id = 'LEGACY1'")
        con.close()


def test_a_build_writes_only_private_files_and_recovery_removes_what_a_killed_one_left(built, monkeypatch):
    """A § 4-5 build's working copy holds ID numbers in plain text: its files are 0600, and
    what a killed build left in central/building/ is removed by the next use of the zone."""
    from tre.linkage import extracts

    modes = {}
    write_parquet = extracts._write_parquet

    def spy(extract_file, build_dir):
        write_parquet(extract_file, build_dir)
        modes.update({path.name: path.stat().st_mode & 0o777 for path in build_dir.iterdir()})

    monkeypatch.setattr(extracts, "_write_parquet", spy)
    build(built, "heart")
    monkeypatch.undo()
    assert "extract.duckdb" in modes and set(modes.values()) == {0o600}

    central = Path(built.environ["TRE_HOME"]) / "central"
    leftover = central / "building" / "heart" / "extract.duckdb"
    leftover.parent.mkdir(parents=True, exist_ok=True)
    leftover.write_bytes(b"a killed build's copy")
    built.ok("linkage", "report", as_user="ada")
    assert not leftover.parent.exists()
    recover = built.ok("audit", "log", "--action", "central.recover", "--json", as_user="ada").json()
    assert recover[0]["details"]["removed_builds"] == ["heart"]


def test_a_section_45_build_decrypts_nothing_until_a_key_custodian_approves_it(built):
    """§ 5-2 third paragraph: the admin alone cannot have ID numbers decrypted. The build asks
    for a custodian's approval of this build (project, approval version, persons), another
    person gives it after seeing the REK reference, and it is good for that build only."""

    def decryptions():
        return len(built.ok("audit", "log", "--action", "vault.decrypt", "--json", as_user="ada").json())

    before, extracts_before = decryptions(), built.ok("extract", "list", "--json", as_user="ada").json()
    asked = built("extract", "build", "heart", as_user="ada", clock=clock())
    assert asked.code == 8 and "Traceback" not in asked.err
    assert "a key custodian must approve this build: tre extract approve heart --build " in asked.err
    number = re.search(r"--build (\d+)", asked.err).group(1)
    assert decryptions() == before and built.ok("extract", "list", "--json", as_user="ada").json() == extracts_before
    (waiting,) = [b for b in built.ok("extract", "pending", "--json", as_user="kari").json() if b["project"] == "heart"]
    assert (waiting["persons"], waiting["reference"], waiting["approved_by"]) == (4, "REK vest 2026/1", None)

    assert built("extract", "approve", "heart", "--build", number, as_user="ada", clock=clock()).code == 5
    # Nor can the admin become a key custodian, or appoint a second account as one to approve.
    itself = built("user", "add", "ada", "--role", "custodian", as_user="ada")
    assert itself.code == 5 and "separate people" in itself.err
    other = built("user", "add", "mallory", "--role", "custodian", as_user="ada")
    assert other.code == 5 and "granted by a key custodian" in other.err
    own = built("extract", "approve", "heart", "--build", number, as_user="mallory", clock=clock())
    assert own.code == 5
    approved = built.ok("extract", "approve", "heart", "--build", number, as_user="kari", clock=clock())
    assert "REK vest 2026/1" in approved.out and "4 persons" in approved.out
    event = built.ok("audit", "log", "--action", "extract.build.approve", "--json", as_user="ada").json()[-1]
    assert event["actor"] == "kari" and event["details"]["requested_by"] == "ada"
    built.ok("extract", "build", "heart", as_user="ada", clock=clock())
    assert decryptions() == before + 4
    again = built("extract", "build", "heart", as_user="ada", clock=clock())  # the approval is used up
    assert again.code == 8 and decryptions() == before + 4


def test_a_custodian_approval_decrypts_once_only_its_persons_and_expires(built):
    """The approval names the digest of the cohort's pids the custodian was shown: the decryption
    recomputes it and refuses other persons (of the same count too); it is spent by the one
    decryption; one left unused past TRE_BUILD_APPROVAL_DAYS (7) is refused and asked again."""
    from tre.config import load_settings
    from tre.db import Store
    from tre.errors import PermissionDenied
    from tre.linkage import vault
    from tre.linkage.zone import CentralZone

    def decryptions():
        return len(built.ok("audit", "log", "--action", "vault.decrypt", "--json", as_user="ada").json())

    asked = built("extract", "build", "heart", as_user="ada", clock=clock())
    number = int(re.search(r"--build (\d+)", asked.err).group(1))
    (waiting,) = [b for b in built.ok("extract", "pending", "--json", as_user="kari").json() if b["build"] == number]
    assert len(waiting["persons_digest"]) == 64 and waiting["persons_digest"][:16] in asked.err
    built.ok("extract", "approve", "heart", "--build", str(number), as_user="kari", clock=clock())
    built.ok("extract", "build", "heart", as_user="ada", clock=clock())
    ready = [e for e in built.ok("extract", "list", "--json", as_user="ada").json() if e["project"] == "heart"]
    extract = max(e["id"] for e in ready if e["status"] == "ready")
    settings = load_settings(built.environ)
    zone, store = CentralZone(settings, environ=built.environ, clock=clock()), Store(settings.db_url)
    with zone.reading(store, vault=True) as con:
        everyone = [str(r[0]) for r in con.execute("SELECT DISTINCT pid FROM vault.identities ORDER BY pid").fetchall()]
    before = decryptions()
    for pids in (everyone[:4], everyone[-4:]):  # replayed: the spent approval, others of the same count
        with pytest.raises(PermissionDenied, match="no ID number is decrypted"):
            vault.decrypt_for_release(
                zone,
                store,
                pids,
                actor="ada",
                reference=f"extract-{extract}",
                reason="replayed approval, other persons",
                build=number,
            )
    assert decryptions() == before

    late = clock(NOW + dt.timedelta(days=8))
    asked = built("extract", "build", "heart", as_user="ada", clock=clock())
    old = re.search(r"--build (\d+)", asked.err).group(1)
    expired = built("extract", "approve", "heart", "--build", old, as_user="kari", clock=late)
    assert expired.code == 9 and "more than 7 days ago" in expired.err
    built.ok("extract", "approve", "heart", "--build", old, as_user="kari", clock=clock())
    again = built("extract", "build", "heart", as_user="ada", clock=late)  # approved, but unused for 8 days
    assert again.code == 8 and f"--build {old} " not in again.err and decryptions() == before
    built.ok("extract", "build", "heart", as_user="ada", clock=clock())  # within its days: it is spent


def test_a_custodian_approval_holds_only_for_the_approval_version_it_saw(built):
    """An approval given for one version of the approval does not carry over to an edited one."""
    asked = built("extract", "build", "heart", as_user="ada", clock=clock())
    number = re.search(r"--build (\d+)", asked.err).group(1)
    built.ok("extract", "approve", "heart", "--build", number, as_user="kari", clock=clock())
    path = Path(built.environ["TRE_APPROVALS_DIR"]) / "heart.toml"
    path.write_text(path.read_text().replace("threshold = 3", "threshold = 4"))
    built.ok("approvals", "sync", as_user="ada", clock=clock())
    try:
        changed = built("extract", "build", "heart", as_user="ada", clock=clock())
        assert changed.code == 8 and f"--build {number} " not in changed.err + " "
        assert "a key custodian must approve this build" in changed.err
    finally:
        path.write_text(HEART)
        built.ok("approvals", "sync", as_user="ada", clock=clock())


def test_a_publish_cut_short_leaves_the_new_extract_hidden(built, monkeypatch):
    """A build killed after sealing the new extract but before it became data/ leaves it
    unreadable to the project; the next build completes."""
    projects = Path(built.environ["TRE_PROJECTS_DIR"])
    rename = os.rename

    def killed_before_the_swap(src, dst):
        if Path(src).name == ".data-new":
            raise OSError("the build was killed here")
        rename(src, dst)

    monkeypatch.setattr(os, "rename", killed_before_the_swap)
    assert built("extract", "build", "sugar", as_user="ada", clock=clock()).code != 0
    monkeypatch.undo()
    hidden = projects / "sugar" / ".data-new"
    assert (hidden / "extract.duckdb").is_file() and hidden.stat().st_mode & 0o077 == 0
    built.ok("extract", "build", "sugar", as_user="ada", clock=clock())
    assert not hidden.exists() and (projects / "sugar" / "data").stat().st_mode & 0o777 == 0o750
    assert len(extract_tables(built, "sugar")["persons"]) == 6


def _build_with_stored_document(built, approval_id, project, **changes):
    """`tre extract build` while the stored approval document has `changes` (as if synced by an
    older tre); the document is put back afterwards."""
    import sqlite3

    from tre.config import load_settings

    db = sqlite3.connect(load_settings(built.environ).metadata_store_path)
    (document,) = db.execute("SELECT document FROM approvals WHERE id = ?", [approval_id]).fetchone()
    with db:
        changed = json.dumps({**json.loads(document), **changes})
        db.execute("UPDATE approvals SET document = ? WHERE id = ?", [changed, approval_id])
    try:
        return built("extract", "build", project, as_user="ada", clock=clock())
    finally:
        with db:
            db.execute("UPDATE approvals SET document = ? WHERE id = ?", [document, approval_id])
        db.close()


def test_an_approval_that_no_longer_validates_refuses_the_build_in_one_line(built):
    """An approval synced before the schema grew stricter (here: a key the reader no longer
    knows) stops the build with a one-line error that says what to do."""
    refused = _build_with_stored_document(
        built, "hrl20-test-2", "history", cohort={"source": "iplos_historisk", "age": {"minimum": 1}}
    )
    assert refused.code == 8 and "internal error" not in refused.err
    assert "cohort.age.minimum: unknown field" in refused.err and "tre approvals sync" in refused.err


def test_an_approval_for_an_employer_synced_before_the_rule_builds_nothing(built):
    """§ 4-1: an approval already in the store whose recipient is an employer's HR department
    (synced before recipients were checked) is refused at the build, in one line naming the rule,
    and nothing is released."""
    releases = built.ok("audit", "log", "--action", "release.record", "--json", as_user="ada").json()
    hr = {"org_number": "100000075", "name": "A company's HR department", "kind": "employer"}
    refused = _build_with_stored_document(built, "hrl20-test-2", "history", recipient=hr)
    assert refused.code == 8 and "Traceback" not in refused.err and len(refused.err.strip().splitlines()) == 1
    assert "may never receive KPR data (§ 4-1" in refused.err
    assert built.ok("audit", "log", "--action", "release.record", "--json", as_user="ada").json() == releases


def test_an_expired_approval_refuses_the_build_and_locks_the_workspace(built):
    later = clock(dt.datetime(2028, 1, 2, tzinfo=dt.UTC))  # the heart approval ended 2027-12-31
    refused = built("extract", "build", "heart", as_user="ada", clock=later)
    assert refused.code == 8 and "no approval valid today" in refused.err
    status = {s["project"]: s for s in built.ok("project", "status", "--json", as_user="ada", clock=later).json()}
    assert status["heart"]["status"] == "locked"


def test_purge_after_retention_keeps_the_release_record(built):
    """Purge deletes the extract and its key table, and what killed builds left of it: the
    copy in the central zone, a hidden new extract, an old one not yet removed. A project
    whose data/ is already gone is purged all the same."""
    projects = Path(built.environ["TRE_PROJECTS_DIR"])
    central = Path(built.environ["TRE_HOME"]) / "central"
    leftovers = [
        central / "building" / "bergen" / "extract.duckdb",
        projects / "bergen" / ".data-new" / "extract.duckdb",
        projects / "bergen" / ".data-old" / "extract.duckdb",
    ]
    for path in leftovers:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"an extract a killed build left")
    shutil.rmtree(projects / "heart" / "data")
    later = clock(dt.datetime(2028, 1, 2, tzinfo=dt.UTC))  # one year from 2026-11-26: bergen and heart
    purged = built.ok("extract", "purge", "--json", as_user="ada", clock=later).json()
    assert {p["project"] for p in purged} == {"bergen", "heart"}
    for project in ("bergen", "heart"):
        assert sorted(p.name for p in (projects / project).iterdir()) == ["released", "requests", "work"]
        assert not (central / "keys" / f"{project}.duckdb").exists()
    assert not any(path.parent.exists() for path in leftovers)
    log = built.ok("audit", "log", "--action", "extract.purge", "--json", as_user="ada").json()
    assert {e["object"] for e in log} == {"project:bergen", "project:heart"}
    assert built.ok("extract", "purge", as_user="ada", clock=later).out.strip() == "nothing past its retention"


def test_one_build_of_a_project_at_a_time(built):
    """A second build of a project while one runs is refused with one line; it touches nothing."""
    import fcntl

    lock = Path(built.environ["TRE_HOME"]) / "central" / "building" / "sugar.lock"
    lock.parent.mkdir(parents=True, exist_ok=True)
    with open(lock, "a") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        refused = built("extract", "build", "sugar", as_user="ada", clock=clock())
    assert refused.code == 1 and "is being built right now" in refused.err and "Traceback" not in refused.err
    listed = built.ok("extract", "list", "--json", as_user="ada").json()
    assert not any(e["status"] == "building" for e in listed)


HEART20 = HEART.replace('id = "rek-test-1"', 'id = "hrl20-test-3"').replace('kind = "direct45"', 'kind = "hrl20"')
HEART20 = (
    HEART20.replace('reference = "REK vest 2026/1"', 'reference = "26/9"')
    .replace('basis = "rek"', 'basis = "hrl20"')
    .replace('legal_basis = "REK approval"', 'legal_basis = "hrl § 20"')
    .replace('id = "heart"', 'id = "heart20"')
    .replace('user = "sara"', 'user = "rita"')
)


def test_release_with_fnr_opt_outs_are_not_applied_to_a_section_20_extract(built):
    """§ 2-2 / § 4-5: a release-with-FNR opt-out limits deliveries *with* the ID number only.
    The same cohort as the § 4-5 heart delivery (persons 0-5, of whom 0 and 1 opted out), built
    under hrl § 20, keeps every person, decrypts no ID number and says nothing of opt-outs."""
    assert HEART20.count("hrl20") == 3 and "direct45" not in HEART20
    (Path(built.environ["TRE_APPROVALS_DIR"]) / "heart20.toml").write_text(HEART20)
    built.ok("approvals", "sync", as_user="ada", clock=clock())
    built.ok("project", "provision", "heart20", as_user="ada", clock=clock())
    decrypted = len(built.ok("audit", "log", "--action", "vault.decrypt", "--json", as_user="ada").json())
    result = built.ok("extract", "build", "heart20", "--json", as_user="ada", clock=clock()).json()
    assert result["persons"] == 6 and result["excluded_opt_out"] == 0
    tables = extract_tables(built, "heart20")
    assert len(tables["persons"]) == 6 and "fnr" not in tables["persons"].columns
    manifest = json.loads((Path(built.environ["TRE_PROJECTS_DIR"]) / "heart20" / "data" / "manifest.json").read_text())
    assert manifest["excluded_release_with_fnr_opt_out"] == 0 and manifest["representativeness"] is None
    assert not any("opt-out" in note for note in manifest["notes"])
    assert len(built.ok("audit", "log", "--action", "vault.decrypt", "--json", as_user="ada").json()) == decrypted
    one = built.ok("innsyn", "--fnr", built.people[1].fnr, "--json", as_user="kari", clock=clock()).json()
    assert "heart20" in {r["project"] for r in one["releases"]}  # opted out of FNR releases, not of § 20


HEALTH_CENTRE_VARIABLES = (
    'helsestasjon = ["contact_date", "service", "contact_type", "reason", "weight_kg", "height_cm"]'
)
CHILD = (
    HISTORY.replace('"hrl20-test-2"', '"hrl20-test-4"')
    .replace('"26/3"', '"26/11"')
    .replace('"care before 2017"', '"health-centre contacts"')
    .replace('date_precision = "year"', 'date_precision = "day"')
    .replace('id = "history"', 'id = "child"')
    .replace('title = "Historic care"', 'title = "Health-centre contacts"')
    .replace("to = 2024-12-31", "to = 2023-12-31")
    .replace('iplos_historisk = ["year", "service"]', HEALTH_CENTRE_VARIABLES)
    .replace('source = "iplos_historisk"', 'source = "helsestasjon"')
)


def _contacts(built) -> pd.DataFrame:
    table = extract_tables(built, "child")["helsestasjon"]
    return table.sort_values(["contact_date", "pseudonym"]).reset_index(drop=True)


def test_a_late_registration_opt_out_blanks_the_stored_health_fields_from_its_effective_date(built, tmp_path):
    """§ 2-2 first paragraph: an opt-out delivered after the contacts it covers blanks their
    health fields in the store (from its effective date; administrative fields stay), later
    extracts show them blank, and the audit says how many rows of how many persons (no values)."""
    assert "iplos" not in CHILD and "2024" not in CHILD
    p = built.people
    contacts = tmp_path / "contacts"
    rows = [
        row("helsestasjon", p[7], contact_date="2023-02-01", reason="A97", weight_kg="60", height_cm="170"),
        row("helsestasjon", p[7], contact_date="2023-06-01", reason="R05", weight_kg="61", height_cm="170"),
        row("helsestasjon", p[8], contact_date="2023-06-01", reason="A97", weight_kg="70", height_cm="180"),
    ]
    write_delivery(contacts, "helsestasjon", rows, period="2023")
    built.ok("ingest", str(contacts), as_user="ada", clock=clock())
    (Path(built.environ["TRE_APPROVALS_DIR"]) / "child.toml").write_text(CHILD)
    built.ok("approvals", "sync", as_user="ada", clock=clock())
    built.ok("project", "provision", "child", as_user="ada", clock=clock())
    built.ok("extract", "build", "child", as_user="ada", clock=clock())
    before = _contacts(built)
    assert before["reason"].notna().all() and len(before) == 3

    opt_out = tmp_path / "opt-out"
    message = row("reservasjon", p[7], kind="registration", action="activate", effective_time="2023-04-01 00:00:00")
    write_delivery(opt_out, "reservasjon", [message], period="2023")
    out = built.ok("ingest", str(opt_out), as_user="ada", clock=clock()).out
    assert "health fields blanked in 1 earlier rows of 1 persons" in out
    built.ok("extract", "build", "child", as_user="ada", clock=clock())
    after = _contacts(built)
    blanked = after[after["reason"].isna()]
    assert len(blanked) == 1 and pd.Timestamp(blanked["contact_date"].iloc[0]).date() == dt.date(2023, 6, 1)
    assert blanked[["weight_kg", "height_cm"]].isna().all(axis=None)
    assert blanked[["service", "contact_type"]].notna().all(axis=None)  # administrative data stay
    assert after["reason"].notna().sum() == 2  # the contact before the effective date, and person 8's
    home = Path(built.environ["TRE_HOME"])
    con = duckdb.connect(str(home / "central" / "registers.duckdb"), read_only=True)
    stored = con.sql("SELECT contact_date, reason, weight_kg, provider_id FROM helsestasjon ORDER BY ALL").fetchall()
    con.close()
    assert sum(r[1] is None and r[2] is None and r[3] is not None for r in stored) == 1
    log = built.ok("audit", "log", "--action", "reservation.late_opt_out", "--json", as_user="ada").json()
    assert [(e["details"]["rows_blanked"], e["details"]["persons"]) for e in log] == [({"helsestasjon": 1}, 1)]
    assert "R05" not in json.dumps(log) and p[7].fnr not in json.dumps(log)
    # A second message for the same person finds nothing left to blank.
    again = tmp_path / "again"
    write_delivery(again, "reservasjon", [{**message, "message_id": "M-again"}], period="2023")
    built.ok("ingest", str(again), as_user="ada", clock=clock())
    assert len(built.ok("audit", "log", "--action", "reservation.late_opt_out", "--json", as_user="ada").json()) == 1

    # Contacts under a D-number, later tied to the reserved person by the ID history: blanked then.
    (d_number,) = people(1, seed=31, d_number=True)
    early = tmp_path / "d-number"
    write_delivery(early, "helsestasjon", [row("helsestasjon", d_number, contact_date="2023-08-01")], period="2023")
    built.ok("ingest", str(early), as_user="ada", clock=clock())
    history = tmp_path / "history"
    link = row("dsf_idhistory", p[7], old_id=d_number.fnr, change_date="2023-09-01")
    write_delivery(history, "dsf_idhistory", [link], period="2023")
    assert (
        "blanked in 1 earlier rows of 1 persons" in built.ok("ingest", str(history), as_user="ada", clock=clock()).out
    )


@pytest.mark.slow
def test_a_killed_build_never_shows_a_partial_extract(built):
    """kill -9 at random moments: data/ is the old extract or the new one, whole."""
    projects = Path(built.environ["TRE_PROJECTS_DIR"])
    data = projects / "sugar" / "data"
    env = {**built.environ, "TRE_USER": "ada"}
    for delay in (0.2, 0.6, 1.0, 1.5, 2.2):
        proc = subprocess.Popen([str(Path(os.sys.executable).parent / "tre"), "extract", "build", "sugar"], env=env)
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        if data.exists():
            manifest = json.loads((data / "manifest.json").read_text())
            for name, digest in manifest["files"].items():
                assert hashlib.sha256((data / name).read_bytes()).hexdigest() == digest
        hidden = projects / "sugar" / ".data-new"
        if hidden.exists():
            assert hidden.stat().st_mode & 0o077 == 0  # never readable by the project mid-build
    final = built.subprocess("extract", "build", "sugar", "--as", "ada")
    assert final.code == 0, final.err
    assert len(extract_tables(built, "sugar")["persons"]) == 6
    # Nothing the killed builds wrote is left behind, in the project or the central zone, and
    # every release record has exactly its persons (a killed build's batch is gone).
    assert sorted(p.name for p in (projects / "sugar").iterdir()) == ["data", "released", "requests", "work"]
    assert not any((Path(built.environ["TRE_HOME"]) / "central" / "building").glob("*/"))
    from tre.config import load_settings
    from tre.db import Store
    from tre.linkage import releases

    settings = load_settings(built.environ)
    store = Store(settings.db_url)
    assert releases.check_records(settings, store) == []
    assert releases.recover_orphans(settings, store) == []
