"""A project's queue of outputs awaiting review: `requests/queue/<output-name>/`.

Each queued output is one directory, written whole or not at all (built under a temporary
name, then renamed):

    requests/queue/<name>/
        <output files>   what would leave: table.csv (as shown), cells.csv + cells.csv.json
                         (the published table in the released layout), figure.png,
                         coefficients.csv, summary.txt, or a custom file
        report.json      the check report (tre-output-check/1)
        report.html      the same for people
        meta.json        tre-queued-output/1: name, kind, call, arguments, created_at,
                         os_user, project, status, and every output file with its sha256

The review workflow turns queued outputs into requests; `tre check output DIR` re-checks one.
"""

from __future__ import annotations

import datetime as dt
import getpass
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from tre.errors import UnsafeFile, UserError
from tre.output_check.assessments import combine_status
from tre.output_check.checks import Finding
from tre.output_check.differencing import PublishedTable, find_differences
from tre.output_check.kinds import Check, OutputKind, Status
from tre.output_check.notebooks import _text_findings
from tre.output_check.parameters import Parameters
from tre.output_check.reports import Report, render_html, sha256_file, write_json
from tre.output_check.sources import SIDECAR_SUFFIX, published_from_frame, read_csv
from tre.project_files import MAX_NAME, Folder, check_name, is_good_name

META_FORMAT = "tre-queued-output/1"
META_LIMIT = 1 << 20
TEXT_FILES = (".csv", ".txt", ".json", ".md", ".html", ".svg")


class QueueError(UserError):
    """An output that cannot be queued (bad name, taken name, unwritable queue)."""


def queue_dir(project_dir: Path) -> Path:
    return Path(project_dir) / "requests" / "queue"


def next_output_name(queue: Path, prefix: str = "output") -> str:
    """`output_0`, `output_1`, ...: the first name not yet in the queue."""
    taken = {p.name for p in queue.iterdir()} if queue.is_dir() else set()
    n = 0
    while f"{prefix}_{n}" in taken:
        n += 1
    return f"{prefix}_{n}"


def write_queued_output(
    queue: Path,
    name: str,
    *,
    kind: OutputKind,
    report: Report,
    files: dict[str, Callable[[Path], None]],
    call: str,
    arguments: dict,
    project: str,
    now: dt.datetime,
    title: str | None = None,
    extra: dict | None = None,
) -> Queued:
    """Write one queued output: each of `files` by its writer, the reports, and meta.json
    (with `extra` fields, e.g. the fingerprint of the table as shown).

    A name already queued is never replaced: made again with the same published files it is
    left as it is (`Queued.unchanged`); with different ones, the new output is queued as the
    next free version `<name>-2`, `<name>-3`, ... (`Queued.replaces` names the old one)."""
    check_name(name)
    try:
        queue.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{name}.", dir=queue))
    except OSError as e:
        raise QueueError(f"cannot write to the project's queue {queue} ({e.strerror})") from None
    try:
        for filename, writer in files.items():
            writer(staging / filename)
        write_json(report, staging / "report.json")
        (staging / "report.html").write_text(render_html(report, title or f"{kind} {name}"), encoding="utf-8")
        listed = sorted(p.name for p in staging.iterdir() if p.name not in ("report.json", "report.html"))
        published = [{"name": f, "sha256": sha256_file(staging / f)} for f in listed]
        queued = _version(queue, name, published)
        if queued.unchanged:
            shutil.rmtree(staging, ignore_errors=True)
            return queued
        meta = {
            "format": META_FORMAT,
            "name": queued.name,
            "kind": str(kind),
            "call": call,
            "arguments": arguments,
            "project": project,
            "os_user": _os_user(),
            "created_at": now.astimezone(dt.UTC).isoformat(timespec="seconds"),
            "status": str(report.status),
            "summary": report.summary(),
            "parameters_version": report.parameters.version,
            "files": published,
            "report_sha256": sha256_file(staging / "report.json"),
            **(extra or {}),
        }
        (staging / "meta.json").write_text(json.dumps(meta, indent=2, default=str) + "\n", encoding="utf-8")
        # Read-only: JupyterLab then makes no checkpoint copies in here when a report is opened.
        for path in staging.iterdir():
            path.chmod(0o440)
        os.rename(staging, queue / queued.name)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return queued


