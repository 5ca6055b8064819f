"""Register deliveries on disk: finding them, checking their manifests, scanning their bytes.

A delivery is a data file `<source>-<period>.csv|parquet` beside its manifest
`<source>-<period>.manifest.json` (`tre.registers.Manifest`). Everything here is a *hard*
check: a delivery that fails one is not ingested at all, and the message names the file, and
the line and column where there is one.

The delivery folder is the data supplier's: every byte and every name in it is an attacker's
input. A manifest or data file must be a regular file with one name, in the folder itself: a
symbolic link (wherever it points), a hard link, a device, a FIFO or a file that resolves
outside the folder is refused. The data file is opened once, without following links, and
read through that open file from then on (`open_data`), so that nothing can be swapped in
between the checks and the reading. Its size is checked against the manifest's row count
before anything is loaded.
"""

from __future__ import annotations

import codecs
import csv
import hashlib
import json
import os
import re
import stat
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from tre.errors import DeliveryError
from tre.linkage.zone import redact
from tre.registers import SCHEMA_VERSION, SOURCES, Manifest, Source, manifest_path

ENCODINGS = {"utf-8": "utf-8", "utf8": "utf-8", "latin-1": "latin-1", "latin1": "latin-1", "iso-8859-1": "latin-1"}
BOM = b"\xef\xbb\xbf"
MAX_LINE_BYTES = 1 << 20
MAX_MANIFEST_BYTES = 1 << 16  # a manifest is a few hundred bytes
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
            found.append(
                Outcome(file=redact(path.name.removesuffix(".manifest.json")), status="failed", message=str(e))
            )

    def order(item):
        if isinstance(item, Outcome):
            return (-1, "", item.file)
        return (ORDER.get(item.source.name, 5), item.manifest.period, item.name)

    return sorted(found, key=order)


def read_delivery(manifest_file: Path, *, source: str | None = None) -> DeliveryFile:
    """Read and check a manifest; raise DeliveryError naming the file and what is wrong (every
    problem of the manifest at once)."""
    where = manifest_file.name
    if not os.path.lexists(manifest_file):
        raise located(where, "no manifest: every delivery comes with <source>-<period>.manifest.json beside it")
    check_delivery_file(manifest_file, where, "the manifest")
    descriptor = _open_plain(manifest_file, where, "the manifest")
    try:
        with os.fdopen(descriptor, "rb") as f:
            raw = f.read(MAX_MANIFEST_BYTES + 1)
    except OSError as e:
        raise located(where, f"cannot be read ({e.__class__.__name__})") from None
    if len(raw) > MAX_MANIFEST_BYTES:
        raise located(where, f"is larger than {MAX_MANIFEST_BYTES} bytes: not a delivery manifest")
    try:
        manifest = Manifest.parse(raw.decode("utf-8"))
    except json.JSONDecodeError as e:
        raise located(where, "not valid JSON", line=e.lineno) from None
    except (ValueError, TypeError, UnicodeDecodeError, RecursionError) as e:
        raise located(where, f"not a delivery manifest ({str(e)[:200]})") from None
    problems = _manifest_problems(manifest_file, manifest, source)
    if problems:
        shown = "; ".join(problems[:4]) + (f" (and {len(problems) - 4} more)" if len(problems) > 4 else "")
        raise located(where, f"{len(problems)} problem(s): {shown}" if len(problems) > 1 else problems[0])
    data = manifest_file.with_name(manifest.file)
    if not os.path.lexists(data):
        raise located(where, f"names {manifest.file}, which is not there")
    check_delivery_file(data, data.name, "the data file")
    return DeliveryFile(data=data, manifest=manifest, source=SOURCES[manifest.source])


def check_delivery_file(path: Path, where: str, what: str) -> os.stat_result:
    """A delivery's file must be a regular file with one name, directly in its folder: not a
    symbolic link (wherever it points), not a hard link, not a device or FIFO."""
    try:
        info = os.lstat(path)
    except OSError as e:
        raise located(where, f"{what} cannot be read ({e.__class__.__name__})") from None
    if stat.S_ISLNK(info.st_mode):
        raise located(
            where, f"{what} is a symbolic link: a delivery's files must be the files themselves, in the delivery folder"
        )
    if not stat.S_ISREG(info.st_mode):
        raise located(where, f"{what} is not a regular file")
    if info.st_nlink != 1:
        raise located(
            where, f"{what} has {info.st_nlink} names (a hard link): a delivery's files must be copies of their own"
        )
    if os.path.realpath(path.parent) != os.path.realpath(path).rsplit("/", 1)[0]:
        raise located(where, f"{what} resolves outside the delivery folder")
    return info


