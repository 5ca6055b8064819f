"""`tre synth` output as an ingest would meet it: the contract, the dirt, the realism."""

from __future__ import annotations

import hashlib

import duckdb
import pytest
from synth_reader import Universe, deliveries, dirt_ledger, problems, read

from tre.registers import SOURCES, Manifest, manifest_path, municipalities
from tre.synth import dirt_kinds, generate
from tre.synth.writer import sha256_of


@pytest.fixture(scope="module")
def dirty(tmp_path_factory):
    """Two years of 4000 residents, CSV, with a high dirt rate so every kind shows up."""
    out = tmp_path_factory.mktemp("synth") / "dirty"
    summary = generate(out, persons=4000, years=2, seed=11, dirt_rate=0.02, last_year=2024)
    return out, summary


@pytest.fixture(scope="module")
def clean(tmp_path_factory):
    """One year of 40 000 residents without dirt, Parquet: enough for rates."""
    out = tmp_path_factory.mktemp("synth") / "clean"
    summary = generate(out, persons=40_000, years=1, seed=3, format="parquet", dirt_rate=0.0)
    return out, summary


def test_every_source_is_delivered_with_a_true_manifest(dirty):
    out, summary = dirty
    files = deliveries(out)
    years = ["2023", "2024"]
    expected = {(s, y) for s in SOURCES if not s.startswith("iplos_historisk") for y in years}
    expected |= {("iplos_historisk", "2006-2016"), ("iplos_historisk_nokkel", "2006-2016")}
    assert set(files) == expected
    assert {f.file for f in summary.files} == {p.name for p in files.values()}
    for (source, period), path in files.items():
        m = Manifest.read(manifest_path(path))
        assert path.name == f"{source}-{period}.csv" and m.format == "csv" and m.encoding == "utf-8"
        assert m.sha256 == sha256_of(path)
        assert m.rows == read(path).num_rows == sum(1 for _ in path.open(encoding="utf-8")) - 1
        assert "seed=11" in m.producer and m.extra["seed"] == 11 and m.extra["synthetic"] is True
    assert sorted(p.name for p in out.iterdir() if not p.name.endswith((".csv", ".manifest.json"))) == ["dirt.json"]


def test_rows_break_the_contract_exactly_where_dirt_json_says(dirty):
    """An independent check of every row finds the recorded dirt, and nothing else."""
    out, summary = dirty
    files = deliveries(out)
    universe = Universe(files)
    ledger = dirt_ledger(out)
    total = 0
    for (source, period), path in files.items():
        recorded = {kind: set(entry["rows"]) for kind, entry in ledger["files"][path.name].items()}
        assert set(recorded) == {k.value for k in dirt_kinds(SOURCES[source])}
        found = problems(path, period, universe)
        assert found == {kind: rows for kind, rows in recorded.items() if rows}, path.name
        for kind, rows in recorded.items():
            assert ledger["files"][path.name][kind]["count"] == len(rows) == summary.dirt[path.name][kind]
            total += len(rows)
    assert total == sum(ledger["totals"].values()) and total > 0
    # Every kind occurs at this rate and size.
    assert all(ledger["totals"][k] > 0 for k in ledger["totals"])


def test_clean_output_passes_every_check(clean):
    out, summary = clean
    files = deliveries(out)
    universe = Universe(files)
    for (_, period), path in files.items():
        assert problems(path, period, universe) == {}, path.name
    assert all(count == 0 for kinds in summary.dirt.values() for count in kinds.values())


def test_parquet_columns_are_typed_as_the_contract_says(clean):
    out, _ = clean
    for (source, _), path in deliveries(out).items():
        schema = read(path).schema
        assert schema.names == list(SOURCES[source].column_names)


def test_same_seed_same_bytes_other_seed_other_bytes(tmp_path):
    def digest(out):
        return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(out.iterdir())}

    for fmt in ("csv", "parquet"):
        first = generate(tmp_path / f"a-{fmt}", persons=1500, years=2, seed=42, format=fmt, dirt_rate=0.01)
        second = generate(tmp_path / f"b-{fmt}", persons=1500, years=2, seed=42, format=fmt, dirt_rate=0.01)
        other = generate(tmp_path / f"c-{fmt}", persons=1500, years=2, seed=43, format=fmt, dirt_rate=0.01)
        assert digest(tmp_path / f"a-{fmt}") == digest(tmp_path / f"b-{fmt}")
        assert [f.sha256 for f in first.files] == [f.sha256 for f in second.files]
        assert digest(tmp_path / f"a-{fmt}")[f"kuhr-2024.{fmt}"] != digest(tmp_path / f"c-{fmt}")[f"kuhr-2024.{fmt}"]
        assert [f.rows for f in other.files] != [f.rows for f in first.files]


