"""`tre stats site`: the static website of the published statistics, Norwegian first.

Built from the publication folder only (its CSV files and definitions), so the site shows
exactly what was published. Pages:

- `index.html`: every indicator, every county with its municipalities, the downloads;
- `indikator/<id>.html`: the definition, a chart of the country and the counties over the
  years, the table of every region for the latest year, the country by sex and age;
- `kommune/<nr>.html`: per indicator a chart of the municipality, its county and the country
  over the years, and the municipality's table by sex and age for every year;
- `prikker.html`: what each marker means;
- `data/`: the publication's files (JSON-stat, PC-Axis, CSV, the dictionary).

Charts are Vega-Lite specifications rendered by vega-embed from `assets/` (copied from
`node_modules`; no page loads anything from elsewhere), with an SVG drawn here as the
fallback shown until (or unless) the script renders. A hidden value is drawn as a gap and
shown in tables as its marker, never as a number.
"""

from __future__ import annotations

import html
import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from tre.errors import NotFound, UserError
from tre.stats.build import PUBLICATION, publish
from tre.stats.formats import MARKERS
from tre.stats.indicators import SEXES, counties, regions

SITE = "site"
VEGA_SCRIPTS = (
    ("vega", "build/vega.min.js"),
    ("vega-lite", "build/vega-lite.min.js"),
    ("vega-embed", "build/vega-embed.min.js"),
)
COLOURS = ("#1f5f8b", "#c1502e", "#6b6b6b")  # the region, its county, the country
ASSETS = Path(__file__).with_name("assets")


@dataclass(frozen=True)
class Published:
    """The publication as the site reads it."""

    manifest: dict
    definitions: dict[str, dict]
    cells: dict[str, pd.DataFrame]  # per indicator, its CSV
    lookup: dict[str, dict[tuple, tuple[float, str, str]]]  # per indicator: (region, sex, age, year) -> cell

    @property
    def indicators(self) -> list[dict]:
        return [self.definitions[i["id"]] for i in self.manifest["indicators"]]


def read_publication(directory: Path) -> Published:
    if not (directory / "publisering.json").is_file():
        raise NotFound(f"no published statistics in {directory}: run `tre stats build` first")
    manifest = json.loads((directory / "publisering.json").read_text(encoding="utf-8"))
    definitions = {d["id"]: d for d in json.loads((directory / "indikatorer.json").read_text(encoding="utf-8"))}
    cells, lookup = {}, {}
    for entry in manifest["indicators"]:
        frame = pd.read_csv(directory / f"{entry['id']}.csv", dtype=str, keep_default_na=False)
        frame["verdi"] = pd.to_numeric(frame["verdi"], errors="coerce")
        frame["aar"] = frame["aar"].astype(int)
        cells[entry["id"]] = frame
        keys = zip(frame["region"], frame["kjonn"], frame["alder"], frame["aar"], strict=True)
        found = zip(frame["verdi"], frame["prikk"], frame["aarsak"], strict=True)
        lookup[entry["id"]] = dict(zip(keys, found, strict=True))
    return Published(manifest, definitions, cells, lookup)


def build_site(stats_dir: Path, vega_dir: Path) -> Path:
    """Write the site from the current publication; returns the `site` link."""
    publication = stats_dir / PUBLICATION
    published = read_publication(publication)
    missing = [name for name, path in VEGA_SCRIPTS if not (vega_dir / name / path).is_file()]
    if missing:
        raise UserError(f"the chart scripts are not installed ({', '.join(missing)} in {vega_dir}): run `make node`")
    return publish(
        stats_dir, SITE, lambda target: _write(target, publication, published, vega_dir), published.manifest["run"]
    )


