"""What researchers meet in JupyterLab, server side: a TRE page where a download would be, and
a read-only preview of Parquet files.

A Jupyter server extension, loaded through the read-only Jupyter configuration (see
`jupyter/jupyter_server_config.json`) next to `tre.hub_config.singleuser`. Its browser half is
the prebuilt labextension `@tre/jupyterlab` in `jupyter/data/labextensions/` (found through
`JUPYTER_PATH`, which the spawner sets): it opens `.parquet` files with the preview below and
puts a note where JupyterLab's Download and Terminal were. Nothing here writes a file or lets
one out: the preview returns at most `MAX_ROWS` rows of a Parquet file inside the server's root
folder, as JSON, to the page that asked.
"""

from __future__ import annotations

import datetime as dt
import decimal
import html
import json
import math
import os
from pathlib import Path

from jupyter_server.base.handlers import APIHandler
from tornado import web

MAX_ROWS = 500
MAX_COLUMNS = 200
MAX_TEXT = 200  # characters of one value shown

CLOSED = {
    "download": (
        "Downloads are closed in the TRE",
        "Files cannot be downloaded from a project: what leaves goes through output checking and two officers. "
        "Make tables, figures and models with <code>tre.safe</code> (they are checked and queued), then put them "
        "into a request on the <b>Output review</b> page (the button on the hub's home page). Once released, the "
        "outputs are sent on by the TRE and appear in <code>released/</code>.",
    ),
    "nbconvert": (
        "Exporting notebooks is closed in the TRE",
        "A notebook leaves only as an output: queue it with <code>tre.safe.custom_output('analysis.ipynb')</code> "
        "and request its release on the <b>Output review</b> page.",
    ),
}
PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title} · TRE</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 0; color: #222; background: #f6f7f9; }}
header {{ padding: .7em 1.5em; background: #20334d; color: white; font-weight: bold; }}
main {{ max-width: 46em; padding: 1em 1.5em; }}
p.why {{ background: #fff8e1; border: 1px solid #ffe082; padding: .7em 1em; border-radius: .3em; }}
code {{ background: #eef1f4; padding: 0 .2em; }}
</style></head>
<body><header>TRE · {project}</header><main id="tre-closed">
<h1>{title}</h1>
<p class="why">{why}</p>
<p>{what}</p>
<p><a href="{back}">Back to JupyterLab</a></p>
</main></body></html>
"""


def closed_page(what: str, *, project: str, back: str, path: str = "") -> str:
    """The TRE's page for a closed action (`download`, `nbconvert`): what to do instead."""
    title, why = CLOSED[what]
    asked = f"You asked for <code>{html.escape(path)}</code>." if path else ""
    return PAGE.format(title=title, why=why, what=asked, project=html.escape(project), back=html.escape(back))


# --- the Parquet preview --------------------------------------------------------------------


def _shown(value):
    """A value as JSON can carry it and a person reads it: dates as dates, no NaN."""
    if value is None:
        return None
    if isinstance(value, float):
        return None if math.isnan(value) else (int(value) if value.is_integer() and abs(value) < 2**53 else value)
    if isinstance(value, dt.datetime):
        return value.date().isoformat() if value.time() == dt.time(0) and value.tzinfo is None else value.isoformat()
    if isinstance(value, dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, int | bool):
        return value if not isinstance(value, int) or abs(value) < 2**53 else str(value)
    if isinstance(value, decimal.Decimal):
        return float(value) if value.is_finite() else str(value)
    if isinstance(value, bytes):
        return f"<{len(value)} bytes>"
    text = str(value)
    return text if len(text) <= MAX_TEXT else text[: MAX_TEXT - 1] + "…"


def parquet_preview(path: Path, rows: int) -> dict:
    """The first `rows` rows of a Parquet file, its columns with their types, and its size."""
    import pyarrow.parquet as pq

    with pq.ParquetFile(path) as source:
        schema = source.schema_arrow
        names = schema.names[:MAX_COLUMNS]
        batch = next(source.iter_batches(batch_size=max(rows, 1), columns=names), None)
        total = source.metadata.num_rows
    columns = [{"name": f.name, "type": _type_name(f.type)} for f in schema if f.name in names]
    data = batch.to_pylist()[:rows] if batch is not None and rows > 0 else []
    return {
        "columns": columns,
        "rows": [[_shown(row.get(c["name"])) for c in columns] for row in data],
        "total_rows": total,
        "total_columns": len(schema.names),
    }


def _type_name(arrow_type) -> str:
    text = str(arrow_type)
    if text.startswith("timestamp") or text.startswith("date"):
        return "date"
    return {"string": "text", "large_string": "text", "bool": "yes/no"}.get(text, text)


class ParquetPreviewHandler(APIHandler):
    """GET /tre/parquet?path=data/persons.parquet&rows=200: a file's first rows as JSON."""

    @web.authenticated
    def get(self):
        relative = self.get_query_argument("path", "")
        try:
            rows = max(0, min(int(self.get_query_argument("rows", "200")), MAX_ROWS))
        except ValueError:
            raise web.HTTPError(400, "rows must be a whole number") from None
        path = parquet_path(Path(self.settings["server_root_dir"]), relative)
        try:
            preview = parquet_preview(path, rows)
        except (OSError, ValueError) as e:  # pyarrow's ArrowInvalid is a ValueError
            self.set_status(422)
            self.finish(json.dumps({"message": f"{relative} is not a Parquet file that can be read: {str(e)[:200]}"}))
            return
        self.set_header("Content-Type", "application/json")
        self.set_header("Cache-Control", "no-store")
        self.finish(json.dumps({"path": relative, **preview}))


def parquet_path(root: Path, relative: str) -> Path:
    """The Parquet file `relative` names under the server's root folder: nothing outside it
    (no `..`, no link that leads out), nothing but a regular `.parquet` file."""
    root = root.resolve()
    parts = Path(relative.lstrip("/")).parts
    if not relative or ".." in parts or not relative.lower().endswith(".parquet"):
        raise web.HTTPError(400, "path must name a .parquet file inside the project")
    path = (root / Path(*parts)).resolve()
    if not path.is_relative_to(root) or not path.is_file():
        raise web.HTTPError(404, f"no Parquet file {relative}")
    return path


def _jupyter_server_extension_points():
    return [{"module": "tre.hub_config.lab"}]


def _load_jupyter_server_extension(serverapp):
    base = serverapp.web_app.settings["base_url"].rstrip("/")
    serverapp.web_app.add_handlers(".*$", [(rf"{base}/tre/parquet", ParquetPreviewHandler)])
    serverapp.log.info("tre: Parquet preview at %s/tre/parquet", base)


def project_name() -> str:
    return os.environ.get("TRE_PROJECT", "")
