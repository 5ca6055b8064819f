"""A project's outputs on disk: from its queue into a request, and their digests.

`tre.safe` queues each output as `requests/queue/<name>/` in the project's workspace. Adding it
to a request re-checks it (its files are the ones checked, nothing in them leaks, and it does
not difference with anything released since) and moves the directory to
`requests/REQ-<n>/<name>/`. As the project's kernel made the report, intake also re-checks the
published table itself (`build_published_findings`). The digest of every file in it (`build_contents`,
`contents_digest`) is fixed at submission and checked again at release.

Output directories hold regular files only: a symlink could point anywhere (at the extract),
so one is refused wherever outputs are read.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
import os
import re
import stat
from pathlib import Path

from tre.config import ensure_private_dir
from tre.errors import UserError
from tre.output_check.central import build_central_report, build_ledger_entry
from tre.output_check.checks import Finding
from tre.output_check.kinds import Check, Status
from tre.output_check.ledger import LedgerTable
from tre.output_check.ledger_store import mirror_dir, project_ledger_dir, read_ledger, write_ledger_table
from tre.output_check.outputs import EvidenceError
from tre.output_check.parameters import Parameters, load_parameters
from tre.output_check.queue import QueueError, list_queue, queue_dir
from tre.output_check.reports import sha256_file
from tre.output_check.sources import (
    SIDECAR_SUFFIX,
    extract_path,
    published_from_frame,
    read_csv,
    read_pseudonyms,
    read_released_tables,
)
from tre.output_check.workflow import OutputFile
from tre.workspace import workspace

ID_SHAPED = re.compile(r"(?<!\d)\d{11}(?!\d)")
ROUNDING = ("round", "midpoint6")  # rounded tables publish multiples of a base, not raw counts
META_KEPT = ("name", "kind", "call", "arguments", "created_at", "status", "summary", "parameters_version")


def request_dir(project_dir: Path, label: str) -> Path:
    return Path(project_dir) / "requests" / label


def build_contents(directory: Path) -> list[dict]:
    """Every file of an output directory with its sha256 and size, by relative name."""
    found = []
    for path in sorted(directory.rglob("*")):
        relative = path.relative_to(directory).as_posix()
        mode = path.lstat().st_mode
        if stat.S_ISDIR(mode):
            continue
        if not stat.S_ISREG(mode):
            raise QueueError(f"output {directory.name}: {relative} is not a regular file (a link?); queue it again")
        found.append({"name": relative, "sha256": sha256_file(path), "size": path.stat().st_size})
    return found


def contents_digest(contents: list[dict] | tuple[dict, ...]) -> str:
    """One sha256 for an output: of its files' sha256 and names, sorted by name."""
    lines = "".join(f"{c['sha256']}  {c['name']}\n" for c in sorted(contents, key=lambda c: c["name"]))
    return hashlib.sha256(lines.encode("utf-8")).hexdigest()


def build_published_findings(directory: Path, report: dict, params: Parameters) -> list[Finding]:
    """Re-check the published table itself, since the project's kernel made the report: the
    released layout (cells.csv) holds the cells the report describes, and no count the report
    publishes is under the threshold."""
    cells = [c for c in report.get("cells") or [] if c.get("status") != "merged"]
    findings = []
    counts = report.get("statistic") == "count" and report.get("method") not in ROUNDING
    if counts:
        small = [c for c in cells if c.get("published") is not None and 0 < float(c["published"]) < params.threshold]
        if small:
            findings.append(
                Finding(
                    Check.MINIMUM_THRESHOLD,
                    Status.FAIL,
                    f"{len(small)} published count(s) under the threshold of {params.threshold}, which the "
                    "check report passed",
                )
            )
    table = directory / "cells.csv"
    sidecar = table.with_name(table.name + SIDECAR_SUFFIX)
    if cells and table.is_file() and sidecar.is_file():
        try:
            side = json.loads(sidecar.read_text(encoding="utf-8"))
            dims = side["dimensions"]
            published = published_from_frame(read_csv(table), "cells", dims, side["value_column"]).cells
            expected = {tuple(str(c["key"][d]) for d in dims): c["published"] for c in cells}
        except (OSError, ValueError, KeyError, TypeError, UserError):
            published, expected = None, {}
        if published is None or not _same_values(published, expected):
            findings.append(
                Finding(
                    Check.UNCHECKED_CONTENT,
                    Status.FAIL,
                    "cells.csv does not hold the table the check report describes: queue it again",
                )
            )
    return findings


