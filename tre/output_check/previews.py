"""What a reviewer sees of an output's files: tables, figures, text, rendered notebooks.

`build_previews` reads an output's folder (regular files only) and returns one preview per file
a person should look at; the check reports, meta.json and the tables' sidecars are listed with
the output, not previewed. Notebooks are rendered with nbconvert, outputs included, so the
reviewer sees exactly what would leave.
"""

from __future__ import annotations

import stat
from dataclasses import dataclass, field
from pathlib import Path

from tre.errors import NotFound, UserError
from tre.output_check.sources import SIDECAR_SUFFIX, read_csv

NOT_PREVIEWED = frozenset({"report.json", "report.html", "meta.json"})
IMAGES = {
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".gif": "image/gif",
    ".svg": "image/svg+xml",
}
TEXTS = {".txt", ".md", ".json", ".csv", ".tsv", ".log", ".html", ".tex"}
MAX_ROWS = 200
MAX_TEXT = 20_000


@dataclass
class Preview:
    name: str
    kind: str  # table, image, text, notebook, binary
    columns: list[str] = field(default_factory=list)
    rows: list[list[str]] = field(default_factory=list)
    total_rows: int = 0
    text: str = ""
    media_type: str = ""


def is_previewed(name: str) -> bool:
    return name not in NOT_PREVIEWED and not name.endswith(".csv" + SIDECAR_SUFFIX)


def build_previews(directory: Path, names: list[str]) -> list[Preview]:
    """A preview of each of `names` (files of the output folder `directory`) worth a look."""
    previews = []
    for name in names:
        if not is_previewed(name):
            continue
        path = regular_file(directory, name)
        suffix = path.suffix.lower()
        if suffix in (".csv", ".tsv"):
            try:
                frame = read_csv(path)
            except UserError:
                previews.append(Preview(name, "text", text=_head(path)))
                continue
            rows = frame.head(MAX_ROWS).fillna("").astype(str).values.tolist()
            previews.append(Preview(name, "table", columns=[str(c) for c in frame.columns], rows=rows,
                                    total_rows=len(frame)))  # fmt: skip
        elif suffix in IMAGES:
            previews.append(Preview(name, "image", media_type=IMAGES[suffix]))
        elif suffix == ".ipynb":
            previews.append(Preview(name, "notebook"))
        elif suffix in TEXTS:
            previews.append(Preview(name, "text", text=_head(path)))
        else:
            previews.append(Preview(name, "binary", text=f"{path.stat().st_size} bytes"))
    return previews


def regular_file(directory: Path, name: str) -> Path:
    """`directory/name` if it is a regular file inside `directory`, never through a link."""
    path = Path(directory) / name
    try:
        inside = path.resolve().is_relative_to(Path(directory).resolve())
        regular = stat.S_ISREG(path.lstat().st_mode)
    except OSError:
        inside = regular = False
    if not (inside and regular) or ".." in Path(name).parts:
        raise NotFound(f"no file {name!r} in output {Path(directory).name}")
    return path


def render_notebook(path: Path) -> str:
    """The notebook as one HTML page with its outputs (images embedded)."""
    import nbformat
    from nbconvert import HTMLExporter

    notebook = nbformat.read(str(path), as_version=4)
    exporter = HTMLExporter(template_name="lab", embed_images=True)
    body, _ = exporter.from_notebook_node(notebook)
    return body


def _head(path: Path) -> str:
    with open(path, encoding="utf-8", errors="replace") as f:
        text = f.read(MAX_TEXT + 1)
    return text[:MAX_TEXT] + ("\n…" if len(text) > MAX_TEXT else "")
