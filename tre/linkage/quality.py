"""Central linkage and quality report (§ 3-3): how well each source links, and what looks wrong.

Per source: deliveries, rows delivered, stored and rejected (by rule and column), persons,
link rate (the share of stored rows whose person is in the population register), rows whose
health fields were withheld for a registration opt-out, rows not linked (no consent, unknown
historic pseudonym). Findings against the population register (its latest row per person):
events after death, events after emigration (and before a return), rows rejected for an
unknown municipality, and population-register rows whose birth date or sex contradicts the ID
number. `build_municipality_reports` gives each reporting municipality its own part: its
counts, and the lines of its rows to check (file, line, record key, rule; never an ID number).
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import duckdb

from tre.linkage.store import DELIVERY, LINE, literal, quote
from tre.registers import SOURCES, Source, municipalities


def _prepare(con: duckdb.DuckDBPyConnection) -> None:
    """Temporary tables the report's queries share: the person map, and the population
    register's latest row per person (canonical pid)."""
    con.execute("CREATE OR REPLACE TEMP TABLE __tre_q_map AS SELECT pid, canonical_pid FROM __tre_person_map")
    con.execute(
        f"""CREATE OR REPLACE TEMP TABLE __tre_q_dsf AS
            SELECT coalesce(m.canonical_pid, d.pid) AS person,
                   arg_max(d.death_date, d.{DELIVERY}) AS death_date,
                   arg_max(d.emigration_date, d.{DELIVERY}) AS emigration_date,
                   arg_max(d.immigration_date, d.{DELIVERY}) AS immigration_date
            FROM dsf d LEFT JOIN __tre_q_map m ON m.pid = d.pid
            WHERE d.pid IS NOT NULL GROUP BY ALL"""
    )


def _dated(source: Source) -> bool:
    return source.event_date is not None and not source.central_only and source.name != "dsf"


def _after(day: str) -> dict[str, str]:
    """The findings against the population register, as conditions on a row's event day."""
    return {
        "event_after_death": f"{day} > d.death_date",
        "event_after_emigration": f"""{day} > d.emigration_date AND (d.immigration_date IS NULL
            OR d.immigration_date <= d.emigration_date OR {day} < d.immigration_date)""",
    }


def _event_findings(source: Source) -> str | None:
    """SQL of (line, delivery, person, rule) for a source's rows dated after death or emigration."""
    if not _dated(source):
        return None
    day = f"t.{quote(source.event_date)}::DATE"
    return " UNION ALL ".join(
        f"""SELECT t.{LINE} AS line, t.{DELIVERY} AS delivery, d.person, {literal(rule)} AS rule
            FROM {quote(source.name)} t LEFT JOIN __tre_q_map m ON m.pid = t.pid
            JOIN __tre_q_dsf d ON d.person = coalesce(m.canonical_pid, t.pid) WHERE {condition}"""
        for rule, condition in _after(day).items()
    )


def _count(con: duckdb.DuckDBPyConnection, query: str) -> int:
    return con.execute(query).fetchall()[0][0]


def _linked_persons(con: duckdb.DuckDBPyConnection, source: Source) -> tuple:
    """(persons, rows linked to the population register, rows after death, rows after emigration)."""
    day = f"t.{quote(source.event_date)}::DATE" if _dated(source) else "NULL::DATE"
    counted = ", ".join(f"count(*) FILTER (WHERE {condition})" for condition in _after("p.day").values())
    return con.execute(
        f"""SELECT count(DISTINCT p.person), count(d.person), {counted} FROM (
                SELECT coalesce(m.canonical_pid, t.pid) AS person, {day} AS day FROM {quote(source.name)} t
                LEFT JOIN __tre_q_map m ON m.pid = t.pid) p
            LEFT JOIN __tre_q_dsf d ON d.person = p.person"""
    ).fetchall()[0]


def build_report(con: duckdb.DuckDBPyConnection, *, now: dt.datetime | None = None) -> dict:
    """The linkage and quality report over everything committed in the register store."""
    deliveries = con.execute("SELECT source, report FROM __tre_deliveries ORDER BY id").fetchall()
    _prepare(con)
    dsf_persons = _count(con, "SELECT count(*) FROM __tre_q_dsf")
    sources: dict[str, dict] = {}
    for name, report in deliveries:
        report = json.loads(report) if isinstance(report, str) else report
        entry = sources.setdefault(
            name,
            {
                "deliveries": 0,
                "rows_delivered": 0,
                "rows_stored": 0,
                "rows_rejected": 0,
                "rejects": {},
                "registration_opt_out_rows": 0,
                "not_linked": 0,
                "updated_records": 0,
                "findings": {},
            },
        )
        entry["deliveries"] += 1
        for counter in (
            "rows_delivered",
            "rows_stored",
            "rows_rejected",
            "registration_opt_out_rows",
            "not_linked",
            "updated_records",
        ):
            entry[counter] += report.get(counter, 0)
        for rule, columns in report.get("rejects", {}).items():
            for column, n in columns.items():
                entry["rejects"].setdefault(rule, {}).setdefault(column, 0)
                entry["rejects"][rule][column] += n
        for rule, n in report.get("findings", {}).items():
            entry["findings"][rule] = entry["findings"].get(rule, 0) + n
    for name, entry in sources.items():
        source = SOURCES[name]
        if name == "dsf":
            # The population register's persons are those of __tre_q_dsf, each of its linked
            # rows is theirs, and its rows have no event date to check: no join needed.
            persons, linked, *found = dsf_persons, _count(con, "SELECT count(pid) FROM dsf"), 0, 0
        else:
            persons, linked, *found = _linked_persons(con, source)
        entry["persons"] = persons
        entry["rows_linked"] = linked
        entry["link_rate"] = round(linked / entry["rows_stored"], 4) if entry["rows_stored"] else None
        for rule, n in zip(_after("").keys(), found, strict=True):
            if n:
                entry["findings"][rule] = n
        unknown = sum(entry["rejects"].get("unknown_municipality", {}).values())
        if unknown:
            entry["findings"]["unknown_municipality"] = unknown
    return {
        "generated_at": (now or dt.datetime.now(dt.UTC)).isoformat(timespec="seconds"),
        "deliveries": len(deliveries),
        "population_register_persons": dsf_persons,
        "sources": sources,
    }


