"""Register deliveries on disk: finding them, checking their manifests, scanning their bytes.

A delivery is a data file `<source>-<period>.csv|parquet` beside its manifest
`<source>-<period>.manifest.json` (`tre.registers.Manifest`). Everything here is a *hard*
check: a delivery that fails one is not ingested at all, and the message names the file, and
the line and column where there is one.
"""

from __future__ import annotations

import csv
import hashlib
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from tre.errors import DeliveryError, Problems
from tre.linkage.zone import redact
from tre.registers import SCHEMA_VERSION, SOURCES, Manifest, Source, manifest_path

ENCODINGS = {"utf-8": "utf-8", "utf8": "utf-8", "latin-1": "latin-1", "latin1": "latin-1", "iso-8859-1": "latin-1"}
BOM = b"\xef\xbb\xbf"
MAX_LINE_BYTES = 1 << 20
# Within one run: the population register and the messages first, so that the ID history and
# every opt-out are in place before the rows they concern; the historic key before its rows.
ORDER = {"dsf": 0, "dsf_idhistory": 1, "reservasjon": 2, "iplos_historisk_nokkel": 3, "iplos_historisk": 9}


def located(where: str, message: str, *, line: int | None = None, column: str | None = None) -> DeliveryError:
    """A hard failure, located: `kuhr-2023.csv line 57 column refund_nok: what is wrong`."""
    location = where + (f" line {line}" if line else "") + (f" column {column}" if column else "")
    return DeliveryError(redact(f"{location}: {message}"))


@dataclass(frozen=True)
class DeliveryFile:
    """A delivery found on disk, its manifest read and checked."""

    data: Path
    manifest: Manifest
    source: Source

    @property
    def name(self) -> str:
        return self.data.name

    @property
    def encoding(self) -> str:
        return ENCODINGS[self.manifest.encoding.lower()]


@dataclass
class Outcome:
    """What happened to one delivery: ingested, already ingested, or failed."""

    file: str
    status: str  # "ingested", "already_ingested" or "failed"
    source: str | None = None
    period: str | None = None
    delivery: int | None = None
    message: str = ""
    report: dict = field(default_factory=dict)

    def as_dict(self) -> dict:
        return {
            "file": self.file,
            "status": self.status,
            "source": self.source,
            "period": self.period,
            "delivery": self.delivery,
            "message": self.message,
            "report": self.report,
        }


def find_deliveries(paths: Iterable[Path], *, source: str | None = None) -> list[DeliveryFile | Outcome]:
    """Each delivery the paths name (data files, manifests, or folders of them), in ingest order.

    A delivery whose manifest is missing or wrong comes back as a failed `Outcome`.
    """
    if source is not None and source not in SOURCES:
        raise DeliveryError(f"--source {source}: unknown source; known: {', '.join(SOURCES)}")
    manifests: list[Path] = []
    for path in map(Path, paths):
        if path.is_dir():
            found = sorted(path.glob("*.manifest.json"))
            if not found:
                raise DeliveryError(f"{path}: no delivery manifests (*.manifest.json) in this folder")
            manifests += found
        elif path.name.endswith(".manifest.json"):
            manifests.append(path)
        elif path.exists():
            manifests.append(manifest_path(path))
        else:
            raise DeliveryError(f"{path}: no such file or folder")
    found: list[DeliveryFile | Outcome] = []
    for path in dict.fromkeys(manifests):
        try:
            found.append(read_delivery(path, source=source))
        except DeliveryError as e:
            found.append(Outcome(file=path.name.removesuffix(".manifest.json"), status="failed", message=str(e)))

    def order(item):
        if isinstance(item, Outcome):
            return (-1, "", item.file)
        return (ORDER.get(item.source.name, 5), item.manifest.period, item.name)

    return sorted(found, key=order)


def read_delivery(manifest_file: Path, *, source: str | None = None) -> DeliveryFile:
    """Read and check a manifest; raise DeliveryError naming the file and what is wrong."""
    where = manifest_file.name
    if not manifest_file.is_file():
        raise located(where, "no manifest: every delivery comes with <source>-<period>.manifest.json beside it")
    try:
        manifest = Manifest.read(manifest_file)
    except json.JSONDecodeError as e:
        raise located(where, "not valid JSON", line=e.lineno) from None
    except (ValueError, TypeError, UnicodeDecodeError) as e:
        raise located(where, f"not a delivery manifest ({e})") from None
    problems = _manifest_problems(manifest_file, manifest, source)
    if len(problems) > 1:
        raise Problems(where, [redact(p) for p in problems])
    if problems:
        raise located(where, problems[0])
    data = manifest_file.with_name(manifest.file)
    if not data.is_file():
        raise located(where, f"names {manifest.file}, which is not there")
    return DeliveryFile(data=data, manifest=manifest, source=SOURCES[manifest.source])