def _write(target: Path, publication: Path, published: Published, vega_dir: Path) -> None:
    (target / "assets").mkdir(parents=True)
    for name, path in VEGA_SCRIPTS:
        shutil.copyfile(vega_dir / name / path, target / "assets" / f"{name}.min.js")
    for asset in ASSETS.iterdir():
        shutil.copyfile(asset, target / "assets" / asset.name)
    shutil.copytree(publication, target / "data", dirs_exist_ok=False)
    (target / "indikator").mkdir()
    (target / "kommune").mkdir()
    (target / "index.html").write_text(index_page(published), encoding="utf-8")
    (target / "prikker.html").write_text(markers_page(), encoding="utf-8")
    for definition in published.indicators:
        page = indicator_page(published, definition)
        (target / "indikator" / f"{definition['id']}.html").write_text(page, encoding="utf-8")
    for region in regions():
        if region.level == "kommune":
            (target / "kommune" / f"{region.code}.html").write_text(
                municipality_page(published, region.code), encoding="utf-8"
            )


# --- pieces -------------------------------------------------------------------------------

e = html.escape


def page(title: str, body: str, *, depth: int, english: str = "") -> str:
    up = "../" * depth
    return f"""<!doctype html>
<html lang="nb">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{e(title)} – KPR-statistikk</title>
<link rel="stylesheet" href="{up}assets/site.css">
<script src="{up}assets/vega.min.js" defer></script>
<script src="{up}assets/vega-lite.min.js" defer></script>
<script src="{up}assets/vega-embed.min.js" defer></script>
<script src="{up}assets/site.js" defer></script>
</head>
<body>
<header><a href="{up}index.html" class="home">KPR-statistikk</a> <span lang="en" class="en">Statistics from the municipal patient and user register</span></header>
<main>
<h1>{e(title)}</h1>
{f'<p class="en" lang="en">{e(english)}</p>' if english else ""}
{body}
</main>
<footer>Kilde: Kommunalt pasient- og brukerregister (KPR). <a href="{up}prikker.html">Prikker og skjulte tall</a> · <a href="{up}data/ordbok.csv">Dataordbok</a> · <span lang="en">Source: KPR. Norwegian first; English in grey.</span></footer>
</body>
</html>
"""


def cell(cells: dict, region: str, sex: str, age: str, year: int) -> tuple[float, str, str]:
    """(value, marker, reason) of one published cell; `..` where nothing was published."""
    return cells.get((region, sex, age, int(year)), (float("nan"), "..", ""))


def td(frame_or_value, marker: str = "", reason: str = "") -> str:
    value = frame_or_value
    if marker:
        text = MARKERS.get(reason, ("", "Ingen data", "No data"))
        return f'<td class="marker" data-reason="{e(reason)}"><abbr title="{e(text[1])}">{e(marker)}</abbr></td>'
    return f'<td class="num">{f"{value:.1f}".replace(".", ",")}</td>'


def series(cells: dict, years: list[int], region: str, root: str) -> list[tuple[int, float | None]]:
    out = []
    for year in years:
        value, marker, _ = cell(cells, region, "0", root, year)
        out.append((int(year), None if marker or np.isnan(value) else float(value)))
    return out


def chart(chart_id: str, lines: list[tuple[str, list[tuple[int, float | None]]]], unit: str, title: str) -> str:
    """A Vega-Lite line chart with an SVG drawn here as its fallback (a note when every value is hidden)."""
    values = [{"region": label, "aar": str(year), "verdi": value} for label, points in lines for year, value in points]
    if all(v["verdi"] is None for v in values):
        return f"""<figure class="chart-empty"><p class="note">Ingen verdier å vise: alle tallene er skjult
(<abbr>:</abbr>) eller ikke definert (<abbr>.</abbr>).</p><figcaption>{e(title)}</figcaption></figure>"""
    spec = {
        "$schema": "https://vega.github.io/schema/vega-lite/v6.json",
        "description": title,
        "width": "container",
        "height": 220,
        "data": {"values": values},
        "mark": {"type": "line", "point": True},
        "encoding": {
            "x": {"field": "aar", "type": "ordinal", "title": "År"},
            "y": {"field": "verdi", "type": "quantitative", "title": unit},
            "color": {
                "field": "region",
                "type": "nominal",
                "title": None,
                "sort": [label for label, _ in lines],
                "scale": {"range": list(COLOURS[: len(lines)])},
            },
            "tooltip": [
                {"field": "region"},
                {"field": "aar", "title": "År"},
                {"field": "verdi", "title": unit, "format": ".1f"},
            ],
        },
    }
    payload = json.dumps(spec, ensure_ascii=False).replace("</", "<\\/")
    return f"""<figure class="chart" data-spec="{chart_id}">
<div class="vega" id="{chart_id}-vega" role="img" aria-label="{e(title)}"></div>
<div class="fallback">{svg_chart(lines, unit, title)}</div>
<script type="application/json" id="{chart_id}">{payload}</script>
<figcaption>{e(title)}</figcaption>
</figure>"""


