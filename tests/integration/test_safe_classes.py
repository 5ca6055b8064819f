"""The classes of attack of issue 14, through tre.safe in a project, each with the safe case
beside it that must not fail: persons not records (1), regressions on tiny groups (3), dates in
every form (5), class disclosure in sums (6), the kernel's report is not evidence (7),
person-level tables behind labels (8), structural zeros and the grand total (9). Releases
audited together (2) are in tests/unit/test_output_check_ledger.py, custom statistics (4) in
tests/unit/test_output_check_statistics.py."""

import dataclasses
import datetime as dt
import io
import json

import numpy as np
import pandas as pd
import pytest
from output_check_factories import as_connected, make_extract, pseudonyms, records

from tre.output_check import load_parameters
from tre.output_check.central import build_central_report
from tre.output_check.intake import WorkspaceOutputs
from tre.output_check.intervals import build_attacker_intervals
from tre.output_check.outputs import build_table_output, evidence_files, read_evidence
from tre.output_check.reports import sha256_file
from tre.output_check.suppression import build_secondary_mask
from tre.output_check.tables import extend_sum
from tre.safe import SafeError, Session


@pytest.fixture
def project(tmp_path):
    people = pseudonyms(600, seed=8)
    make_extract(tmp_path / "p1", people)
    return tmp_path / "p1", people


@pytest.fixture
def session(project):
    return Session(project[0], "p1", out=io.StringIO())


def _persons(people, **columns) -> pd.DataFrame:
    """A frame of the first persons, one row each, as tre.connect() returns it."""
    n = len(next(iter(columns.values())))
    return as_connected(pd.DataFrame({"pseudonym": people[:n], **columns}))


def _report(session, name):
    return json.loads((session.queue / name / "report.json").read_text())


def _cell(report, **key):
    return next(c for c in report["cells"] if all(c["key"][k] == v for k, v in key.items()))


def _checks(report) -> set:
    return {f["check"] for f in report["findings"]}


# --- 1. records are not people ------------------------------------------------------------------


def test_six_contacts_of_one_patient_are_one_person(session, project):
    people = project[1]
    contacts = pd.DataFrame(
        {
            "pseudonym": [people[0]] * 6 + people[1:201],
            "diagnosis": ["R96"] * 6 + ["T90"] * 100 + ["K86"] * 100,
            "sex": ["F"] * 6 + ["F", "M"] * 100,
        }
    )
    contacts = as_connected(contacts)  # as tre.connect() returns it
    table = session.crosstab(contacts.diagnosis, contacts.sex, name="contacts")
    cell = _cell(_report(session, "contacts"), diagnosis="R96", sex="F")
    assert cell["value"] == 6 and "MinimumThresholdCheck" in cell["checks"] and cell["published"] is None
    assert pd.isna(table.loc["R96", "F"])


def test_one_patients_stays_dominate_a_sum(session, project):
    people = project[1]
    stays = pd.DataFrame(
        {
            "pseudonym": [people[0]] * 8 + people[1:31],
            "ward": ["A"] * 38,
            "cost": [10_000.0] * 8 + [100.0] * 30,
        }
    )
    session.pivot_table(stays, values="cost", index="ward", aggfunc="sum", name="stays")
    cell = _cell(_report(session, "stays"), ward="A")
    # by stays the two largest are 20 000 of 83 000; by persons one is 80 000 of 83 000
    assert {"NKCheck", "PPercentCheck"} <= set(cell["checks"]) and cell["published"] is None


def test_a_person_in_two_categories_is_one_person_in_the_margin(session, project):
    people = project[1]
    frame = as_connected(
        pd.DataFrame({"pseudonym": people[:4] + people[:4] + people[4:40], "kind": ["x"] * 4 + ["y"] * 4 + ["z"] * 36})
    )
    session.crosstab(frame.kind, pd.Series("all", index=frame.index, name="group"), margins=True, name="both")
    report = _report(session, "both")
    assert _cell(report, kind="Total", group="all")["value"] == 44  # records, as pandas counts them
    assert report["units"] == "distinct units"


def test_records_whose_persons_are_unknown_go_to_review(session, project):
    data = records(300)  # no pseudonym column, no row labels from tre.connect()
    table = session.crosstab(data.kommune, data.sex, name="unknown")
    report = _report(session, "unknown")
    assert report["status"] == "review" and table.attrs["tre_status"] == "review"
    assert any(f["check"] == "UnitCheck" and "unit=" in f["message"] for f in report["findings"])
    known = session.crosstab(data.kommune, data.sex, name="known", unit=project[1][:300])
    assert known.attrs["tre_status"] != "review"
    with pytest.raises(SafeError, match="one unit per record"):
        session.crosstab(data.kommune, data.sex, unit=project[1][:5])