def _open_plain(path: Path, where: str, what: str) -> int:
    """Open a delivery's file for reading without following a link, and check what was opened."""
    try:
        # O_NONBLOCK: a FIFO swapped in after the checks does not hang the open.
        descriptor = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except OSError as e:
        raise located(where, f"{what} cannot be opened without following a link ({e.__class__.__name__})") from None
    info = os.fstat(descriptor)
    if not stat.S_ISREG(info.st_mode) or info.st_nlink != 1:
        os.close(descriptor)
        raise located(where, f"{what} is not a regular file with one name")
    os.set_blocking(descriptor, True)
    return descriptor


@dataclass
class OpenData:
    """A delivery's data file, opened once: `path` reads that very file (through /proc on Linux),
    whatever happens to the name in the delivery folder afterwards."""

    descriptor: int
    path: str
    size: int

    def close(self) -> None:
        if self.descriptor >= 0:
            os.close(self.descriptor)
            self.descriptor = -1


def open_data(item: DeliveryFile) -> OpenData:
    """Open the data file (no links followed) and check its size against the manifest's rows
    before anything is loaded."""
    check_delivery_file(item.data, item.name, "the data file")
    descriptor = _open_plain(item.data, item.name, "the data file")
    size = os.fstat(descriptor).st_size
    by_descriptor = f"/proc/self/fd/{descriptor}"
    opened = OpenData(descriptor, by_descriptor if os.path.exists(by_descriptor) else str(item.data), size)
    try:
        _check_size(item, size)
    except DeliveryError:
        opened.close()
        raise
    return opened


def _check_size(item: DeliveryFile, size: int) -> None:
    rows = item.manifest.rows
    if item.manifest.format != "csv":
        return  # a Parquet file's row count is in its own metadata, checked before loading
    columns = len(item.source.columns)
    # A CSV row holds at least its commas and a line end; at most MAX_LINE_BYTES.
    smallest = rows * columns
    largest = (rows + 1) * (MAX_LINE_BYTES + 2)
    if size < smallest:
        raise located(
            item.name, f"is {size} bytes: too small for the {rows} rows its manifest says: incomplete delivery"
        )
    if size > largest:
        raise located(
            item.name,
            f"is {size} bytes: more than {rows} rows of at most {MAX_LINE_BYTES} bytes can fill; its manifest says "
            f"{rows} rows",
        )


_TYPES = {
    "source": str,
    "period": str,
    "file": str,
    "format": str,
    "rows": int,
    "sha256": str,
    "encoding": str,
    "schema_version": int,
    "producer": str,
    "extra": dict,
}


def _manifest_problems(manifest_file: Path, manifest: Manifest, source: str | None) -> list[str]:
    # Types first, exactly: JSON true is no row count (Python would take it for 1).
    wrong = [name for name, kind in _TYPES.items() if type(getattr(manifest, name)) is not kind]
    if wrong:
        return [
            f"{name} must be {_TYPES[name].__name__ if _TYPES[name] is not dict else 'an object'}" for name in wrong
        ]
    problems = []
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_-]{0,39}", manifest.period):
        problems.append("period must be letters, digits, - and _ (up to 40), such as 2023 or 2006-2016")
    elif redact(manifest.period.replace("_", "-")) != manifest.period.replace("_", "-"):
        # It names the files and goes into messages, records and audit events: never a number
        # of a person (an audit event refuses one, so a committed delivery could not be recorded).
        problems.append("period must not hold an ID number or a run of 11 digits; it names a time, such as 2023")
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
    if manifest.rows < 0:
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
    utf8_text: bool = False  # bytes above 0x7f, and all of them valid UTF-8 (asked for Latin-1 files only)
    stopped: bool = False  # more line ends than `max_newlines`: the scan stopped there (no hash)

    def has_one_record_per_line(self, rows: int) -> bool:
        """No field spans lines: the line ends are exactly the header's and the rows'."""
        lines = self.newlines + (0 if self.ends_with_newline else 1)
        return lines == rows + 1 and self.carriage_returns in (0, self.newlines)