@dataclass(frozen=True)
class Queued:
    """Where an output was queued: its name (a new version's, if the name was taken)."""

    path: Path
    unchanged: bool = False  # the same output was already queued under this name
    replaces: str | None = None  # the name it would have had: an output of that name differs

    @property
    def name(self) -> str:
        return self.path.name


def _version(queue: Path, name: str, published: list[dict]) -> Queued:
    """The name to queue under: `name` when free, the same folder when it holds the same
    published files, else the first free `name-N`."""
    if not (queue / name).exists():
        return Queued(queue / name)
    n = 1
    candidate = name
    while (queue / candidate).exists():
        if _published_files(queue / candidate) == published:
            return Queued(queue / candidate, unchanged=True, replaces=None if candidate == name else name)
        n += 1
        candidate = f"{name[: MAX_NAME - len(str(n)) - 1]}-{n}"
    return Queued(queue / candidate, replaces=name)


def _published_files(directory: Path) -> list[dict] | None:
    try:
        return json.loads((directory / "meta.json").read_text(encoding="utf-8")).get("files")
    except (OSError, ValueError, AttributeError):
        return None


def list_queue(queue: Path) -> list[dict]:
    """Every queued output's meta.json, oldest first."""
    try:
        folder = Folder.open(queue, "requests/queue")
    except UnsafeFile:
        return []
    with folder:
        return list_queue_folder(folder, META_LIMIT)


def list_queue_folder(folder: Folder, limit: int) -> list[dict]:
    """Every output in an open queue folder (meta.json read without following links, at most
    `limit` bytes each), oldest first. Entries that are not outputs are left out."""
    metas = []
    for entry in folder.entries():
        if not entry.is_dir or not is_good_name(entry.name):
            continue
        try:
            with folder.folder(entry.name) as output:
                meta = json.loads(output.read_bytes("meta.json", limit))
        except (UnsafeFile, UnicodeDecodeError, ValueError):
            continue
        if isinstance(meta, dict) and meta.get("name") == entry.name and isinstance(meta.get("created_at"), str):
            metas.append(meta)
    return sorted(metas, key=lambda m: (m["created_at"], m["name"]))


def build_queued_output_report(
    directory: Path,
    params: Parameters,
    pseudonyms: frozenset[str],
    released: Sequence[PublishedTable] = (),
    *,
    now: dt.datetime | None = None,
) -> Report:
    """Re-check a queued output: its files are the ones checked, nothing in them leaks, and
    its published table does not difference with anything released since."""
    meta_path = directory / "meta.json"
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        queued = json.loads((directory / "report.json").read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        raise QueueError(f"{directory} is not a queued output (needs meta.json and report.json)") from None
    findings = [
        Finding(Check(f["check"]), Status(f["status"]), f["message"])
        for f in queued.get("findings", [])
        if f["status"] != Status.PASS
    ]
    for entry in meta.get("files", []):
        path = directory / entry["name"]
        if not path.is_file() or sha256_file(path) != entry["sha256"]:
            findings.append(
                Finding(
                    Check.UNCHECKED_CONTENT,
                    Status.FAIL,
                    f"{entry['name']} changed after it was checked: queue it again",
                )
            )
        elif path.suffix.lower() in TEXT_FILES:
            findings += _text_findings(path.read_text(encoding="utf-8", errors="replace"), pseudonyms, entry["name"])
    if sha256_file(directory / "report.json") != meta.get("report_sha256"):
        findings.append(
            Finding(Check.UNCHECKED_CONTENT, Status.FAIL, "report.json changed after the check: queue again")
        )
    cells = directory / "cells.csv"
    sidecar = cells.with_name(cells.name + SIDECAR_SUFFIX)
    if released and cells.is_file() and sidecar.is_file():
        side = json.loads(sidecar.read_text(encoding="utf-8"))
        if side.get("statistic") == "count":
            mine = published_from_frame(read_csv(cells), meta["name"], side["dimensions"], side["value_column"])
            for d in find_differences(mine, released, params.threshold):
                findings.append(Finding(Check.DIFFERENCING, Status.FAIL, d.message(side["dimensions"])))
    status = combine_status([Status(queued["status"]), *(f.status for f in findings)])
    return Report(
        kind=OutputKind(meta["kind"]),
        status=status,
        parameters=params,
        findings=findings,
        inputs=[{"name": e["name"], "sha256": e["sha256"]} for e in meta.get("files", [])],
        details={"queued": {"name": meta["name"], "created_at": meta["created_at"], "status": queued["status"]}},
        checked_at=now,
    )


def _os_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return str(os.getuid())