def _manifest_problems(manifest_file: Path, manifest: Manifest, source: str | None) -> list[str]:
    problems = []
    if manifest.source not in SOURCES:
        problems.append(f"unknown source {manifest.source!r}")
    if source is not None and manifest.source != source:
        problems.append(f"this is a {manifest.source} delivery, not {source} (--source)")
    stem = f"{manifest.source}-{manifest.period}"
    if Path(manifest.file).name != manifest.file:
        problems.append("file must be a file name beside the manifest")
    elif not manifest.file.startswith(stem + "."):
        problems.append(f"file {manifest.file!r} is not named {stem}.<format> (source and period)")
    if manifest_file.name != f"{stem}.manifest.json":
        problems.append(f"the manifest of a {manifest.source} delivery for {manifest.period} is {stem}.manifest.json")
    if manifest.format not in ("csv", "parquet") or not manifest.file.endswith("." + manifest.format):
        problems.append(f"format {manifest.format!r} must be csv or parquet and match the file's extension")
    if manifest.format == "csv" and str(manifest.encoding).lower() not in ENCODINGS:
        problems.append(f"encoding {manifest.encoding!r} must be utf-8 or latin-1")
    if manifest.schema_version != SCHEMA_VERSION:
        problems.append(f"schema_version {manifest.schema_version} is not {SCHEMA_VERSION}")
    if not isinstance(manifest.rows, int) or manifest.rows < 0:
        problems.append("rows must be a whole number ≥ 0")
    if not re.fullmatch(r"[0-9a-f]{64}", str(manifest.sha256)):
        problems.append("sha256 must be 64 lowercase hex digits")
    return problems


@dataclass(frozen=True)
class FileScan:
    """What one pass over a data file's bytes found."""

    sha256: str
    control_bytes: int  # bytes 0x00-0x1f and 0x7f other than line ends
    newlines: int
    carriage_returns: int
    ends_with_newline: bool

    def has_one_record_per_line(self, rows: int) -> bool:
        """No field spans lines: the line ends are exactly the header's and the rows'."""
        lines = self.newlines + (0 if self.ends_with_newline else 1)
        return lines == rows + 1 and self.carriage_returns in (0, self.newlines)


def scan_file(path: Path, *, text: bool) -> FileScan:
    """Hash the file; for a text file also count control bytes and line ends, in the same pass."""
    digest = hashlib.sha256()
    control = newlines = returns = 0
    last = b""
    with open(path, "rb") as f:
        while chunk := f.read(1 << 24):
            digest.update(chunk)
            if text:
                # numpy counts bytes several times faster than bytes.count or translate, and
                # without the GIL, so the scan keeps out of the way of DuckDB reading the file.
                octets = np.frombuffer(chunk, dtype=np.uint8)
                lows, line_ends = np.count_nonzero(octets < 0x20), np.count_nonzero(octets == 0x0A)
                ends = line_ends + (np.count_nonzero(octets == 0x0D) if b"\r" in chunk else 0)
                control += lows - ends + (np.count_nonzero(octets == 0x7F) if b"\x7f" in chunk else 0)
                newlines += line_ends
                returns += ends - line_ends
            last = chunk[-1:]
    return FileScan(digest.hexdigest(), control, newlines, returns, last == b"\n")


def read_header(item: DeliveryFile) -> list[str]:
    """The column names on a CSV delivery's first line."""
    with open(item.data, "rb") as f:
        first = f.readline(MAX_LINE_BYTES)
    if not first:
        raise located(item.name, "the file is empty; a delivery starts with a header line", line=1)
    first = first.removeprefix(BOM).rstrip(b"\r\n")
    try:
        text = first.decode(item.encoding)
    except UnicodeDecodeError:
        raise located(
            item.name, f"not valid {item.encoding}; declare the file's encoding in the manifest", line=1
        ) from None
    return [name.strip() for name in next(csv.reader([text]))]


def check_columns(item: DeliveryFile, header: list[str], *, line: int | None) -> None:
    """The header must have the source's columns: none unknown, none repeated, every required one."""
    source = item.source
    known = source.column_names
    repeated = sorted({h for h in header if header.count(h) > 1})
    unknown = [h for h in header if h not in known]
    missing = [c.name for c in source.columns if c.required and c.name not in header]
    problems = []
    if repeated:
        problems.append(f"column(s) {', '.join(repeated)} appear more than once")
    if unknown:
        hint = "; the file is not comma-separated" if any(";" in h or "\t" in h for h in unknown) else ""
        problems.append(f"unknown column(s) {', '.join(repr(u[:40]) for u in unknown)}{hint}")
    if missing:
        problems.append(f"missing required column(s) {', '.join(missing)}")
    if not problems:
        return
    other = [s.name for s in SOURCES.values() if s.name != source.name and set(header) <= set(s.column_names)]
    if other:
        problems.append(f"these are the columns of {other[0]}: is this a {other[0]} delivery?")
    raise located(item.name, f"{'; '.join(problems)} (a {source.name} delivery has: {', '.join(known)})", line=line)
