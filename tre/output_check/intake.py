"""A project's outputs on their way into a request: copied once to the central side, and
everything after reads that copy only.

`tre.safe` queues each output as `requests/queue/<name>/` in the project's workspace, a folder
the project's own code writes. Adding it to a request (`WorkspaceOutputs.take_in`):

1. copies every file of it, opened without following links (`tre.project_files`: regular
   files only, one hard link, size from fstat under `output_file_limit`, or
   `output_evidence_limit` for the central-only files), into the central store
   `$TRE_OUTPUTS_DIR/<project>/REQ-<n>/<name>/received/`, which the project cannot write;
2. re-checks that copy (`recheck_copy`, the one function that decides the central verdict):
   every check recomputed centrally from the output's own evidence with the project's central
   parameters, against the release ledger (`central.build_central_report`); the kernel's
   report is not evidence, and only the central verdict is recorded;
3. prepares what will leave (`egress.build_leaving_files`) in `.../leaving/`: only the
   allowlisted published artefacts, each checked by content, formulas neutralised, sidecars
   rebuilt; the kernel's reports, meta.json and evidence stay central;
4. removes the queued folder from the project (without following links).

At release, the ledger entries of the released tables are made from `received/` (their
evidence) and written to the central release ledger (`ledger_dir`) and its read-only copy in
the project's `released/.ledger/`.

Hashing, previews, the review page and the release read `leaving/` (and `received/`) only, so
a file changed in the project after it was copied cannot change what leaves. No request has a
folder inside the project any more: nothing privileged writes into `requests/` but the queue
entry's removal and, when an output is taken out of a request again, its return to the queue.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
import re
import shutil
from pathlib import Path

from tre.config import Settings, ensure_private_dir
from tre.errors import UnsafeFile, UserError
from tre.output_check.assessments import combine_status
from tre.output_check.central import NOT_REBUILT, build_central_report, build_ledger_entry
from tre.output_check.checks import Finding
from tre.output_check.differencing import PublishedTable
from tre.output_check.egress import MAX_FILES, LeavingFile, build_leaving_files, is_central_only
from tre.output_check.kinds import Check, Status
from tre.output_check.ledger import LedgerTable
from tre.output_check.ledger_store import project_ledger_dir, read_ledger, write_ledger_table, write_mirror
from tre.output_check.outputs import EvidenceError
from tre.output_check.parameters import Parameters, load_parameters
from tre.output_check.queue import QueueError, list_queue_folder
from tre.output_check.reports import Report, sha256_file
from tre.output_check.sources import (
    SIDECAR_SUFFIX,
    extract_path,
    published_from_frame,
    read_csv,
    read_pseudonyms,
    read_released_tables,
)
from tre.output_check.workflow import OutputFile
from tre.project_files import Folder, check_name, name_problem, shown
from tre.workspace import QUEUE_DIR, workspace

ID_SHAPED = re.compile(r"(?<!\d)\d{11}(?!\d)")
ROUNDING = ("round", "midpoint6")  # rounded tables publish multiples of a base, not raw counts
META_KEPT = ("name", "kind", "call", "arguments", "created_at", "status", "summary", "parameters_version")
META_LIMIT = 1 << 20  # meta.json of a queued output, read to list the queue
RECEIVED, LEAVING = "received", "leaving"


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


def recheck_copy(
    directory: Path,
    meta: dict,
    params: Parameters,
    released: list[PublishedTable],
    *,
    pseudonyms: frozenset[str],
    now: dt.datetime | None,
    ledger: list[LedgerTable] = (),
) -> Report:
    """The central verdict on an output, from its central copy `directory` only: every check
    recomputed from the output's own evidence with the project's central parameters `params`,
    against the release ledger `ledger` (without this output) and the released tables the
    ledger does not hold (`released`); the files are the ones the recompute makes, none leaks.
    The kernel's report is not evidence: nothing of it is used or kept.

    The one place intake decides an output's check."""
    return build_central_report(directory, meta, params, pseudonyms, ledger, released=released, now=now)


def recheck_against_open(directory, meta, params, released, pseudonyms, now, ledger, opened) -> Report:
    """`recheck_copy` against the ledger and the entries of open outputs before this one
    (`opened`). The kernel protects against released tables only: when only the open ones make
    the rebuild differ, the verdict is the one against the ledger (it describes the files as
    made) plus a review finding naming them: an officer decides, or the output is made again
    once they are released."""
    report = recheck_copy(directory, meta, params, released, pseudonyms=pseudonyms, now=now, ledger=ledger + opened)
    if not (opened and _remade(report)):
        return report
    alone = recheck_copy(directory, meta, params, released, pseudonyms=pseudonyms, now=now, ledger=ledger)
    if _remade(alone):
        return report
    alone.findings.append(
        Finding(
            Check.DIFFERENCING,
            Status.REVIEW,
            "differences with output(s) of this project's requests not yet released "
            f"({', '.join(e.name for e in opened)}), which the kernel could not see: an officer must check that "
            "together they single out no one, or take it out and make it again once those are released (it is "
            "then protected against them)",
        )
    )
    alone.status = combine_status([alone.status, Status.REVIEW])
    return alone