def test_a_frame_from_tre_connect_carries_its_persons(project):
    import tre

    session = Session(project[0], "p1", out=io.StringIO())
    con = tre.connect(project[0] / "data" / "extract.duckdb")
    contacts = con.execute("select * from contacts").df()
    persons = con.sql("select * from persons").df()
    session.crosstab(contacts.icpc2, contacts.icpc2.str[0].rename("chapter"), name="by_code")
    report = _report(session, "by_code")
    assert report["units"] == "distinct units" and "UnitCheck" not in _checks(report)
    older = persons[persons.age > 40].sort_values("kommune")  # filters and sorts keep the persons
    session.pivot_table(older, values="age", index="kommune", aggfunc="mean", name="ages")
    assert "UnitCheck" not in _checks(_report(session, "ages"))
    renumbered = older.reset_index(drop=True)  # new labels: the persons are lost, and it says so
    session.crosstab(renumbered.kommune, renumbered.sex, name="renumbered")
    assert "UnitCheck" in _checks(_report(session, "renumbered"))


# --- 3. regressions on tiny groups -----------------------------------------------------------------


def _regression_data(people, n=300, flagged=1, seed=0):
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "pseudonym": people[:n],
            "cost": rng.gamma(2.0, 1000.0, n),
            "age": rng.normal(50, 12, n),
            "dummy": [1.0] * flagged + [0.0] * (n - flagged),
        }
    )
    return as_connected(frame)


def test_a_dummy_marking_one_person_fails(session, project):
    data = _regression_data(project[1])
    exog = data[["dummy"]].assign(const=1.0)
    result = session.ols(data.cost, exog, name="one_person")
    assert result.tre_status == "fail"
    report = _report(session, "one_person")
    assert any(f["check"] == "MinimumThresholdCheck" and "'dummy'" in f["message"] for f in report["findings"])
    assert report["residual_dof"] == 298  # the degrees of freedom alone would have passed it


def test_the_reference_level_and_interactions_need_persons_too(session, project):
    rng = np.random.default_rng(1)
    n = 300
    level = np.where(np.arange(n) < 3, "rare", rng.choice(["b", "c"], n))
    data = as_connected(pd.DataFrame({"pseudonym": project[1][:n], "cost": rng.gamma(2, 1000, n), "level": level}))
    exog = pd.get_dummies(data.level, dtype=float)[["b", "c"]].assign(const=1.0)  # "rare" is the reference
    assert session.ols(data.cost, exog, name="reference").tre_status == "fail"
    assert "reference level" in json.dumps(_report(session, "reference")["findings"])
    a = (rng.random(n) < 0.5).astype(float)
    b = np.zeros(n)
    b[:150] = 1.0
    a[:150] = 0.0
    a[:2] = 1.0  # only two persons have both
    inter = data[[]].assign(a=a, b=b, ab=a * b, const=1.0)
    assert session.ols(data.cost, inter, name="interaction").tre_status == "fail"
    assert "'ab'" in json.dumps(_report(session, "interaction")["findings"])


def test_a_logit_outcome_of_a_few_persons_fails_and_a_balanced_model_passes(session, project):
    data = _regression_data(project[1], flagged=40)
    rare = (np.arange(len(data)) < 3).astype(int)
    exog = data[["age"]].assign(const=1.0)
    assert session.logit(pd.Series(rare, index=data.index), exog, name="rare").tre_status == "fail"
    assert session.ols(data.cost, data[["dummy", "age"]].assign(const=1.0), name="fine").tre_status == "pass"


def test_persons_with_many_rows_count_once(session, project):
    """Ten persons with 30 records each: 300 rows, but ten persons against three terms."""
    rng = np.random.default_rng(2)
    frame = as_connected(
        pd.DataFrame(
            {"pseudonym": np.repeat(project[1][:10], 30), "y": rng.normal(size=300), "x": rng.normal(size=300)}
        )
    )
    assert session.ols(frame.y, frame[["x"]].assign(const=1.0), name="few").tre_status == "fail"


