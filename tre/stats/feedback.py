"""§ 3-3 feedback: each delivery's quality findings returned to the municipality that reported them.

For every delivery of a source the municipalities report (IPLOS, health centre and school
health, maternity care, public dental care) and every municipality with rows in it:

- the rows stored and rejected, the rejects by rule and column, and each row to check (file,
  line, record key, rule, column; never an ID number, as in the rejects files);
- counts against the population register: persons in the rows, rows whose person is not in
  the population register, rows whose person the register has living in another
  municipality, rows dated after the person's death or emigration;
- completeness against the previous year: rows and persons from the municipality in the
  same source's delivery for the previous period, and this period's share of it.

Written as a folder per municipality (`feedback/<kommunenummer>/`: `index.html`, per delivery
an HTML page, a JSON document and a CSV of the rows to check). Not public: `tre stats serve`
shows a municipality's folder only to users with the `municipality` role bound to that
number (and to admins).
"""

from __future__ import annotations

import csv
import datetime as dt
import html
import io
import json
from pathlib import Path

import duckdb

from tre.linkage.store import quote
from tre.linkage.zone import redact
from tre.registers import SOURCES, municipalities
from tre.stats.build import publish

FEEDBACK = "feedback"
REPORTED_BY_MUNICIPALITIES = ("iplos", "helsestasjon", "svangerskap", "tannhelse")
ROWS_SHOWN = 2000  # rows to check listed on a page; the CSV has them all


def build_feedback(con: duckdb.DuckDBPyConnection, rejects_dir: Path, *, now: dt.datetime) -> dict[str, dict]:
    """Per municipality number, its feedback document (deliveries newest first)."""
    con.execute(
        """CREATE OR REPLACE TEMP TABLE __tre_fb_dsf AS
           SELECT coalesce(m.canonical_pid, d.pid) AS person, arg_max(d.municipality, d.__delivery) AS municipality,
                  arg_max(d.death_date, d.__delivery) AS death_date, arg_max(d.emigration_date, d.__delivery) AS emigration_date,
                  arg_max(d.immigration_date, d.__delivery) AS immigration_date
           FROM dsf d LEFT JOIN __tre_person_map m ON m.pid = d.pid WHERE d.pid IS NOT NULL GROUP BY ALL"""
    )
    deliveries = con.execute(
        "SELECT id, source, period, filename, committed_at FROM __tre_deliveries WHERE list_contains($1, source) ORDER BY id",
        [list(REPORTED_BY_MUNICIPALITIES)],
    ).fetchall()
    names = {m.number: m.name for m in municipalities()}
    per: dict[str, dict] = {}
    counts: dict[tuple[str, str, str], dict] = {}  # (source, period, municipality) -> rows, persons
    for delivery, source, period, filename, committed_at in deliveries:
        for row in _delivery_counts(con, SOURCES[source], delivery):
            number = row["municipality"]
            entry = {
                "delivery": delivery,
                "source": source,
                "title": SOURCES[source].title,
                "period": period,
                "file": redact(filename),
                "committed_at": committed_at.isoformat(timespec="seconds") if committed_at else None,
                **{k: v for k, v in row.items() if k != "municipality"},
                "rows_rejected": 0,
                "rejects": {},
                "rows_to_check": [],
            }
            per.setdefault(number, {"municipality": number, "name": names.get(number, ""), "deliveries": []})
            per[number]["deliveries"].append(entry)
            key = (source, period, number)
            counts[key] = {
                "rows": counts.get(key, {}).get("rows", 0) + row["rows_stored"],
                "persons": counts.get(key, {}).get("persons", 0) + row["persons"],
            }
        for finding in _findings(con, SOURCES[source], delivery):
            _entry(per, names, finding["municipality"], delivery)["rows_to_check"].append(finding["row"])
    _add_rejects(con, rejects_dir, per, names, {d[0]: d for d in deliveries})
    for number, document in per.items():
        for entry in document["deliveries"]:
            previous = _previous_period(entry["period"])
            before = counts.get((entry["source"], previous, number)) if previous else None
            entry["previous_period"] = {"period": previous, **before} if before else None
            entry["completeness"] = (
                round(entry["rows_stored"] / before["rows"], 3) if before and before["rows"] else None
            )
        document["deliveries"].sort(key=lambda e: -e["delivery"])
        document["generated_at"] = now.astimezone(dt.UTC).isoformat(timespec="seconds")
    con.execute("DROP TABLE IF EXISTS __tre_fb_dsf")
    return per