def scan_file(
    path: Path | str, *, text: bool, encoding: str = "utf-8", max_newlines: int | None = None, on_stop=None
) -> FileScan:
    """Hash the file; for a text file also count control bytes and line ends, in the same pass,
    and for a file declared Latin-1 whether its bytes are in fact UTF-8. Past `max_newlines`
    line ends it stops, calls `on_stop()` (which stops the load it runs beside) and says so:
    such a file holds more rows than its manifest says, or a field spanning lines."""
    digest = hashlib.sha256()
    control = newlines = returns = 0
    last = b""
    check_utf8 = text and encoding == "latin-1"
    decoder = codecs.getincrementaldecoder("utf-8")() if check_utf8 else None
    high = False
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
                if max_newlines is not None and newlines > max_newlines:
                    if on_stop is not None:
                        on_stop()
                    return FileScan("", control, newlines, returns, False, stopped=True)
                if decoder is not None and (high or not chunk.isascii()):
                    high = True
                    try:
                        decoder.decode(chunk)
                    except UnicodeDecodeError:
                        decoder = None  # not UTF-8: Latin-1 as declared
            last = chunk[-1:]
    if decoder is not None:
        try:
            decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            decoder = None
    utf8_text = high and decoder is not None
    return FileScan(digest.hexdigest(), control, newlines, returns, last == b"\n", utf8_text)


def check_scan(item: DeliveryFile, scan: FileScan, *, opened: str) -> None:
    """File-wide faults the byte scan shows, located where they can be: line ends of more than
    one kind (the first line that differs), line ends that are CR only, a file declared Latin-1
    whose bytes are UTF-8 (it would be stored as mojibake: ø as Ã¸)."""
    if item.manifest.format != "csv":
        return
    if scan.carriage_returns and not scan.newlines:
        raise located(item.name, "its line ends are CR only (an old Mac format): deliver LF or CRLF line ends", line=1)
    if scan.carriage_returns not in (0, scan.newlines):
        line, first, other = _first_other_line_end(opened)
        if line:
            raise located(
                item.name,
                f"line ends of more than one kind: line 1 ends with {first}, this line with {other}; "
                "deliver one kind throughout",
                line=line,
            )
    if scan.utf8_text:
        raise located(
            item.name,
            "is declared latin-1, but its bytes are UTF-8 (ø would be stored as Ã¸): declare utf-8 in the manifest",
        )


def _first_other_line_end(path: str) -> tuple[int, str, str]:
    """(line number, kind of line 1's end, kind of that line's end) of the first line that ends
    otherwise than line 1; (0, "", "") when all end alike. Read line by line: only a file
    already found faulty comes here."""
    first = ""
    with open(path, "rb") as f:
        for number, line in enumerate(iter(lambda: f.readline(MAX_LINE_BYTES + 2), b""), start=1):
            if not line.endswith(b"\n"):
                break
            kind = "CRLF" if line.endswith(b"\r\n") else "LF"
            first = first or kind
            if kind != first:
                return number, first, kind
    return 0, "", ""


def read_header(item: DeliveryFile, path: str) -> list[str]:
    """The column names on a CSV delivery's first line (`path`: the opened data file)."""
    with open(path, "rb") as f:
        first = f.readline(MAX_LINE_BYTES)
    if not first:
        raise located(item.name, "the file is empty; a delivery starts with a header line", line=1)
    first = first.removeprefix(BOM).rstrip(b"\r\n")
    if b"\r" in first:
        raise located(item.name, "its line ends are CR only (an old Mac format): deliver LF or CRLF line ends", line=1)
    try:
        text = first.decode(item.encoding)
    except UnicodeDecodeError:
        raise located(
            item.name, f"not valid {item.encoding}; declare the file's encoding in the manifest", line=1
        ) from None
    try:
        return [name.strip() for name in next(csv.reader([text]))]
    except csv.Error:
        raise located(item.name, "the header line is not well-formed CSV", line=1) from None


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