# --- 5. dates in every form ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "labels",
    [
        ["05.03.2024", "06.03.2024", "ukjent"],
        ["2024-03-05", "2024-03-06", "ukjent"],
        ["5. mars 2024", "6. mars 2024", "ukjent"],
        ["2024/03/05", "2024/03/06", "ukjent"],
    ],
)
def test_exact_dates_in_any_form_need_larger_groups(session, project, labels):
    people = project[1]
    frame = as_connected(
        pd.DataFrame({"pseudonym": people[:60], "day": [labels[0]] * 7 + [labels[1]] * 30 + [labels[2]] * 23})
    )
    session.crosstab(frame.day, pd.Series("all", index=frame.index, name="g"), name="days")
    report = _report(session, "days")
    assert "ExactDateCheck" in _cell(report, day=labels[0], g="all")["checks"]
    assert "ExactDateCheck" not in _cell(report, day=labels[2], g="all")["checks"]  # ukjent is no date


def test_pandas_datetime_columns_are_dates_not_a_false_alarm(session, project):
    people = project[1]
    days = pd.to_datetime(["2024-03-05"] * 7 + ["2024-03-06"] * 30)
    frame = as_connected(pd.DataFrame({"pseudonym": people[:37], "admitted": days, "sex": ["F", "M"] * 18 + ["F"]}))
    session.crosstab(frame.admitted, frame.sex, name="admitted")  # raised "values outside its categories" before
    report = _report(session, "admitted")
    assert "ExactDateCheck" in _cell(report, admitted="2024-03-05", sex="Total")["checks"]


def test_first_days_of_months_are_months(session, project):
    people = project[1]
    months = pd.to_datetime(["2024-01-01"] * 8 + ["2024-02-01"] * 40 + ["2024-03-01"] * 40)
    frame = as_connected(pd.DataFrame({"pseudonym": people[:88], "month": months}))
    session.crosstab(frame.month, pd.Series("all", index=frame.index, name="g"), name="months")
    assert "ExactDateCheck" not in json.dumps(_report(session, "months"))


# --- 6. class disclosure in magnitude tables ------------------------------------------------------


def test_a_small_group_with_one_non_zero_sum_is_class_disclosure(session, project):
    frame = _persons(
        project[1],
        kommune=["0301"] * 60 + ["1151"] * 12 + ["4601"] * 48,
        service=["home", "nursing"] * 60,
        hours=[5.0] * 60 + [0.0, 7.0] * 6 + [3.0] * 48,
    )
    session.pivot_table(frame, values="hours", index="kommune", columns="service", aggfunc="sum", name="hours")
    cell = _cell(_report(session, "hours"), kommune="1151", service="home")
    assert "ClassDisclosureCheck" in cell["checks"] and cell["published"] is None  # 1151's users all in nursing


# --- 7. the kernel's report is not evidence ---------------------------------------------------------


def test_a_kernel_that_raised_nk_k_fails_centrally(session, project):
    people = project[1]
    data = as_connected(
        pd.DataFrame({"pseudonym": people[:40], "ward": ["A"] * 20 + ["B"] * 20, "cost": [100.0] * 39 + [900_000.0]})
    )
    session.params = dataclasses.replace(session.params, nk_k=1.5, p_ratio=0.0)  # the kernel weakened
    table = session.pivot_table(data, values="cost", index="ward", aggfunc="sum", name="weakened")
    assert table.attrs["tre_status"] == "pass" and not pd.isna(table.loc["B", "cost"])  # the kernel publishes it
    directory = session.queue / "weakened"
    meta = json.loads((directory / "meta.json").read_text())
    central = build_central_report(directory, meta, load_parameters(), frozenset(people), [])
    assert central.status == "fail"
    messages = " ".join(f.message for f in central.findings)
    assert "cells.csv is not what the central check publishes" in messages and "table.csv" in messages
    honest = Session(project[0], "p1", out=io.StringIO())
    honest.pivot_table(data, values="cost", index="ward", aggfunc="sum", name="honest")
    meta = json.loads((honest.queue / "honest" / "meta.json").read_text())
    assert (
        build_central_report(honest.queue / "honest", meta, load_parameters(), frozenset(people), []).status
        == "protected"
    )


def test_a_report_that_says_pass_is_not_read(session, project):
    data = records(300, persons=project[1])
    session.crosstab(data.kommune, data.sex, name="claimed")
    directory = session.queue / "claimed"
    report = json.loads((directory / "report.json").read_text())
    report.update(status="pass", findings=[])
    (directory / "report.json").write_text(json.dumps(report))
    meta = json.loads((directory / "meta.json").read_text())
    central = build_central_report(directory, meta, load_parameters(), frozenset(project[1]), [])
    assert central.status == "protected" and central.details["central"]["kernel_status"] == "protected"
    (directory / "evidence.parquet").unlink()
    assert build_central_report(directory, meta, load_parameters(), frozenset(), []).status == "fail"