def svg_chart(
    lines: list[tuple[str, list[tuple[int, float | None]]]], unit: str, title: str, width: int = 560, height: int = 240
) -> str:
    """A line chart as SVG: one line per series, a gap where a value is hidden."""
    years = sorted({y for _, points in lines for y, _ in points})
    known = [v for _, points in lines for _, v in points if v is not None]
    left, right, top, bottom = 60, 150, 12, 30
    w, h = width - left - right, height - top - bottom
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" width="{width}" height="{height}" role="img" aria-label="{e(title)}">'
    ]
    parts.append(f'<rect x="{left}" y="{top}" width="{w}" height="{h}" fill="none" stroke="#ccc"/>')
    if not years or not known:
        parts.append(f'<text x="{left + 8}" y="{top + h / 2}" font-size="12">Ingen publiserte verdier</text></svg>')
        return "".join(parts)
    high = max(known) * 1.1 or 1.0

    def x(year):
        return left + (w / 2 if len(years) == 1 else w * years.index(year) / (len(years) - 1))

    def y(value):
        return top + h - h * value / high

    for tick in np.linspace(0, high, 5):
        parts.append(f'<text x="{left - 6}" y="{y(tick) + 4:.1f}" font-size="10" text-anchor="end">{tick:.0f}</text>')
    for year in years:
        parts.append(f'<text x="{x(year):.1f}" y="{height - 10}" font-size="10" text-anchor="middle">{year}</text>')
    for n, (label, points) in enumerate(lines):
        colour = COLOURS[n % len(COLOURS)]
        run: list[str] = []
        for year, value in points + [(None, None)]:
            if value is None:
                if len(run) > 1:
                    parts.append(f'<polyline fill="none" stroke="{colour}" stroke-width="2" points="{" ".join(run)}"/>')
                run = []
                continue
            run.append(f"{x(year):.1f},{y(value):.1f}")
            parts.append(f'<circle cx="{x(year):.1f}" cy="{y(value):.1f}" r="3" fill="{colour}"/>')
        parts.append(f'<rect x="{left + w + 10}" y="{top + 14 * n + 2}" width="10" height="10" fill="{colour}"/>')
        parts.append(f'<text x="{left + w + 24}" y="{top + 14 * n + 11}" font-size="11">{e(label)}</text>')
    parts.append(
        f'<text x="12" y="{top + h / 2}" font-size="10" transform="rotate(-90 12 {top + h / 2})" text-anchor="middle">{e(unit)}</text>'
    )
    parts.append("</svg>")
    return "".join(parts)


def definition_block(d: dict, depth: int) -> str:
    ages = ", ".join(e(a["nb"]) for a in d["ages"])
    downloads = " · ".join(
        f'<a href="{"../" * depth}data/{d["id"]}.{ext}">{label}</a>'
        for ext, label in (("json", "JSON-stat"), ("px", "PC-Axis"), ("csv", "CSV"))
    )
    return f"""<section class="definition">
<h2>Definisjon <span class="en" lang="en">Definition</span></h2>
<p>{e(d["description"]["nb"])}</p>
<p class="en" lang="en">{e(d["description"]["en"])}</p>
<dl><dt>Enhet</dt><dd>{e(d["unit"]["nb"])}</dd><dt>Aldersgrupper (alder 1. januar)</dt><dd>{ages}</dd>
<dt>Kilder</dt><dd>{e(", ".join(d["sources"]))}</dd><dt>Last ned</dt><dd>{downloads}</dd></dl>
</section>"""