def _entry(per: dict, names: dict, number: str, delivery: int) -> dict:
    document = per.setdefault(number, {"municipality": number, "name": names.get(number, ""), "deliveries": []})
    for entry in document["deliveries"]:
        if entry["delivery"] == delivery:
            return entry
    entry = {
        "delivery": delivery,
        "rows_stored": 0,
        "persons": 0,
        "rows_rejected": 0,
        "rejects": {},
        "rows_to_check": [],
    }
    document["deliveries"].append(entry)
    return entry


def _day(source) -> str:
    return f"CAST(t.{quote(source.event_date)} AS DATE)"


def _delivery_counts(con: duckdb.DuckDBPyConnection, source, delivery: int) -> list[dict]:
    day = _day(source)
    rows = con.execute(
        f"""SELECT t.municipality, count(*) AS rows_stored,
                   count(DISTINCT coalesce(m.canonical_pid, t.pid)) AS persons,
                   count(*) FILTER (WHERE t.pid IS NOT NULL AND d.person IS NULL) AS not_in_population_register,
                   count(*) FILTER (WHERE d.municipality IS NOT NULL AND d.municipality <> t.municipality) AS registered_elsewhere,
                   count(*) FILTER (WHERE {day} > d.death_date) AS after_death,
                   count(*) FILTER (WHERE {day} > d.emigration_date AND (d.immigration_date IS NULL
                       OR d.immigration_date <= d.emigration_date OR {day} < d.immigration_date)) AS after_emigration
            FROM {quote(source.name)} t LEFT JOIN __tre_person_map m ON m.pid = t.pid
            LEFT JOIN __tre_fb_dsf d ON d.person = coalesce(m.canonical_pid, t.pid)
            WHERE t.__delivery = $1 AND t.municipality IS NOT NULL GROUP BY ALL ORDER BY 1""",
        [delivery],
    )
    columns = [c[0] for c in rows.description]
    return [dict(zip(columns, r, strict=True)) for r in rows.fetchall()]


def _findings(con: duckdb.DuckDBPyConnection, source, delivery: int) -> list[dict]:
    """Stored rows to check: dated after death or emigration, or of a person the population
    register does not know."""
    day = _day(source)
    key = f"t.{quote(source.key)}" if source.key else "NULL"
    found = con.execute(
        f"""SELECT t.municipality, t.__line, {key},
                   CASE WHEN {day} > d.death_date THEN 'event_after_death'
                        WHEN {day} > d.emigration_date AND (d.immigration_date IS NULL OR d.immigration_date <= d.emigration_date
                             OR {day} < d.immigration_date) THEN 'event_after_emigration'
                        WHEN t.pid IS NOT NULL AND d.person IS NULL THEN 'not_in_population_register' END AS rule
            FROM {quote(source.name)} t LEFT JOIN __tre_person_map m ON m.pid = t.pid
            LEFT JOIN __tre_fb_dsf d ON d.person = coalesce(m.canonical_pid, t.pid)
            WHERE t.__delivery = $1 AND t.municipality IS NOT NULL AND rule IS NOT NULL ORDER BY 2""",
        [delivery],
    ).fetchall()
    return [
        {
            "municipality": number,
            "row": {"line": int(line), "key": _key(record), "rule": rule, "column": source.event_date},
        }
        for number, line, record, rule in found
    ]