def _central(session, name, people):
    directory = session.queue / name
    meta = json.loads((directory / "meta.json").read_text())
    return build_central_report(directory, meta, load_parameters(), frozenset(people), [])


def _one_patients_contacts(people) -> pd.DataFrame:
    """Six contacts of one patient in R96/F, and 200 other persons."""
    return as_connected(
        pd.DataFrame(
            {
                "pseudonym": [people[0]] * 6 + people[1:201],
                "diagnosis": ["R96"] * 16 + ["T90"] * 95 + ["K86"] * 95,
                "sex": ["F"] * 6 + ["M"] * 10 + ["F", "M"] * 95,
            }
        )
    )


@pytest.mark.parametrize(
    "units",
    [
        lambda c: pd.Series(range(len(c)), index=c.index).astype(str),  # record numbers
        lambda c: c.pseudonym.str.lower(),  # the pseudonyms, respelt
        lambda c: " " + c.pseudonym,
        lambda c: pd.Series([f"K{i}" for i in range(len(c))], index=c.index),  # a contact id
    ],
    ids=["record-numbers", "lower-case", "padded", "contact-id"],
)
def test_units_that_are_not_the_projects_persons_go_to_review(session, project, units):
    people = project[1]
    contacts = _one_patients_contacts(people)
    session.crosstab(contacts.diagnosis, contacts.sex, unit=units(contacts), name="units")
    central = _central(session, "units", people)
    assert central.status == "review"
    assert any("units are not the project's persons" in f.message for f in central.findings)
    assert not any(p in f.message for f in central.findings for p in people)  # never names a unit
    session.crosstab(contacts.diagnosis, contacts.sex, name="honest")
    assert _central(session, "honest", people).status == "protected"


@pytest.mark.parametrize("forged", ["no-unit-column", "empty-units", "spec-says-no-units"])
def test_evidence_without_units_goes_to_review_whatever_its_spec_says(session, project, forged):
    people = project[1]
    contacts = _one_patients_contacts(people)
    session.crosstab(contacts.diagnosis, contacts.sex, name="nounit")
    directory = session.queue / "nounit"
    records, spec = read_evidence(
        (directory / "evidence.parquet").read_bytes(), (directory / "evidence.json").read_bytes()
    )
    if forged == "no-unit-column":
        records = records.drop(columns="__unit")
    elif forged == "empty-units":
        records["__unit"] = None
    spec.update(unit=forged == "empty-units", units_unknown=None)
    spec.pop("format")
    made = build_table_output(records, spec, load_parameters(), pseudonyms=frozenset(people))
    for name, data in {**made.files, **evidence_files(records, spec)}.items():
        (directory / name).write_bytes(data)  # a kernel that rewrites everything, consistently
    meta = json.loads((directory / "meta.json").read_text())
    meta["files"] = [{**e, "sha256": sha256_file(directory / e["name"])} for e in meta["files"]]
    central = build_central_report(directory, meta, load_parameters(), frozenset(people), [])
    assert made.report.status in ("pass", "protected") and central.status == "review"  # the forgery alone passes
    assert any(f.check == "UnitCheck" and f.status == "review" for f in central.findings)


def _intake(project):
    root = project[0].parent
    return WorkspaceOutputs(
        root, root / "outputs", file_limit=50 << 20, evidence_limit=500 << 20, ledger_dir=root / "ledger"
    )


def test_outputs_of_open_requests_are_audited_against_each_other(session, project):
    people = project[1]
    rng = np.random.default_rng(5)
    cohort = _persons(people, kommune=rng.choice(["0301", "1103", "4601"], 600), sex=rng.choice(["F", "M"], 600))
    session.crosstab(cohort.kommune, cohort.sex, margins=True, name="everyone")
    session.crosstab(cohort.sex, cohort.kommune, name="turned")  # the same persons: no difference
    session.crosstab(cohort.kommune[1:], cohort.sex[1:], margins=True, name="one-less")  # the same minus one person
    outputs, now = _intake(project), dt.datetime(2026, 12, 3, tzinfo=dt.UTC)
    first = outputs.take_in("p1", "everyone", "REQ-1", None, now)
    assert outputs.take_in("p1", "turned", "REQ-2", None, now).check_status == "pass"
    second = outputs.take_in("p1", "one-less", "REQ-1", None, now)
    assert first.check_status == "pass" and second.check_status == "review"
    found = [f for f in second.report["findings"] if f["check"] == "DifferencingCheck" and f["status"] == "review"]
    assert found and "REQ-1/everyone" in found[0]["message"]
    # at release, the same audit in the same order: nothing new (the refusal stands on its own)
    assert outputs.new_differences("p1", "REQ-1", first, None) == []
    assert outputs.new_differences("p1", "REQ-1", second, None) == []