def markers_note(depth: int) -> str:
    return f'<p class="note"><abbr>:</abbr> skjult av personvernhensyn · <abbr>.</abbr> ikke definert (ingen i gruppen) — <a href="{"../" * depth}prikker.html">hva prikkene betyr</a></p>'


def latest(frame: pd.DataFrame) -> int:
    return int(frame["aar"].max())


# --- pages --------------------------------------------------------------------------------


def index_page(published: Published) -> str:
    items = "".join(
        f'<li><a href="indikator/{d["id"]}.html">{e(d["title"]["nb"])}</a> <span class="en" lang="en">{e(d["title"]["en"])}</span></li>'
        for d in published.indicators
    )
    by_county: dict[str, list] = {}
    for r in regions():
        if r.level == "kommune":
            by_county.setdefault(r.parent, []).append(r)
    county_list = "".join(
        f"<li><strong>{e(name)}</strong>: "
        + ", ".join(f'<a href="kommune/{m.code}.html">{e(m.name)}</a>' for m in by_county.get(code, []))
        + "</li>"
        for code, name in counties().items()
    )
    manifest = published.manifest
    years = sorted({y for i in manifest["indicators"] for y in i["years"]})
    body = f"""<p>Statistikk om de kommunale helse- og omsorgstjenestene for hver kommune, hvert fylke og hele landet,
etter kjønn og alder. Tall for færre enn 5 personer, og tall som ville avsløre dem, er skjult.</p>
<p class="en" lang="en">Statistics on the municipal health and care services for every municipality, county and the
country, by sex and age. Figures for fewer than 5 persons, and figures that would give them away, are hidden.</p>
<p class="meta">Publisert {e(manifest["published_at"])} (kjøring {manifest["run"]}), år {e(", ".join(map(str, years)))}.</p>
<h2>Indikatorer <span class="en" lang="en">Indicators</span></h2><ul class="indicators">{items}</ul>
<h2>Kommuner <span class="en" lang="en">Municipalities</span></h2><ul class="counties">{county_list}</ul>
<h2>Last ned <span class="en" lang="en">Downloads</span></h2>
<p>Hver indikator som JSON-stat 2.0, PC-Axis og CSV i <a href="data/">data/</a>, med <a href="data/ordbok.csv">dataordbok</a>
og <a href="data/indikatorer.json">definisjoner</a>.</p>"""
    return page(
        "Statistikk fra KPR", body, depth=0, english="Statistics from the municipal patient and user register (KPR)"
    )


def markers_page() -> str:
    rows = "".join(
        f'<tr><td class="marker"><abbr>{e(symbol)}</abbr></td><td>{e(nb)}</td><td class="en" lang="en">{e(en)}</td></tr>'
        for symbol, nb, en in MARKERS.values()
    )
    body = f"""<p>Publiserte tall skal ikke kunne knyttes til enkeltpersoner. Et tall for færre enn 5 personer vises ikke,
heller ikke et tall der én eller to personer står for nesten hele verdien. For at skjulte tall ikke skal kunne regnes ut
fra summer (for eksempel fylket minus de andre kommunene), skjules også andre tall i samme tabeller. Et tall som ble skjult
i en tidligere publisering, forblir skjult. Hvilke skjulte tall som er små, vises ikke: det ville avsløre dem.</p>
<table class="markers"><thead><tr><th>Prikk</th><th>Betydning</th><th lang="en">Meaning</th></tr></thead><tbody>{rows}</tbody></table>"""
    return page("Prikker og skjulte tall", body, depth=0, english="Markers and hidden figures")