def _same_values(published: dict, expected: dict) -> bool:
    if set(published) != set(expected):
        return False
    for key, value in published.items():
        other = expected[key]
        if (value is None) != (other is None):
            return False
        if value is not None and not math.isclose(value, float(other), rel_tol=1e-9, abs_tol=1e-9):
            return False
    return True


def check_unchanged(directory: Path, meta: dict) -> None:
    """The queued files are the ones the check saw (meta.json lists their sha256)."""
    changed = [
        e["name"]
        for e in meta.get("files", [])
        if not (directory / e["name"]).is_file() or sha256_file(directory / e["name"]) != e["sha256"]
    ]
    report = directory / "report.json"
    if not report.is_file() or sha256_file(report) != meta.get("report_sha256"):
        changed.append("report.json")
    if changed:
        raise QueueError(
            f"output {directory.name} changed after it was checked ({', '.join(changed)}): queue it again from the notebook"
        )


class WorkspaceOutputs:
    """Outputs in project workspaces under `projects_dir` (the filesystem side of the workflow),
    and the projects' release ledgers under `ledger_dir` (central)."""

    def __init__(self, projects_dir: Path, *, ledger_dir: Path):
        self.projects_dir = Path(projects_dir)
        self.ledger_dir = Path(ledger_dir)

    def ledger(self, project_id: str) -> list[LedgerTable]:
        """The project's release ledger (central)."""
        return read_ledger(project_ledger_dir(self.ledger_dir, project_id))

    def unledgered(self, project_id: str, ledger: list[LedgerTable]) -> list:
        """Released count tables the ledger does not hold (released before it), compared value by value."""
        released, _ = read_released_tables(self.project_dir(project_id) / "released")
        known = {t.name for t in ledger}
        return [t for t in released if t.name not in known]

    def project_dir(self, project_id: str) -> Path:
        return workspace(self.projects_dir, project_id).root

    def queued(self, project_id: str) -> list[dict]:
        """The project's queued outputs (their meta.json), oldest first."""
        return list_queue(queue_dir(self.project_dir(project_id)))

    def queued_dir(self, project_id: str, name: str) -> Path:
        directory = queue_dir(self.project_dir(project_id)) / name
        if "/" in name or name.startswith(".") or not (directory / "meta.json").is_file():
            names = ", ".join(m["name"] for m in self.queued(project_id)) or "none"
            raise QueueError(f"no output {name!r} in project {project_id}'s queue (queued: {names})")
        return directory

    def output_dir(self, project_id: str, label: str, name: str) -> Path:
        return request_dir(self.project_dir(project_id), label) / name

    def pseudonyms(self, project_id: str) -> frozenset[str]:
        """The project's pseudonyms (for redacting what officers are shown); none without an extract."""
        path = extract_path(self.projects_dir, project_id)
        return read_pseudonyms(path) if path.is_file() else frozenset()

    def parameters(self, threshold: int | None) -> Parameters:
        return load_parameters(threshold=threshold)

    def check_queued(self, project_id: str, name: str, threshold: int | None, now: dt.datetime) -> OutputFile:
        """Re-check a queued output for a request; refuses one that changed or used a lower threshold."""
        if ID_SHAPED.search(name):
            # Names go into the audit log, which refuses anything shaped like an ID number.
            raise QueueError(
                "an output whose name has 11 digits in a row (the shape of an ID number) cannot be "
                "requested: make it again under another name"
            )
        directory = self.queued_dir(project_id, name)
        meta = json.loads((directory / "meta.json").read_text(encoding="utf-8"))
        queued = json.loads((directory / "report.json").read_text(encoding="utf-8"))
        if meta.get("project") != project_id:
            raise QueueError(f"output {name} was made for project {meta.get('project')!r}, not {project_id}")
        check_unchanged(directory, meta)
        params = self.parameters(threshold)
        used = queued.get("parameters", {}).get("threshold", 0)
        if used < params.threshold:
            raise QueueError(
                f"output {name} was checked with threshold {used}, project {project_id} needs {params.threshold}: "
                "make it again (the project's servers set TRE_OUTPUT_THRESHOLD)"
            )
        contents = build_contents(directory)
        pseudonyms = read_pseudonyms(extract_path(self.projects_dir, project_id))  # no extract: refused
        ledger = self.ledger(project_id)
        released = self.unledgered(project_id, ledger)
        # the kernel's report is not evidence: the central recompute's verdict is the only one kept
        central = build_central_report(directory, meta, params, pseudonyms, ledger, released=released, now=now)
        return OutputFile(
            name=name,
            kind=meta["kind"],
            sha256=contents_digest(contents),
            check_status=str(central.status),
            report=central.as_dict(),
            context={},
            contents=tuple(contents),
            meta={k: meta[k] for k in META_KEPT if k in meta},
            added_at=now,
        )

    def claim(self, project_id: str, name: str, label: str) -> Path:
        """Move a queued output into the request's folder."""
        source = self.queued_dir(project_id, name)
        target = self.output_dir(project_id, label, name)
        target.parent.mkdir(parents=True, exist_ok=True)
        _keep_group(target.parent, source.parent)
        os.rename(source, target)
        return target

    def unclaim(self, project_id: str, name: str, label: str) -> Path:
        """Move an output of a request back into the queue (its name must be free there)."""
        source = self.output_dir(project_id, label, name)
        target = queue_dir(self.project_dir(project_id)) / name
        if target.exists():
            raise QueueError(f"an output named {name!r} is queued again: remove or rename that one first")
        os.rename(source, target)
        return target

    def seal(self, project_id: str, label: str) -> None:
        """As root, make a submitted request's folder read-only for the project (root:group,
        dirs 0750, files 0640); the digests catch a change either way."""
        directory = request_dir(self.project_dir(project_id), label)
        if os.geteuid() != 0 or not directory.is_dir():
            return
        gid = directory.parent.stat().st_gid
        for path in [directory, *directory.rglob("*")]:
            if path.is_symlink():
                continue
            os.chown(path, 0, gid)
            path.chmod(0o750 if path.is_dir() else 0o640)

    def unseal(self, project_id: str, label: str) -> None:
        """As root, give a reopened request's folder back to the project group (2770)."""
        directory = request_dir(self.project_dir(project_id), label)
        if os.geteuid() == 0 and directory.is_dir():
            directory.chmod(0o2770)

    def current_contents(self, project_id: str, label: str, name: str) -> list[dict]:
        directory = self.output_dir(project_id, label, name)
        if not directory.is_dir():
            raise QueueError(f"output {name} of {label} is missing from the project's requests folder")
        return build_contents(directory)

    def new_differences(self, project_id: str, label: str, output: OutputFile, threshold: int | None) -> list[str]:
        """Differencing findings of `output` against the released tables that its stored
        re-check did not have (tables released after it was added)."""
        directory = self.output_dir(project_id, label, output.name)
        ledger = [t for t in self.ledger(project_id) if not t.name.startswith(f"{label}/")]
        released = [t for t in self.unledgered(project_id, ledger) if not t.name.startswith(f"{label}/")]
        if not released and not ledger:
            return []
        try:
            meta = json.loads((directory / "meta.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            meta = {**output.meta, "files": list(output.contents)}
        report = build_central_report(
            directory, meta, self.parameters(threshold), frozenset(), ledger, released=released
        )
        stored = output.report.get("recheck", output.report)
        known = {f["message"] for f in stored.get("findings", [])}
        new = [f for f in report.findings if f.message not in known]
        reasons = [f.message for f in new if f.check == Check.DIFFERENCING]
        return reasons + [f.message for f in new if f.status == Status.FAIL and f.check != Check.DIFFERENCING]

    def ledger_entries(self, project_id: str, label: str, output: OutputFile, threshold: int | None) -> list:
        """The ledger tables a released output adds (its published cells with their units); none
        for an output without evidence (made before the ledger, or not a table)."""
        directory = self.output_dir(project_id, label, output.name)
        ledger = [t for t in self.ledger(project_id) if not t.name.startswith(f"{label}/")]
        released = [t for t in self.unledgered(project_id, ledger) if not t.name.startswith(f"{label}/")]
        name = f"{label}/{output.name}"
        try:
            entry = build_ledger_entry(
                directory, output.meta, self.parameters(threshold), ledger, name, label, released=released
            )
        except EvidenceError:
            return []
        return [] if entry is None else [entry]

    def record_release(self, project_id: str, tables: list) -> None:
        """Write released tables into the central ledger and its copy in the project's released/."""
        central = project_ledger_dir(self.ledger_dir, project_id)
        ensure_private_dir(self.ledger_dir, "the release ledger (TRE_LEDGER_DIR)")
        mirror = mirror_dir(self.project_dir(project_id))
        for table in tables:
            write_ledger_table(central, table)
            write_ledger_table(mirror, table)
        for directory in (central, mirror):
            if directory.is_dir():
                directory.chmod(0o700 if directory == central else 0o755)


def _keep_group(directory: Path, like: Path) -> None:
    """A request folder made by root keeps the project's group, as the queue has it."""
    try:
        if os.geteuid() == 0:
            info = like.stat()
            os.chown(directory, 0, info.st_gid)
            directory.chmod(0o2770)
    except OSError:
        pass