def test_a_release_without_verified_units_is_in_the_ledger_without_members(session, project):
    people = project[1]
    rng = np.random.default_rng(5)
    cohort = _persons(people, kommune=rng.choice(["0301", "1103", "4601"], 600), cost=rng.uniform(100, 5000, 600))
    made_up = pd.Series([f"Q{i}" for i in range(600)], index=cohort.index)
    session.pivot_table(cohort, values="cost", index="kommune", aggfunc="sum", name="costs", unit=made_up)
    outputs, now = _intake(project), dt.datetime(2026, 12, 3, tzinfo=dt.UTC)
    first = outputs.take_in("p1", "costs", "REQ-1", None, now)
    assert first.check_status == "review"  # an officer approves it: it is released
    outputs.record_release("p1", outputs.ledger_entries("p1", "REQ-1", first, None))
    (entry,) = outputs.ledger("p1")
    assert len(entry.member_units) == 0 and not entry.audited  # no invented persons
    session.pivot_table(cohort[1:], values="cost", index="kommune", aggfunc="sum", name="one-less")
    second = outputs.take_in("p1", "one-less", "REQ-2", None, now)
    assert second.check_status == "review"
    assert any("released without verified units" in f["message"] for f in second.report["findings"])


# --- 8. person-level tables behind labels -----------------------------------------------------------


def test_one_row_per_person_under_made_up_labels_fails(session, project):
    people = project[1]
    frame = as_connected(
        pd.DataFrame(
            {
                "pseudonym": people[:30],
                "patient_no": [f"no {i:03d}" for i in range(30)],
                "diagnosis": np.random.default_rng(3).choice(["E11", "I21", "J44"], 30),
            }
        )
    )
    table = session.crosstab(frame.patient_no, frame.diagnosis, name="listing")
    assert table.attrs["tre_status"] == "fail"
    assert "PersonLevelCheck" in _checks(_report(session, "listing"))


def test_exact_ages_on_a_cohort_are_not_a_listing(session, project):
    data = records(600, persons=project[1])
    table = session.crosstab(data.age, data.sex, name="ages")
    assert table.attrs["tre_status"] == "protected"


# --- 9. fewer false alarms ----------------------------------------------------------------------------


def test_declared_structural_zeros_are_not_class_disclosure(session, project):
    frame = _persons(project[1], sex=["F"] * 100 + ["M"] * 100, pregnant=["yes"] * 30 + ["no"] * 170)
    plain = session.crosstab(frame.sex, frame.pregnant, name="plain")
    assert plain.attrs["tre_status"] == "protected" and pd.isna(plain.loc["M", "no"])  # dragged in
    declared = session.crosstab(
        frame.sex, frame.pregnant, name="declared", structural_zeros=[{"sex": "M", "pregnant": "yes"}]
    )
    assert declared.attrs["tre_status"] == "pass" and not declared.isna().any().any()
    with pytest.raises(SafeError, match="not empty by definition"):
        session.crosstab(frame.sex, frame.pregnant, structural_zeros=[{"sex": "F", "pregnant": "yes"}])
    central = _central(session, "declared", project[1])  # the declaration is a claim an officer confirms
    assert central.status == "review"
    assert any("structural zeros" in f.message and "sex=M, pregnant=yes" in f.message for f in central.findings)
    assert _central(session, "plain", project[1]).status == "protected"


def test_the_grand_total_is_the_last_resort():
    inner = np.array([[2, 3], [0, 1], [1, 15]])
    values = extend_sum(inner).astype(float)
    primary = (values > 0) & (values < 5)
    widths = np.full(values.shape, 5.0)
    secondary = build_secondary_mask(values, primary, widths)
    assert not secondary[-1, -1]  # the grand total stays published
    hidden = primary | secondary
    for index, (low, high) in build_attacker_intervals(values, hidden).items():
        if primary[index]:
            assert high - low >= 5 - 1e-6