def indicator_page(published: Published, d: dict) -> str:
    frame, cells = published.cells[d["id"]], published.lookup[d["id"]]
    root = d["ages"][0]["code"]
    year = latest(frame)
    years = sorted(int(y) for y in frame["aar"].unique())
    lines = [("Hele landet", series(cells, years, "0", root))]
    country_chart = chart(f"chart-{d['id']}", lines, d["unit"]["nb"], f"{d['title']['nb']}, hele landet")
    county_lines = [(name, series(cells, years, code, root)) for code, name in counties().items()]
    rows = []
    for r in regions():
        value, marker, reason = cell(cells, r.code, "0", root, year)
        name = e(r.name) if r.level != "kommune" else f'<a href="../kommune/{r.code}.html">{e(r.name)}</a>'
        rows.append(
            f'<tr class="{r.level}"><th scope="row">{name}</th><td>{e(r.code)}</td>{td(value, marker, reason)}</tr>'
        )
    counties_table = "".join(
        f'<tr><th scope="row">{e(label)}</th>'
        + "".join(td(*_point(points, y)) for y in sorted({p[0] for p in points}))
        + "</tr>"
        for label, points in county_lines
    )
    body = f"""{definition_block(d, 1)}
<section><h2>Utvikling <span class="en" lang="en">Over time</span></h2>{country_chart}
<table class="years"><thead><tr><th>Fylke</th>{"".join(f"<th>{y}</th>" for y in years)}</tr></thead><tbody>{counties_table}</tbody></table></section>
<section><h2>Hele landet etter kjønn og alder, {year} <span class="en" lang="en">The country by sex and age</span></h2>
{breakdown_table(cells, d, "0", year)}</section>
<section><h2>Alle regioner, {year} <span class="en" lang="en">Every region</span></h2>{markers_note(1)}
<table class="regions"><thead><tr><th>Region</th><th>Kode</th><th>{e(d["unit"]["nb"])}</th></tr></thead><tbody>{"".join(rows)}</tbody></table></section>"""
    return page(d["title"]["nb"], body, depth=1, english=d["title"]["en"])


def _point(points, year):
    for y, v in points:
        if y == year:
            return (v, "", "") if v is not None else (float("nan"), ":", "konfidensiell")
    return float("nan"), "..", ""


def breakdown_table(cells: dict, d: dict, region: str, year: int) -> str:
    head = "".join(f"<th>{e(a['nb'])}</th>" for a in d["ages"])
    rows = []
    for sex, (nb, _) in SEXES.items():
        row = "".join(td(*cell(cells, region, sex, a["code"], year)) for a in d["ages"])
        rows.append(f'<tr><th scope="row">{e(nb)}</th>{row}</tr>')
    return f'<table class="breakdown" data-year="{year}"><thead><tr><th>Kjønn</th>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table>'


def municipality_page(published: Published, code: str) -> str:
    municipality = next(r for r in regions() if r.code == code)
    county_name = counties()[municipality.parent]
    sections = []
    for n, d in enumerate(published.indicators):
        frame, cells = published.cells[d["id"]], published.lookup[d["id"]]
        root = d["ages"][0]["code"]
        years = sorted(int(y) for y in frame["aar"].unique())
        lines = [
            (municipality.name, series(cells, years, code, root)),
            (county_name, series(cells, years, municipality.parent, root)),
            ("Hele landet", series(cells, years, "0", root)),
        ]
        tables = "".join(f"<h4>{year}</h4>{breakdown_table(cells, d, code, year)}" for year in reversed(years))
        sections.append(
            f"""<section class="indicator" id="{d["id"]}">
<h2><a href="../indikator/{d["id"]}.html">{e(d["title"]["nb"])}</a> <span class="en" lang="en">{e(d["title"]["en"])}</span></h2>
<p class="unit">{e(d["unit"]["nb"])}. {e(d["description"]["nb"])}</p>
{chart(f"chart-{n}", lines, d["unit"]["nb"], f"{d['title']['nb']}: {municipality.name}, {county_name} og hele landet")}
{markers_note(1)}{tables}
</section>"""
        )
    contents = "".join(f'<li><a href="#{d["id"]}">{e(d["title"]["nb"])}</a></li>' for d in published.indicators)
    body = f'<p>Kommune {e(code)} i {e(county_name)}.</p><nav><ul class="toc">{contents}</ul></nav>' + "".join(sections)
    return page(municipality.name, body, depth=1, english=f"Municipality {code} in {county_name}")
