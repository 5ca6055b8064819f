"""The publication in the formats Nordic statistics banks use: JSON-stat 2.0, PC-Axis, CSV.

Per indicator: `<id>.json` (JSON-stat 2.0, as SSB's and FHI's APIs serve it), `<id>.px`
(PC-Axis, as PX-Web reads it) and `<id>.csv` (long form, one row per cell); for the whole
publication `ordbok.csv` (the data dictionary: every column and every marker, in Norwegian
and English), `indikatorer.json` (the definitions) and `publisering.json` (what this is: the
run, the years, the versions, every file with its sha256).

A hidden value is `null` in JSON-stat with status `:`, `".."` in PC-Axis (its "statistical
disclosure" symbol) and empty in CSV with the marker `:`; a value that is not defined (nobody
in the group) is `.`. The public reason of each marker goes with it; which hidden cells were
primary is never published.
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import io
import json
from pathlib import Path

import numpy as np
import pandas as pd

from tre.stats.indicators import SEXES, Catalogue, Indicator, regions
from tre.stats.protect import HIDDEN, NOBODY, NOT_DEFINED, SMALL_GROUP, SMALL_POPULATION

SOURCE = "Kommunalt pasient- og brukerregister (KPR)"
SOURCE_EN = "The municipal patient and user register (KPR)"

MARKERS = {
    SMALL_GROUP: (
        HIDDEN,
        "Skjult av personvernhensyn: for få personer, én eller to personer står for nesten hele tallet, "
        "eller skjult for at et annet skjult tall ikke skal kunne regnes ut.",
        "Hidden to protect privacy: too few persons, one or two persons make up almost all of the figure, "
        "or hidden so that another hidden figure cannot be worked out.",
    ),
    SMALL_POPULATION: (
        HIDDEN,
        "Skjult fordi gruppen har færre enn 5 innbyggere.",
        "Hidden because the group has fewer than 5 inhabitants.",
    ),
    NOBODY: (
        NOT_DEFINED,
        "Ikke definert: ingen i gruppen (ingen innbyggere, eller ingen mottakere for et gjennomsnitt).",
        "Not defined: nobody in the group (no inhabitants, or no recipients for an average).",
    ),
}
PX_SYMBOLS = {HIDDEN: '".."', NOT_DEFINED: '"."'}

DIMENSIONS = (
    ("region", "Region", "Region"),
    ("kjonn", "Kjønn", "Sex"),
    ("alder", "Alder", "Age"),
    ("tid", "År", "Year"),
)
CSV_COLUMNS = (
    ("indikator", "tekst", "Indikatorens id (se indikatorer.json)", "The indicator's id (see indikatorer.json)"),
    ("aar", "heltall", "Året tallet gjelder", "The year the figure is for"),
    (
        "region",
        "tekst",
        "Regionkode: 0 hele landet, to sifre fylke, fire sifre kommune (2024)",
        "Region code: 0 the country, two digits a county, four digits a municipality (2024)",
    ),
    ("regionnavn", "tekst", "Regionens navn", "The region's name"),
    ("nivaa", "tekst", "land, fylke eller kommune", "country (land), county (fylke) or municipality (kommune)"),
    ("kjonn", "tekst", "0 begge kjønn, 1 menn, 2 kvinner", "0 both sexes, 1 men, 2 women"),
    ("alder", "tekst", "Aldersgruppe (alder 1. januar)", "Age group (age on 1 January)"),
    (
        "verdi",
        "desimaltall",
        "Indikatorens verdi med én desimal; tom når tallet er skjult eller ikke definert",
        "The indicator's value, one decimal; empty when hidden or not defined",
    ),
    ("prikk", "tekst", "Tom, eller : (skjult) eller . (ikke definert)", "Empty, or : (hidden) or . (not defined)"),
    ("aarsak", "tekst", "Årsaken til prikken (se nedenfor)", "Why the marker (see below)"),
    (
        "befolkning",
        "heltall",
        "Innbyggere i gruppen 1. januar (nevneren; offentlig kjent). Tom for gjennomsnitt",
        "Inhabitants of the group on 1 January (the denominator; public). Empty for averages",
    ),
)


def categories(indicator: Indicator, years: list[int]) -> dict[str, list[tuple[str, str, str]]]:
    """Per dimension, its categories in publication order: (code, Norwegian label, English label)."""
    return {
        "region": [(r.code, r.name, r.name) for r in regions()],
        "kjonn": [(code, nb, en) for code, (nb, en) in SEXES.items()],
        "alder": [(b.code, b.nb, b.en) for b in indicator.ages.bands],
        "tid": [(str(y), str(y), str(y)) for y in years],
    }


def _arrays(indicator: Indicator, cells: pd.DataFrame, years: list[int]):
    """The cells as arrays over region x sex x age x year: value, population, marker, reason."""
    cats = categories(indicator, years)
    shape = tuple(len(cats[d]) for d, _, _ in DIMENSIONS)
    value, population = np.full(shape, np.nan), np.zeros(shape)
    marker, reason = np.full(shape, "", dtype=object), np.full(shape, "", dtype=object)
    index = []
    for (dim, _, _), column in zip(DIMENSIONS, ("region", "sex", "age", "year"), strict=True):
        position = {code: i for i, (code, _, _) in enumerate(cats[dim])}
        index.append(cells[column].astype(str).map(position))
    # cells of codes the indicator no longer has (its bands changed since a run) are left out:
    # rebuild every year after changing an indicator's breakdown
    known = np.logical_and.reduce([i.notna().to_numpy() for i in index])
    cells = cells[known]
    index = tuple(i[known].to_numpy(dtype=np.int64) for i in index)
    value[index] = cells["shown"].astype(float).to_numpy()
    population[index] = cells["population"].to_numpy()
    marker[index] = cells["marker"].to_numpy()
    reason[index] = cells["reason"].to_numpy()
    return cats, shape, value, population, marker, reason


def build_jsonstat(indicator: Indicator, cells: pd.DataFrame, years: list[int], *, updated: dt.datetime) -> dict:
    """A JSON-stat 2.0 dataset of one indicator, every year published."""
    cats, shape, value, population, marker, reason = _arrays(indicator, cells, years)
    contents = [("verdi", indicator.unit_nb, 1)]
    stacked = [value]
    if indicator.kind != "mean":
        contents.append(("befolkning", "personer", 0))
        stacked.append(population)
    data = np.stack(stacked, axis=-1)
    flat_marker = np.stack([marker] + [np.full(shape, "", dtype=object)] * (len(stacked) - 1), axis=-1).ravel()
    flat_reason = np.stack([reason] + [np.full(shape, "", dtype=object)] * (len(stacked) - 1), axis=-1).ravel()
    values = [
        None if np.isnan(v) else (round(float(v), d) if d else int(v))
        for v, d in zip(data.ravel(), [c[2] for c in contents] * int(np.prod(shape)), strict=True)
    ]
    dimension = {
        dim: {
            "label": nb,
            "category": {
                "index": {code: i for i, (code, _, _) in enumerate(cats[dim])},
                "label": {code: label for code, label, _ in cats[dim]},
            },
        }
        for dim, nb, _ in DIMENSIONS
    }
    dimension["statistikkvariabel"] = {
        "label": "statistikkvariabel",
        "category": {
            "index": {code: i for i, (code, _, _) in enumerate(contents)},
            "label": {"verdi": indicator.title_nb, "befolkning": "Innbyggere 1. januar"},
            "unit": {code: {"label": unit, "decimals": decimals} for code, unit, decimals in contents},
        },
    }
    dimension["statistikkvariabel"]["category"]["label"] = {
        code: dimension["statistikkvariabel"]["category"]["label"][code] for code, _, _ in contents
    }
    return {
        "version": "2.0",
        "class": "dataset",
        "label": indicator.title_nb,
        "source": SOURCE,
        "updated": updated.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "id": [d for d, _, _ in DIMENSIONS] + ["statistikkvariabel"],
        "size": [*shape, len(contents)],
        "role": {"geo": ["region"], "time": ["tid"], "metric": ["statistikkvariabel"]},
        "dimension": dimension,
        "value": values,
        "status": {str(i): m for i, m in enumerate(flat_marker) if m},
        "note": [
            indicator.description_nb,
            *(text for _, text, _ in (MARKERS[r] for r in (SMALL_GROUP, SMALL_POPULATION, NOBODY))),
        ],
        "extension": {
            "indicator": indicator.id,
            "title_en": indicator.title_en,
            "description_en": indicator.description_en,
            "unit_en": indicator.unit_en,
            "reason": {str(i): r for i, r in enumerate(flat_reason) if r},
            "markers": {code: {"symbol": s, "nb": nb, "en": en} for code, (s, nb, en) in MARKERS.items()},
        },
    }


def _px_quote(text: str) -> str:
    return '"' + str(text).replace('"', "'") + '"'


def build_px(indicator: Indicator, cells: pd.DataFrame, years: list[int], *, created: dt.datetime) -> str:
    """A PC-Axis file of one indicator: region, sex and age in the stub, the years in the heading."""
    cats, shape, value, _, marker, _ = _arrays(indicator, cells, years)
    names = {"region": "region", "kjonn": "kjønn", "alder": "alder", "tid": "år"}
    lines = [
        'CHARSET="ANSI";',
        'AXIS-VERSION="2013";',
        'CODEPAGE="utf-8";',
        'LANGUAGE="no";',
        f'CREATION-DATE="{created.astimezone(dt.UTC):%Y%m%d %H:%M}";',
        "DECIMALS=1;",
        "SHOWDECIMALS=1;",
        f"MATRIX={_px_quote(indicator.id)};",
        'SUBJECT-CODE="KPR";',
        'SUBJECT-AREA="Helse- og omsorgstjenester";',
        f"CONTENTS={_px_quote(indicator.title_nb)};",
        f"TITLE={_px_quote(indicator.title_nb + ', etter region, kjønn, alder og år')};",
        f"UNITS={_px_quote(indicator.unit_nb)};",
        'STUB="region","kjønn","alder";',
        'HEADING="år";',
    ]
    for dim in ("region", "kjonn", "alder", "tid"):
        lines.append(
            f"VALUES({_px_quote(names[dim])})=" + ",".join(_px_quote(label) for _, label, _ in cats[dim]) + ";"
        )
        lines.append(f"CODES({_px_quote(names[dim])})=" + ",".join(_px_quote(code) for code, _, _ in cats[dim]) + ";")
    lines += [
        f"SOURCE={_px_quote(SOURCE)};",
        f"NOTE={_px_quote(indicator.description_nb)};",
        f"DATASYMBOL1={_px_quote(MARKERS[NOBODY][1])};",
        f"DATASYMBOL2={_px_quote(MARKERS[SMALL_GROUP][1])};",
        "DATA=",
    ]
    rows = []
    for r, s, a in np.ndindex(*shape[:3]):
        row = []
        for y in range(shape[3]):
            m = marker[r, s, a, y]
            row.append(PX_SYMBOLS[m] if m in PX_SYMBOLS else f"{value[r, s, a, y]:.1f}")
        rows.append(" ".join(row))
    return "\n".join(lines) + "\n" + "\n".join(rows) + ";\n"


def build_csv(indicator: Indicator, cells: pd.DataFrame) -> str:
    """One row per cell, in the columns of `CSV_COLUMNS`."""
    names = {r.code: (r.name, r.level) for r in regions()}
    order = {r.code: i for i, r in enumerate(regions())}
    ages = {b.code: i for i, b in enumerate(indicator.ages.bands)}
    frame = cells.assign(_r=cells["region"].map(order), _a=cells["age"].map(ages)).sort_values(
        ["year", "_r", "sex", "_a"]
    )
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow([c for c, _, _, _ in CSV_COLUMNS])
    for row in frame.itertuples(index=False):
        name, level = names[row.region]
        shown = "" if row.marker else f"{row.shown:.1f}"
        population = "" if indicator.kind == "mean" else int(row.population)
        writer.writerow(
            [
                indicator.id,
                row.year,
                row.region,
                name,
                level,
                row.sex,
                row.age,
                shown,
                row.marker,
                row.reason,
                population,
            ]
        )
    return out.getvalue()


def build_dictionary() -> str:
    """The data dictionary of the CSV files: every column, then every marker and its reason."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["kolonne", "type", "beskrivelse", "description"])
    for row in CSV_COLUMNS:
        writer.writerow(row)
    for code, (symbol, nb, en) in MARKERS.items():
        writer.writerow([f"aarsak={code}", f"prikk={symbol}", nb, en])
    return out.getvalue()