def _add_rejects(con, rejects_dir: Path, per: dict, names: dict, deliveries: dict) -> None:
    files = sorted(rejects_dir.glob("*.csv")) if rejects_dir.is_dir() else []
    if not files:
        return
    wanted = list(deliveries)
    rows = con.execute(
        """SELECT TRY_CAST(delivery AS INTEGER) AS delivery, TRY_CAST(line AS BIGINT), rule, "column", key, municipality
           FROM read_csv($1, header = true, all_varchar = true, union_by_name = true)
           WHERE list_contains($2, TRY_CAST(delivery AS INTEGER)) AND municipality IS NOT NULL ORDER BY 1, 2""",
        [[str(f) for f in files], wanted],
    ).fetchall()
    known = set(names)
    for delivery, line, rule, column, record, number in rows:
        if number not in known:
            continue  # a municipality number that does not exist: reported in `tre linkage report`
        entry = _entry(per, names, number, delivery)
        if "source" not in entry:
            d = deliveries[delivery]
            entry.update(
                source=d[1],
                title=SOURCES[d[1]].title,
                period=d[2],
                file=redact(d[3]),
                committed_at=d[4].isoformat(timespec="seconds") if d[4] else None,
                not_in_population_register=0,
                registered_elsewhere=0,
                after_death=0,
                after_emigration=0,
            )
        entry["rows_rejected"] += 1
        entry["rejects"].setdefault(rule, {}).setdefault(column, 0)
        entry["rejects"][rule][column] += 1
        entry["rows_to_check"].append({"line": line, "key": _key(record), "rule": rule, "column": column})


def _key(record) -> str | None:
    """A reporter's record key as shown: never anything shaped like an ID number."""
    return None if record is None else redact(str(record))


def _previous_period(period: str | None) -> str | None:
    return str(int(period) - 1) if period and period.isdigit() else None


def write_feedback(stats_dir: Path, documents: dict[str, dict], serial: str) -> Path:
    """The feedback folders of every municipality, switched into place in one step."""

    def write(target: Path) -> None:
        target.mkdir(mode=0o700)
        for number, document in documents.items():
            folder = target / number
            folder.mkdir(mode=0o700)
            (folder / "index.html").write_text(index_page(document), encoding="utf-8")
            for entry in document["deliveries"]:
                stem = f"levering-{entry['delivery']}"
                (folder / f"{stem}.json").write_text(
                    json.dumps(entry, ensure_ascii=False, indent=1, default=str), encoding="utf-8"
                )
                (folder / f"{stem}.csv").write_text(rows_csv(entry), encoding="utf-8")
                (folder / f"{stem}.html").write_text(delivery_page(document, entry), encoding="utf-8")
            (folder / "tilbakemelding.json").write_text(
                json.dumps(document, ensure_ascii=False, indent=1, default=str), encoding="utf-8"
            )

    return publish(stats_dir, FEEDBACK, write, serial)


def rows_csv(entry: dict) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["fil", "linje", "postnokkel", "regel", "kolonne"])
    for row in entry["rows_to_check"]:
        writer.writerow(
            [entry.get("file", ""), row["line"], row.get("key") or "", row["rule"], row.get("column") or ""]
        )
    return out.getvalue()


e = html.escape
RULES_NB = {
    "event_after_death": "hendelse etter dødsdato",
    "event_after_emigration": "hendelse etter utvandring",
    "not_in_population_register": "personen finnes ikke i folkeregisteret",
    "duplicate": "dublett (samme postnøkkel to ganger)",
    "missing": "mangler verdi",
    "bad_type": "feil type",
    "unknown_code": "ukjent kode",
    "out_of_range": "utenfor gyldig område",
    "future_date": "dato fram i tid",
    "id_check_digits": "fødselsnummer med feil kontrollsiffer",
    "id_not_11_digits": "fødselsnummer uten 11 sifre",
    "id_birth_date": "fødselsnummer med ugyldig fødselsdato",
    "unknown_fnr": "ukjent fødselsnummer",
}


def _page(title: str, body: str) -> str:
    return f"""<!doctype html><html lang="nb"><head><meta charset="utf-8"><title>{e(title)}</title>
<link rel="stylesheet" href="../../assets/site.css"></head><body>
<header><a class="home" href="../">Tilbakemelding til kommunene</a> <span class="en" lang="en">Feedback to the municipalities (§ 3-3)</span> <a class="home" href="../../logout">Logg ut</a></header>
<main><h1>{e(title)}</h1>{body}</main>
<footer>Kvalitetskontroll etter forskrift om KPR § 3-3. Ikke offentlig: bare for kommunens brukere.</footer></body></html>"""


