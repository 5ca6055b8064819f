"""§ 3-3: each ingest writes the quality feedback of every reporting municipality where it can
fetch it (`$TRE_HOME/stats/feedback/<kommunenummer>/`, served behind the municipality login)
and the registry's summary; audited; nothing written holds an ID number."""

from __future__ import annotations

import datetime as dt
import json

from delivery_factory import people, row, write_delivery
from stats_world import fresh_cli

from tre.registers import SOURCES

NOW = dt.datetime(2025, 3, 1, 12, tzinfo=dt.UTC)
SCORES = [c.name for c in SOURCES["iplos"].columns if c.name.startswith("f_")]


def decision(person, key: str, municipality: str) -> dict:
    return {
        "decision_id": key,
        "fnr": person.fnr,
        "municipality": municipality,
        "service": "hjemmesykepleie",
        "start_date": "2024-02-01",
        "end_date": "",
        "hours_per_week": "3",
        **dict.fromkeys(SCORES, "2"),
    }


def test_each_ingest_writes_every_reporting_municipalitys_feedback_and_the_registrys_summary(tmp_path):
    cli = fresh_cli(tmp_path)
    persons = people(6, seed=11)
    stranger = people(1, seed=12)[0]  # not in the population register
    dsf = [row("dsf", p, municipality="4601") for p in persons[:4]] + [row("dsf", persons[4], municipality="0301")]
    iplos = [decision(p, f"B{i}", "4601") for i, p in enumerate(persons[:4])]
    iplos += [decision(persons[4], "B9", "4601")]  # registered as living in Oslo
    iplos += [decision(stranger, "B10", "4601")]
    broken = decision(persons[5], "B11", "4601")
    broken["fnr"] = broken["fnr"][:10] + str((int(broken["fnr"][10]) + 1) % 10)  # wrong check digit: rejected
    iplos += [broken]
    oslo = [decision(persons[4], "O1", "0301")]
    first, second = tmp_path / "first", tmp_path / "second"
    write_delivery(first, "dsf", dsf, period="2024")
    write_delivery(first, "iplos", iplos, period="2024")
    cli.ok("ingest", str(first), as_user="ada", clock=lambda: NOW)

    feedback = cli.settings.stats_dir / "feedback"
    document = json.loads((feedback / "4601" / "tilbakemelding.json").read_text())
    (entry,) = document["deliveries"]
    assert (entry["rows_stored"], entry["rows_rejected"]) == (6, 1)
    assert entry["rejects"] == {"id_check_digits": {"fnr": 1}}
    assert entry["not_in_population_register"] == 1 and entry["registered_elsewhere"] == 1
    assert (feedback / "4601" / "index.html").is_file() and not (feedback / "0301").exists()
    summary = json.loads((feedback / "sammendrag.json").read_text())
    assert [(m["municipality"], m["rows_stored"], m["rows_rejected"]) for m in summary["municipalities"]] == [
        ("4601", 6, 1)
    ]
    assert summary["rejects_by_rule"] == {"id_check_digits": 1}

    # The next ingest writes it again: Oslo's first delivery, Bergen's feedback kept.
    write_delivery(second, "iplos", oslo, period="2024")
    out = cli.ok("ingest", str(second), as_user="ada", clock=lambda: NOW + dt.timedelta(hours=1)).out
    assert "§ 3-3 feedback for 2 reporting municipalities" in out
    assert json.loads((feedback / "0301" / "tilbakemelding.json").read_text())["deliveries"][0]["rows_stored"] == 1
    assert (feedback / "4601" / "tilbakemelding.json").is_file()
    log = cli.ok("audit", "log", "--action", "stats.feedback", "--oldest-first", "--json", as_user="ada").json()
    assert [(e["actor"], e["details"]["trigger"], e["details"]["municipalities"]) for e in log] == [
        ("ada", "ingest", 1),
        ("ada", "ingest", 2),
    ]
    numbers = {p.fnr for p in (*persons, stranger)} | {broken["fnr"]}
    for path in feedback.resolve().rglob("*"):
        if path.is_file():
            text = path.read_text()
            assert not any(n in text or n[:6] + " " + n[6:] in text for n in numbers), path

    # Nothing new stored: nothing written, nothing audited.
    cli.ok("ingest", str(second), as_user="ada", clock=lambda: NOW + dt.timedelta(hours=2))
    assert len(cli.ok("audit", "log", "--action", "stats.feedback", "--json", as_user="ada").json()) == 2