def _sql(out, query):
    return duckdb.sql(query.replace("D/", f"{out}/")).fetchall()


def test_population_is_norway_in_miniature(clean):
    out, summary = clean
    dsf = "'D/dsf-2024.parquet'"
    ((registered, deaths, emigrated, immigrated, born),) = _sql(
        out,
        f"""select count(*), count(death_date), count(emigration_date),
                   count(*) filter (immigration_date >= '2024-01-01'), count(*) filter (birth_date >= '2024-01-01')
            from {dsf}""",
    )
    assert registered == summary.registered
    assert 0.0065 < deaths / summary.persons < 0.0095  # ~0.8 % a year
    assert 0.003 < emigrated / summary.persons < 0.009
    assert 0.008 < immigrated / summary.persons < 0.012
    assert 0.008 < born / summary.persons < 0.011
    ((old_share,),) = _sql(
        out,
        f"select avg((date_diff('year', birth_date, death_date) >= 80)::int) from {dsf} where death_date is not null",
    )
    assert old_share > 0.5  # most deaths are of the old
    ((municipality_count, oslo),) = _sql(
        out, f"select count(distinct municipality), count(*) filter (municipality = '0301') from {dsf}"
    )
    assert municipality_count == 357
    oslo_share = next(m.population for m in municipalities() if m.number == "0301") / 5_550_203
    assert abs(oslo / registered - oslo_share) < 0.01
    ((male_share, over_80),) = _sql(
        out, f"select avg((sex = 'M')::int), avg((birth_date < '1944-01-01')::int) from {dsf}"
    )
    assert 0.49 < male_share < 0.52 and 0.03 < over_80 < 0.07


def test_kuhr_rates(clean):
    out, summary = clean
    kuhr, dsf = "'D/kuhr-2024.parquet'", "'D/dsf-2024.parquet'"
    ((gp_per_person, gp_share, legevakt_share),) = _sql(
        out,
        f"""select count(*) filter (provider_type = 'fastlege') / (select count(*) from {dsf}),
                   count(distinct fnr) filter (provider_type = 'fastlege') / (select count(*) from {dsf}),
                   count(distinct fnr) filter (provider_type = 'legevakt') / (select count(*) from {dsf})
            from {kuhr}""",
    )
    assert 2.8 < gp_per_person < 3.15  # about 3 GP contacts a person-year
    assert 0.69 < gp_share < 0.75  # 72 % see their GP in a year
    assert 0.145 < legevakt_share < 0.175  # 16 % use an emergency clinic
    top = [
        code
        for (code,) in _sql(
            out, f"select icpc2 from {kuhr} where provider_type = 'fastlege' group by 1 order by count(*) desc limit 10"
        )
    ]
    assert {"R74", "A04", "L03", "P76", "T90", "K86"} <= set(top)
    # Tariff codes follow contact type and time: evening codes only outside weekday office hours.
    mismatches = _sql(
        out,
        f"""select count(*) from {kuhr} where provider_type in ('fastlege', 'legevakt') and (
              (contact_type = 'konsultasjon' and split_part(tariff_codes, ' ', 1) not in ('2ad', '2ak'))
              or (contact_type = 'telefon' and tariff_codes not in ('1bd', '1bk'))
              or (contact_type = 'e-konsultasjon' and tariff_codes not in ('2ae', '2aek'))
              or (contact_type = 'sykebesok' and split_part(tariff_codes, ' ', 1) not in ('11ad', '11ak'))
              or (split_part(tariff_codes, ' ', 1) in ('2ak', '1bk', '2aek', '11ak')
                  and dayofweek(contact_time) between 1 and 5 and hour(contact_time) between 8 and 15)
              or (split_part(tariff_codes, ' ', 1) in ('2ad', '1bd', '2ae', '11ad')
                  and (dayofweek(contact_time) in (0, 6) or hour(contact_time) not between 8 and 15)))""",
    )
    assert mismatches == [(0,)]


def test_diabetes_raises_gp_contacts(clean):
    out, _ = clean
    rows = _sql(
        out,
        """with diabetic as (select distinct fnr from 'D/npr-2024.parquet'
                            where icd10_main like 'E11%' or icd10_secondary like 'E11%'),
                gp as (select fnr, count(*) n from 'D/kuhr-2024.parquet' where provider_type = 'fastlege' group by 1)
           select d.fnr in (select fnr from diabetic), avg(coalesce(gp.n, 0))
           from 'D/dsf-2024.parquet' d left join gp using (fnr)
           where date_diff('year', birth_date, date '2024-07-01') between 50 and 75 group by 1""",
    )
    rates = dict(rows)
    assert rates[True] > 1.25 * rates[False]