def _remade(report: Report) -> bool:
    """Whether the central rebuild publishes other files than the output's."""
    return any(NOT_REBUILT in f.message for f in report.findings)


def check_unchanged(directory: Path, meta: dict) -> None:
    """The copied files are the ones the check saw (meta.json lists their sha256), and the
    output holds no file the check did not see."""
    listed = {e["name"] for e in meta.get("files", [])}
    changed = [e["name"] for e in meta.get("files", []) if not _matches(directory / e["name"], e.get("sha256"))]
    if not _matches(directory / "report.json", meta.get("report_sha256")):
        changed.append("report.json")
    if changed:
        raise QueueError(
            f"output {directory.parent.name} changed after it was checked ({', '.join(map(shown, changed))}): "
            "queue it again from the notebook"
        )
    unlisted = sorted(p.name for p in directory.iterdir() if p.name not in listed and not is_central_only(p.name))
    if unlisted:
        raise QueueError(
            f"output {directory.parent.name} holds file(s) its check never saw ({', '.join(map(shown, unlisted))}): "
            "queue it again from the notebook, and put nothing else into its folder"
        )


def _matches(path: Path, sha256: str | None) -> bool:
    return path.is_file() and sha256 is not None and sha256_file(path) == sha256


def copy_output_folder(source: Folder, dest: Folder, file_limit: int, evidence_limit: int) -> list[dict]:
    """Every file of a queued output's open folder, copied without following links into `dest`
    ({name, sha256, size} each). Refuses (UnsafeFile) hidden files, checkpoint and other
    folders, names outside the rule, and anything `Folder.copy_file` refuses."""
    entries = source.entries()
    if len(entries) > MAX_FILES:
        raise UnsafeFile(source.where, f"holds {len(entries)} entries, more than an output may ({MAX_FILES})")
    copied = []
    for entry in entries:
        where = f"{source.where}/{shown(entry.name)}"
        if entry.name == ".ipynb_checkpoints":
            raise UnsafeFile(where, "is a JupyterLab checkpoint folder: an output is one folder of files; delete it")
        if entry.name.startswith("."):
            raise UnsafeFile(where, "is a hidden file or folder, which may not leave; delete it")
        if entry.is_dir:
            raise UnsafeFile(where, "is a folder: an output is one folder of files")
        problem = name_problem(entry.name)
        if problem:
            raise UnsafeFile(where, f"has a name outside the rule ({problem})")
        central_only = is_central_only(entry.name)
        limit = evidence_limit if central_only else file_limit
        setting = "output_evidence_limit" if central_only else "output_file_limit"
        copied.append(source.copy_file(entry.name, dest, limit, setting=setting))
    return copied