def build_definitions(catalogue: Catalogue) -> list[dict]:
    """Every indicator's definition, as `indikatorer.json` and the site show it."""
    return [
        {
            "id": i.id,
            "title": {"nb": i.title_nb, "en": i.title_en},
            "description": {"nb": i.description_nb, "en": i.description_en},
            "kind": i.kind,
            "per": i.per,
            "unit": {"nb": i.unit_nb, "en": i.unit_en},
            "ages": [
                {"code": b.code, "nb": b.nb, "en": b.en, "min": b.min, "max": b.max, "parent": b.parent}
                for b in i.ages.bands
            ],
            "breakdowns": list(i.breakdowns),
            "sources": list(i.sources),
            "numerator": {
                "source": i.numerator.source,
                "where": {k: list(v) for k, v in i.numerator.where.items()},
                "active": i.numerator.active,
                "value": i.numerator.value,
            },
        }
        for i in catalogue.indicators
    ]


def write_publication(
    directory: Path, catalogue: Catalogue, cells: pd.DataFrame, *, meta: dict, now: dt.datetime
) -> dict:
    """Every file of the publication into `directory` (which must be new and empty); returns the
    manifest written as `publisering.json`."""
    directory.mkdir(parents=True, exist_ok=False)
    files: dict[str, bytes] = {}
    published = []
    for indicator in catalogue.indicators:
        mine = cells[cells["indicator"] == indicator.id]
        if mine.empty:
            continue
        years = sorted(int(y) for y in mine["year"].unique())
        published.append({"id": indicator.id, "title": indicator.title_nb, "years": years})
        files[f"{indicator.id}.json"] = json.dumps(
            build_jsonstat(indicator, mine, years, updated=now), ensure_ascii=False
        ).encode("utf-8")
        files[f"{indicator.id}.px"] = build_px(indicator, mine, years, created=now).encode("utf-8")
        files[f"{indicator.id}.csv"] = build_csv(indicator, mine).encode("utf-8")
    files["ordbok.csv"] = build_dictionary().encode("utf-8")
    files["indikatorer.json"] = json.dumps(build_definitions(catalogue), ensure_ascii=False, indent=1).encode("utf-8")
    for name, data in files.items():
        (directory / name).write_bytes(data)
    manifest = {
        **meta,
        "published_at": now.astimezone(dt.UTC).isoformat(timespec="seconds"),
        "source": SOURCE,
        "indicators": published,
        "files": {name: hashlib.sha256(data).hexdigest() for name, data in sorted(files.items())},
    }
    (directory / "publisering.json").write_text(
        json.dumps(manifest, ensure_ascii=False, indent=1) + "\n", encoding="utf-8"
    )
    return manifest