def test_iplos_recipients_are_about_seven_percent_and_mostly_old(clean):
    out, _ = clean
    ((share, old_share, decisions),) = _sql(
        out,
        """with r as (select distinct fnr from 'D/iplos-2024.parquet')
           select count(*) / (select count(*) from 'D/dsf-2024.parquet'),
                  avg((date_diff('year', birth_date, date '2024-07-01') >= 67)::int),
                  (select count(*) from 'D/iplos-2024.parquet') / count(*)
           from r join 'D/dsf-2024.parquet' using (fnr)""",
    )
    assert 0.06 < share < 0.08
    assert old_share > 0.55
    assert 1.5 < decisions < 2.6  # 771 000 decisions for 349 000 recipients in 2015


def test_opt_outs_consent_and_services(clean):
    out, _ = clean
    for kind in ("registration", "release_with_fnr"):
        ((share,),) = _sql(
            out,
            f"""select count(distinct fnr) / (select count(*) from 'D/dsf-2024.parquet')
                from 'D/reservasjon-2024.parquet' where kind = '{kind}' and action = 'activate'""",
        )
        assert 0.01 <= share <= 0.02
    ((deactivations,),) = _sql(out, "select count(*) from 'D/reservasjon-2024.parquet' where action = 'deactivate'")
    assert deactivations > 0
    consents = dict(_sql(out, "select consent, count(*) from 'D/kvalitetsregister-2024.parquet' group by 1"))
    assert consents[True] > 5 * consents[False] > 0
    ((mothers_too_old,),) = _sql(
        out,
        """select count(*) from 'D/svangerskap-2024.parquet' s join 'D/dsf-2024.parquet' d using (fnr)
           where d.sex = 'M' or date_diff('year', d.birth_date, s.contact_date) not between 15 and 50""",
    )
    assert mothers_too_old == 0
    ((adults_at_health_centre,),) = _sql(
        out,
        """select count(*) from 'D/helsestasjon-2024.parquet' h join 'D/dsf-2024.parquet' d using (fnr)
           where date_diff('year', d.birth_date, h.contact_date) > 25""",
    )
    assert adults_at_health_centre == 0


def test_id_history_links_d_numbers_to_later_fnrs(clean):
    out, _ = clean
    changes = _sql(out, "select old_id, new_id, reason from 'D/dsf_idhistory-2024.parquet'")
    assert {r for _, _, r in changes} == {"d_to_fnr", "fnr_change"}
    for old, new, reason in changes:
        assert old != new and old[4:6] == new[4:6]  # same birth year
        if reason == "d_to_fnr":
            assert int(old[0]) >= 4 and int(new[0]) <= 3 and int(old[:2]) - 40 == int(new[:2])
    # Claims made before the change carry the old number, which the snapshot no longer shows.
    ((before,),) = _sql(
        out,
        """select count(*) from 'D/kuhr-2024.parquet' k join 'D/dsf_idhistory-2024.parquet' h on k.fnr = h.old_id
           where k.contact_time::date < h.change_date""",
    )
    ((in_snapshot,),) = _sql(
        out,
        "select count(*) from 'D/dsf-2024.parquet' where fnr in (select old_id from 'D/dsf_idhistory-2024.parquet')",
    )
    assert before > 0 and in_snapshot == 0


def test_historic_iplos_links_only_through_its_key_table(dirty):
    out, _ = dirty
    pseudonyms = _sql(
        out, "select count(*), count(distinct old_pseudonym) from 'D/iplos_historisk_nokkel-2006-2016.csv'"
    )
    assert pseudonyms[0][0] == pseudonyms[0][1] > 0
    ((orphans,),) = _sql(
        out,
        """select count(*) from 'D/iplos_historisk-2006-2016.csv'
           where old_pseudonym not in (select old_pseudonym from 'D/iplos_historisk_nokkel-2006-2016.csv')""",
    )
    assert orphans == 0
    ((years,),) = _sql(out, "select list(distinct year order by year) from 'D/iplos_historisk-2006-2016.csv'")
    assert min(years) >= 2006 and max(years) == 2016
    assert "fnr" not in SOURCES["iplos_historisk"].column_names


def test_care_share_holds_year_after_year(dirty):
    out, _ = dirty
    for year in ("2023", "2024"):
        ((share,),) = _sql(
            out,
            f"""select count(distinct fnr) / (select count(*) from 'D/dsf-{year}.csv')
                from 'D/iplos-{year}.csv'""",
        )
        assert 0.055 < share < 0.085, year