class WorkspaceOutputs:
    """Outputs of project workspaces under `projects_dir`, their central copies under
    `outputs_dir` and the projects' release ledgers under `ledger_dir` (the filesystem side of
    the workflow)."""

    def __init__(
        self, projects_dir: Path, outputs_dir: Path, *, file_limit: int, evidence_limit: int, ledger_dir: Path
    ):
        self.projects_dir = Path(projects_dir)
        self.outputs_dir = Path(outputs_dir)
        self.ledger_dir = Path(ledger_dir)
        self.file_limit, self.evidence_limit = file_limit, evidence_limit

    @classmethod
    def from_settings(cls, settings: Settings) -> WorkspaceOutputs:
        return cls(
            settings.projects_dir,
            settings.outputs_dir,
            file_limit=settings.output_file_limit,
            evidence_limit=settings.output_evidence_limit,
            ledger_dir=settings.ledger_dir,
        )

    def project_dir(self, project_id: str) -> Path:
        return workspace(self.projects_dir, project_id).root

    # --- the project's queue (read without following links) -------------------------------

    def _queue(self, project_id: str) -> Folder | None:
        root = self.project_dir(project_id)
        if not root.is_dir():
            return None
        with Folder.open(root, "") as top:
            if not top.exists("requests"):
                return None
            with top.folder("requests") as requests:
                return requests.folder("queue") if requests.exists("queue") else None

    def queued(self, project_id: str) -> list[dict]:
        """The project's queued outputs (their meta.json), oldest first."""
        queue = self._queue(project_id)
        if queue is None:
            return []
        with queue:
            return list_queue_folder(queue, META_LIMIT)

    def queued_report(self, project_id: str, name: str) -> dict:
        """The check report a kernel wrote for a queued output (for its project's members)."""
        check_name(name)
        queue = self._queue(project_id)
        if queue is None or not queue.exists(name):
            self._not_queued(project_id, name)
        with queue, queue.folder(name) as folder:
            data = folder.read_bytes("report.json", self.evidence_limit, setting="output_evidence_limit")
        try:
            report = json.loads(data)
        except (UnicodeDecodeError, json.JSONDecodeError):
            report = None
        if not isinstance(report, dict):
            raise QueueError(f"output {name} has no readable check report: queue it again")
        return report

    def _not_queued(self, project_id: str, name: str):
        names = ", ".join(m["name"] for m in self.queued(project_id)) or "none"
        raise QueueError(f"no output {shown(name)!r} in project {project_id}'s queue (queued: {names})")

    # --- the central store ----------------------------------------------------------------

    def central_dir(self, project_id: str, label: str, name: str) -> Path:
        return self.outputs_dir / project_id / label / name

    def received_dir(self, project_id: str, label: str, name: str) -> Path:
        """The exact copy of a queued output's files, central-only ones included."""
        return self.central_dir(project_id, label, name) / RECEIVED

    def leaving_dir(self, project_id: str, label: str, name: str) -> Path:
        """The files of an output that will leave, as they will leave."""
        return self.central_dir(project_id, label, name) / LEAVING

    def pseudonyms(self, project_id: str) -> frozenset[str]:
        """The project's pseudonyms (for redacting what officers are shown); none without an extract."""
        path = extract_path(self.projects_dir, project_id)
        return read_pseudonyms(path) if path.is_file() else frozenset()

    def parameters(self, threshold: int | None) -> Parameters:
        return load_parameters(threshold=threshold)

    # --- the release ledger (central) -----------------------------------------------------

    def ledger(self, project_id: str) -> list[LedgerTable]:
        """The project's release ledger (central)."""
        return read_ledger(project_ledger_dir(self.ledger_dir, project_id))

    def unledgered(self, project_id: str, ledger: list[LedgerTable]) -> list[PublishedTable]:
        """Released count tables the ledger does not hold (released before it), compared value by value."""
        released, _ = read_released_tables(self.project_dir(project_id) / "released")
        known = {t.name for t in ledger if t.audited}  # released without verified units: by value
        return [t for t in released if t.name not in known]

    def _earlier(
        self, project_id: str, label: str, name: str | None = None, threshold: int | None = None
    ) -> tuple[list[LedgerTable], list[LedgerTable], list[PublishedTable]]:
        """What output `name` of request `label` is audited against: the ledger and the
        unledgered releases (without request `label`'s own outputs), and the entries of the
        other outputs of open requests added before it, as if released one by one in the order
        they were added (`name` None: every open output but the request's own)."""
        ledger = [t for t in self.ledger(project_id) if not t.name.startswith(f"{label}/")]
        released = [t for t in self.unledgered(project_id, ledger) if not t.name.startswith(f"{label}/")]
        return ledger, self._open_entries(project_id, ledger, released, label, name, threshold), released

    def _open_outputs(self, project_id: str, ledger: list[LedgerTable]) -> list[tuple[str, str, Path]]:
        """(label, name, received copy) of every output in a request that is not released (not
        in the ledger), in the order they were added (their `leaving/`, written last)."""
        known = {t.name for t in ledger}
        found = []
        for received in (self.outputs_dir / project_id).glob(f"REQ-*/*/{RECEIVED}"):
            central = received.parent
            label, name = central.parent.name, central.name
            leaving = central / LEAVING
            if f"{label}/{name}" in known or not leaving.is_dir():
                continue
            found.append((leaving.stat().st_mtime_ns, label, name, received))
        return [(label, name, received) for _, label, name, received in sorted(found)]

    def _open_entries(self, project_id, ledger, released, label, name, threshold) -> list[LedgerTable]:
        """The ledger entries the open outputs before output `name` of `label` would add if
        released one by one (each made against the ledger and the ones before it)."""
        entries: list[LedgerTable] = []
        params = self.parameters(threshold)
        pseudonyms = self.pseudonyms(project_id)
        for other_label, other, received in self._open_outputs(project_id, ledger):
            if (other_label, other) == (label, name):
                break
            if name is None and other_label == label:
                continue
            try:
                meta = json.loads((received / "meta.json").read_text(encoding="utf-8"))
                entry = build_ledger_entry(
                    received, meta, params, ledger + entries, f"{other_label}/{other}", other_label,
                    released=released, pseudonyms=pseudonyms,
                )  # fmt: skip
            except (OSError, ValueError, EvidenceError):
                continue  # no evidence to rebuild: its own check failed or went to review
            if entry is not None:
                entries.append(entry)
        return entries

    # --- into a request -------------------------------------------------------------------

    def take_in(self, project_id: str, name: str, label: str, threshold: int | None, now: dt.datetime) -> OutputFile:
        """Copy queued output `name` to the central side for request `label`, re-check the copy
        and prepare what will leave; refuses an output that changed, used a lower threshold,
        or holds a file that may not leave. The queued folder is left as it was."""
        check_name(name)
        if ID_SHAPED.search(name):
            # Names go into the audit log, which refuses anything shaped like an ID number.
            raise QueueError(
                "an output whose name has 11 digits in a row (the shape of an ID number) cannot be "
                "requested: make it again under another name"
            )
        central = self.central_dir(project_id, label, name)
        shutil.rmtree(central, ignore_errors=True)  # left by an add that failed
        try:
            return self._take_in(project_id, name, label, threshold, now, central)
        except BaseException:
            shutil.rmtree(central, ignore_errors=True)
            raise

    def _take_in(self, project_id, name, label, threshold, now, central: Path) -> OutputFile:
        received = self._copy_in(project_id, name, central / RECEIVED)
        copy = central / RECEIVED
        try:
            meta = json.loads((copy / "meta.json").read_text(encoding="utf-8"))
            queued = json.loads((copy / "report.json").read_text(encoding="utf-8"))
            if not (isinstance(meta, dict) and isinstance(queued, dict)):
                raise ValueError
        except (OSError, UnicodeDecodeError, ValueError):
            raise QueueError(f"{shown(name)} is not a queued output (it needs meta.json and report.json)") from None
        if meta.get("project") != project_id or meta.get("name") != name:
            raise QueueError(
                f"output {name} was made as {shown(str(meta.get('name')))!r} for project "
                f"{shown(str(meta.get('project')))!r}, not as {name} for {project_id}"
            )
        check_unchanged(copy, meta)
        params = self.parameters(threshold)
        used = (queued.get("parameters") or {}).get("threshold", 0)
        if not isinstance(used, int) or used < params.threshold:
            raise QueueError(
                f"output {name} was checked with threshold {used}, project {project_id} needs {params.threshold}: "
                "make it again (the project's servers are started with its threshold)"
            )
        pseudonyms = read_pseudonyms(extract_path(self.projects_dir, project_id))  # no extract: refused
        ledger = self.ledger(project_id)
        released = self.unledgered(project_id, ledger)
        # the outputs of open requests (this one's too) count as released before this one
        opened = self._open_entries(project_id, ledger, released, label, name, threshold)
        recheck = recheck_against_open(copy, meta, params, released, pseudonyms, now, ledger, opened)
        outgoing = {r["name"]: (copy / r["name"]).read_bytes() for r in received if not is_central_only(r["name"])}
        leaving = build_leaving_files(
            outgoing, call=str(meta.get("call", "")), arguments=meta.get("arguments") or {}, name=name, label=label
        )
        notes = [Finding(Check.UNCHECKED_CONTENT, Status.REVIEW, f"{f.name}: {n}") for f in leaving for n in f.notes]
        if notes:
            recheck.findings += notes
            recheck.status = combine_status([recheck.status, Status.REVIEW])
        contents = self._write_leaving(central / LEAVING, leaving)
        return OutputFile(
            name=name,
            kind=str(meta.get("kind", "file")),
            sha256=contents_digest(contents),
            check_status=str(recheck.status),
            report=recheck.as_dict(),  # the central verdict only: the kernel's report is not kept
            context={},
            contents=tuple(contents),
            meta={**{k: meta[k] for k in META_KEPT if k in meta}, "received": received},
            added_at=now,
        )

    def _copy_in(self, project_id: str, name: str, target: Path) -> list[dict]:
        """Every file of the queued folder, copied without following links into `target`."""
        ensure_private_dir(self.outputs_dir, "the central output store (TRE_OUTPUTS_DIR)")
        ensure_private_dir(target, "the central output store (TRE_OUTPUTS_DIR)")
        queue = self._queue(project_id)
        if queue is None or not queue.exists(name):
            self._not_queued(project_id, name)
        with queue, queue.folder(name) as source, Folder.open(target, "") as dest:
            return copy_output_folder(source, dest, self.file_limit, self.evidence_limit)

    @staticmethod
    def _write_leaving(directory: Path, leaving: list[LeavingFile]) -> list[dict]:
        ensure_private_dir(directory, "the central output store (TRE_OUTPUTS_DIR)")
        with Folder.open(directory, "") as folder:
            for f in leaving:
                folder.write_new(f.name, f.data)
        return [f.entry() for f in leaving]

    def discard(self, project_id: str, label: str, name: str) -> None:
        """Remove a central copy that will not be added after all (an add of several outputs
        that failed at a later one); the queued output stays in the queue."""
        shutil.rmtree(self.central_dir(project_id, label, name), ignore_errors=True)

    def claim(self, project_id: str, name: str) -> None:
        """Remove a queued output from the project once its central copy is in a request."""
        queue = self._queue(project_id)
        if queue is not None:
            with queue:
                queue.remove_tree(name)

    def unclaim(self, project_id: str, name: str, label: str) -> None:
        """Put an output of a request back into the project's queue (its name must be free
        there), from its central copy; the central copy is removed."""
        received = self.received_dir(project_id, label, name)
        root = self.project_dir(project_id)
        with Folder.open(root, "") as top, top.folder(QUEUE_DIR, create=0o2770) as queue:
            if queue.exists(name):
                raise QueueError(f"an output named {name!r} is queued again: remove or rename that one first")
            with queue.make_folder(name, 0o2770) as folder, Folder.open(received, "") as source:
                for entry in source.entries():
                    folder.write_new(entry.name, source.read_bytes(entry.name, max(entry.size, 1)), 0o440)
        shutil.rmtree(self.central_dir(project_id, label, name), ignore_errors=True)

    def current_contents(self, project_id: str, label: str, name: str) -> list[dict]:
        """The files that will leave, hashed again from the central copy."""
        directory = self.leaving_dir(project_id, label, name)
        if not directory.is_dir():
            raise QueueError(f"the central copy of output {name} of {label} is missing: restore it from backup")
        with Folder.open(directory, "") as folder:
            found = []
            for entry in folder.entries():
                data = folder.read_bytes(entry.name, max(self.file_limit, entry.size))
                found.append({"name": entry.name, "sha256": hashlib.sha256(data).hexdigest(), "size": len(data)})
        return found

    def new_differences(self, project_id: str, label: str, output: OutputFile, threshold: int | None) -> list[str]:
        """Findings of `output` against what was released after it was added (the ledger and
        released tables its stored central check did not have): differencing, and any new
        failure."""
        directory = self.received_dir(project_id, label, output.name)
        ledger, opened, released = self._earlier(project_id, label, output.name, threshold)
        if not released and not ledger and not opened:
            return []
        try:
            meta = json.loads((directory / "meta.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            meta = {**output.meta, "files": list(output.contents)}
        params = self.parameters(threshold)
        report = recheck_against_open(directory, meta, params, released, frozenset(), None, ledger, opened)
        stored = output.report.get("recheck", output.report)
        known = {f["message"] for f in stored.get("findings", [])}
        new = [f for f in report.findings if f.message not in known]
        reasons = [f.message for f in new if f.check == Check.DIFFERENCING]
        return reasons + [f.message for f in new if f.status == Status.FAIL and f.check != Check.DIFFERENCING]

    def ledger_entries(self, project_id: str, label: str, output: OutputFile, threshold: int | None) -> list:
        """The ledger tables a released output adds (its published cells with their units), made
        from its central copy; none for an output without evidence (not a table)."""
        directory = self.received_dir(project_id, label, output.name)
        # the ledger it was made against (the kernel sees released tables only): the entry is what it publishes
        ledger, _, released = self._earlier(project_id, label, output.name, threshold)
        name = f"{label}/{output.name}"
        try:
            entry = build_ledger_entry(
                directory, output.meta, self.parameters(threshold), ledger, name, label, released=released,
                pseudonyms=self.pseudonyms(project_id),
            )  # fmt: skip
        except EvidenceError:
            return []
        return [] if entry is None else [entry]

    def record_release(self, project_id: str, tables: list) -> None:
        """Write released tables into the central ledger and its read-only copy in the project's released/."""
        central = project_ledger_dir(self.ledger_dir, project_id)
        ensure_private_dir(self.ledger_dir, "the release ledger (TRE_LEDGER_DIR)")
        for table in tables:
            write_ledger_table(central, table)
        if central.is_dir():
            central.chmod(0o700)
        write_mirror(self.project_dir(project_id), tables)