def render_report(report: dict) -> str:
    """The report as text for the terminal."""
    if not report["deliveries"]:
        return "no deliveries ingested yet: run `tre ingest PATH`"
    lines = [
        f"Linkage and quality report ({report['deliveries']} deliveries; "
        f"{report['population_register_persons']} persons in the population register)",
        "",
        f"{'source':<24}{'rows':>12}{'stored':>12}{'rejected':>10}{'persons':>11}{'linked':>9}{'opt-out':>9}",
    ]
    for name, s in report["sources"].items():
        rate = f"{s['link_rate'] * 100:.1f}%" if s["link_rate"] is not None else "-"
        lines.append(
            f"{name:<24}{s['rows_delivered']:>12}{s['rows_stored']:>12}{s['rows_rejected']:>10}"
            f"{s['persons']:>11}{rate:>9}{s['registration_opt_out_rows']:>9}"
        )
    lines.append("")
    for name, s in report["sources"].items():
        parts = [
            f"{rule}/{column} {n}"
            for rule, columns in sorted(s["rejects"].items())
            for column, n in sorted(columns.items())
        ]
        found = [f"{rule} {n}" for rule, n in sorted(s["findings"].items())]
        if parts:
            lines.append(f"{name} rejects: {', '.join(parts)}")
        if found:
            lines.append(f"{name} findings: {', '.join(found)}")
        if s["not_linked"]:
            lines.append(f"{name}: {s['not_linked']} rows stored without a person (no consent, or unknown key)")
        if s["updated_records"]:
            lines.append(f"{name}: {s['updated_records']} records delivered again in a newer version")
    return "\n".join(lines).rstrip() + "\n"


def build_municipality_reports(
    con: duckdb.DuckDBPyConnection, rejects_dir: Path, out_dir: Path, *, now: dt.datetime | None = None
) -> list[Path]:
    """One JSON quality report per municipality that reported rows; returns the files written."""
    names = {m.number: m.name for m in municipalities()}
    _prepare(con)
    per: dict[str, dict] = {}

    def entry(number: str, source: str) -> dict:
        report = per.setdefault(number, {"sources": {}, "rows_to_check": []})
        return report["sources"].setdefault(source, {"rows": 0, "rejects": {}, "findings": {}})

    for name, source in SOURCES.items():
        if "municipality" not in source.column_names:
            continue
        for number, n in con.execute(
            f"SELECT municipality, count(*) FROM {quote(name)} WHERE municipality IS NOT NULL GROUP BY ALL"
        ).fetchall():
            entry(number, name)["rows"] = n
        flagged = _event_findings(source)
        if name == "dsf":
            flagged = f"SELECT {LINE} AS line, {DELIVERY} AS delivery, pid AS person, rule FROM __tre_findings"
        if flagged is None:
            continue
        key = f"t.{quote(source.key)}" if source.key else "NULL"
        for number, file, line, record, rule in con.execute(
            f"""SELECT t.municipality, d.filename, f.line, {key}, f.rule FROM ({flagged}) f
                JOIN {quote(name)} t ON t.{DELIVERY} = f.delivery AND t.{LINE} = f.line
                JOIN __tre_deliveries d ON d.id = f.delivery
                WHERE d.source = {literal(name)} AND t.municipality IS NOT NULL ORDER BY ALL"""
        ).fetchall():
            findings = entry(number, name)["findings"]
            findings[rule] = findings.get(rule, 0) + 1
            per[number]["rows_to_check"].append(
                {"source": name, "file": file, "line": line, "key": record, "rule": rule}
            )
    files = sorted(rejects_dir.glob("*.csv"))
    if files:
        for number, file, line, rule, column, record, source in con.execute(
            """SELECT r.municipality, r.file, r.line, r.rule, r."column", r.key, d.source
               FROM read_csv($1, header = true, all_varchar = true) r
               JOIN __tre_deliveries d ON d.id = r.delivery::INTEGER
               WHERE r.municipality IS NOT NULL ORDER BY ALL""",
            [[str(f) for f in files]],
        ).fetchall():
            rejects = entry(number, source)["rejects"]
            rejects[rule] = rejects.get(rule, 0) + 1
            per[number]["rows_to_check"].append(
                {"source": source, "file": file, "line": int(line), "key": record, "rule": rule, "column": column}
            )
    out_dir.mkdir(parents=True, exist_ok=True)
    stamp = (now or dt.datetime.now(dt.UTC)).isoformat(timespec="seconds")
    written = []
    for number, report in sorted(per.items()):
        path = out_dir / f"{number}.json"
        document = {"municipality": number, "name": names.get(number, ""), "generated_at": stamp, **report}
        path.write_text(json.dumps(document, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        path.chmod(0o600)
        written.append(path)
    return written