def index_page(document: dict) -> str:
    rows = "".join(
        f'<tr><td><a href="levering-{d["delivery"]}.html">{e(d.get("source", ""))} {e(str(d.get("period", "")))}</a></td>'
        f'<td>{e(str(d.get("committed_at") or ""))}</td><td class="num">{d["rows_stored"]}</td><td class="num">{d["rows_rejected"]}</td>'
        f'<td class="num">{len(d["rows_to_check"])}</td><td class="num">{_share(d.get("completeness"))}</td></tr>'
        for d in document["deliveries"]
    )
    body = f"""<p>Kommune {e(document["municipality"])} {e(document["name"])}: kvalitetskontrollen av hver levering fra kommunen
(generert {e(document["generated_at"])}).</p>
<table><thead><tr><th>Levering</th><th>Mottatt</th><th>Lagret</th><th>Avvist</th><th>Rader å sjekke</th><th>Mot året før</th></tr></thead>
<tbody>{rows}</tbody></table><p><a href="tilbakemelding.json">Alt som JSON</a></p>"""
    return _page(f"{document['municipality']} {document['name']}", body)


def _share(value) -> str:
    return "" if value is None else f"{value * 100:.0f} %"


def delivery_page(document: dict, entry: dict) -> str:
    rejects = (
        "".join(
            f'<tr><td>{e(RULES_NB.get(rule, rule))} ({e(rule)})</td><td>{e(column)}</td><td class="num">{n}</td></tr>'
            for rule, columns in sorted(entry["rejects"].items())
            for column, n in sorted(columns.items())
        )
        or '<tr><td colspan="3">Ingen avviste rader.</td></tr>'
    )
    previous = entry.get("previous_period")
    completeness = (
        f"{previous['rows']} rader og {previous['persons']} personer i {e(previous['period'])}; i år {entry['rows_stored']} rader "
        f"({_share(entry['completeness'])} av fjorårets)"
        if previous
        else "Ingen levering for året før å sammenligne med."
    )
    shown = entry["rows_to_check"][:ROWS_SHOWN]
    listed = "".join(
        f'<tr><td class="num">{r["line"]}</td><td>{e(str(r.get("key") or ""))}</td><td>{e(RULES_NB.get(r["rule"], r["rule"]))}</td><td>{e(str(r.get("column") or ""))}</td></tr>'
        for r in shown
    )
    more = (
        f"<p>Viser {len(shown)} av {len(entry['rows_to_check'])}; alle i CSV-filen.</p>"
        if len(entry["rows_to_check"]) > len(shown)
        else ""
    )
    body = f"""<p>{e(entry.get("title", ""))}, periode {e(str(entry.get("period", "")))}, fil {e(str(entry.get("file", "")))}, levering {entry["delivery"]}.</p>
<h2>Rader</h2><dl><dt>Lagret</dt><dd>{entry["rows_stored"]} rader om {entry["persons"]} personer</dd><dt>Avvist</dt><dd>{entry["rows_rejected"]}</dd></dl>
<h2>Mot folkeregisteret</h2><dl>
<dt>Personen finnes ikke i folkeregisteret</dt><dd>{entry.get("not_in_population_register", 0)} rader</dd>
<dt>Personen er registrert bosatt i en annen kommune</dt><dd>{entry.get("registered_elsewhere", 0)} rader</dd>
<dt>Hendelse etter dødsdato</dt><dd>{entry.get("after_death", 0)} rader</dd>
<dt>Hendelse etter utvandring</dt><dd>{entry.get("after_emigration", 0)} rader</dd></dl>
<h2>Kompletthet mot året før</h2><p>{completeness}</p>
<h2>Avvisninger etter regel</h2><table><thead><tr><th>Regel</th><th>Kolonne</th><th>Rader</th></tr></thead><tbody>{rejects}</tbody></table>
<h2>Rader å sjekke</h2><p><a href="levering-{entry["delivery"]}.csv">Last ned som CSV</a> · <a href="levering-{entry["delivery"]}.json">JSON</a></p>
<table><thead><tr><th>Linje</th><th>Postnøkkel</th><th>Regel</th><th>Kolonne</th></tr></thead><tbody>{listed}</tbody></table>{more}"""
    return _page(
        f"{document['municipality']} {document['name']}: {entry.get('source', '')} {entry.get('period', '')}", body
    )
