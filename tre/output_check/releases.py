"""Release: what was reviewed leaves, as a bundle on the central side, and nothing else.

A release copies each output's leaving files from its central copy (never from the project)
into a staging folder on the central side, checks every copy against the sha256 fixed when it
was added, writes each output's redacted check record (`egress.build_check_record`), and a
manifest that hashes every file; then writes the same tree twice:

- `projects/<id>/released/REQ-<n>/`, where the differencing check of later outputs reads the
  released tables (written as root without following links: `tre.project_files`);
- the export bundle `$TRE_EXPORTS_DIR/<project>/REQ-<n>.zip`, the only path out of a project.

      REQ-<n>/manifest.json              tre-release-bundle/2 (see `build_manifest`)
      REQ-<n>/outputs/<output>/<file>    the published artefacts, as reviewed
      REQ-<n>/checks/<output>.json       the redacted check record (tre-check-record/1)

Never in it: the kernel's report.json and report.html, meta.json (it names the OS account),
evidence files, true values of hidden cells, unrounded values, units, intervals, contributors,
officers' comments. The zip is deterministic (entries sorted, stamped with the release time),
so its sha256, recorded with the release, identifies it; `verify_bundle` (`tre bundle verify`)
recomputes every hash of the manifest.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import secrets
import shutil
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from tre.config import ensure_private_dir
from tre.errors import InvalidTransition, UnsafeFile
from tre.output_check.egress import build_check_record
from tre.output_check.intake import WorkspaceOutputs
from tre.output_check.policies import ProjectInfo
from tre.output_check.reports import sha256_file
from tre.output_check.workflow import RequestState, file_decisions
from tre.project_files import Folder

BUNDLE_FORMAT = "tre-release-bundle/2"
RECORD_YEARS = 5  # § 4-10: the record of releases is kept at least five years
MANIFEST = "manifest.json"


@dataclass(frozen=True)
class ReleasedFiles:
    released_dir: Path
    bundle: Path
    bundle_sha256: str
    manifest: dict


def bundle_path(exports_dir: Path, project_id: str, label: str) -> Path:
    return Path(exports_dir) / project_id / f"{label}.zip"


def keep_until(released_at: dt.datetime, years: int = RECORD_YEARS) -> dt.date:
    day = released_at.date()
    try:
        return day.replace(year=day.year + years)
    except ValueError:  # 29 February
        return day.replace(year=day.year + years, day=28)


def build_manifest(
    request: RequestState,
    project: ProjectInfo,
    *,
    released_by: str,
    released_at: dt.datetime,
    record_id: int,
    records: dict[str, dict],
    files: list[dict],
) -> dict:
    """What the bundle is: the request, the approval it rests on, per output its files, its
    status and the summary of its check record, the author's context and who decided what;
    and `files`, every other file of the bundle with its path, sha256 and size. Fields are
    chosen one by one: officers' comments and the line of code that made an output stay central."""
    decisions = file_decisions(request)
    approval = project.approval
    parameters = {}
    outputs = []
    for f in request.files:
        record = records[f.name]
        params = record.get("parameters") or {}
        if params.get("version") is not None:
            parameters[f"{params['version']}/threshold={params.get('threshold')}"] = params
        outputs.append(
            {
                "name": f.name,
                "kind": f.kind,
                "sha256": f.sha256,
                "check_status": f.check_status,
                "summary": record["summary"],
                "parameters_version": params.get("version"),
                "check_record": f"checks/{f.name}.json",
                "context": {k: f.context.get(k, "") for k in ("population", "shows", "relation")},
                "made_by": {k: f.meta.get(k) for k in ("call", "created_at") if k in f.meta},
                "files": [
                    {
                        "name": c["name"],
                        "path": f"outputs/{f.name}/{c['name']}",
                        "sha256": c["sha256"],
                        "size": c["size"],
                    }
                    for c in f.contents
                ],
                "decision": str(decisions[f.name]),
                "votes": [
                    {
                        "reviewer": v.reviewer,
                        "decision": str(v.decision),
                        "overridden_check": v.override is not None,
                        "voted_at": _iso(v.voted_at),
                    }
                    for v in request.votes_on(f.name)
                ],
            }
        )
    return {
        "format": BUNDLE_FORMAT,
        "request": request.label,
        "round": request.round,
        "project": {"id": project.id, "title": project.title},
        "title": request.title,
        "author": request.author,
        "submitted_at": _iso(request.submitted_at),
        "released_at": _iso(released_at),
        "released_by": released_by,
        "release_record": record_id,
        "approval": None
        if approval is None
        else {
            "id": approval.id,
            "kind": approval.kind,
            "reference": approval.reference,
            "version": approval.version,
            "legal_basis": approval.legal_basis,
        },
        "reviews": [{"reviewer": r.reviewer, "submitted_at": _iso(r.submitted_at)} for r in request.submitted_reviews],
        "check_parameters": parameters,
        "outputs": outputs,
        "files": files,
    }


def stage_outputs(outputs: WorkspaceOutputs, request: RequestState, tree: Path) -> dict[str, dict]:
    """Copy every output's leaving files from its central copy into `tree/outputs/<output>/`,
    check each against its sha256, and write each check record to `tree/checks/<output>.json`;
    returns the records. Raises naming every file that differs (nothing is released then)."""
    problems = []
    records = {}
    (tree / "outputs").mkdir(parents=True)
    (tree / "checks").mkdir()
    for f in request.files:
        source_dir = outputs.leaving_dir(request.project_id, request.label, f.name)
        target_dir = tree / "outputs" / f.name
        target_dir.mkdir()
        try:
            source = Folder.open(source_dir, f"{f.name}")
        except UnsafeFile:
            problems.append(f"the central copy of {f.name} is missing")
            continue
        with source, Folder.open(target_dir, "") as target:
            for entry in f.contents:
                try:
                    copied = source.copy_file(entry["name"], target, max(outputs.file_limit, entry["size"]))
                except UnsafeFile as e:
                    problems.append(f"{f.name}/{entry['name']} {e.rule}")
                    continue
                if copied["sha256"] != entry["sha256"]:
                    problems.append(f"{f.name}/{entry['name']} changed after it was reviewed (sha256 differs)")
        records[f.name] = build_check_record(f.name, f.report)
        (tree / "checks" / f"{f.name}.json").write_text(_dump(records[f.name]), encoding="utf-8")
    if problems:
        raise InvalidTransition(
            f"cannot release {request.label}: the files are not the reviewed files: {'; '.join(problems)}; "
            "return the request to its author (`tre review return`)"
        )
    return records


def list_tree(tree: Path) -> list[dict]:
    """Every file below `tree` but the manifest, with its path, sha256 and size."""
    return [
        {"path": p.relative_to(tree).as_posix(), "sha256": sha256_file(p), "size": p.stat().st_size}
        for p in sorted(tree.rglob("*"))
        if p.is_file() and p.relative_to(tree).as_posix() != MANIFEST
    ]


def write_release(
    tree: Path, label: str, manifest: dict, *, project_root: Path, bundle: Path, released_at: dt.datetime
) -> ReleasedFiles:
    """From the checked tree: its manifest, the released folder in the project and the bundle,
    each written under a temporary name and renamed into place."""
    (tree / MANIFEST).write_text(_dump(manifest), encoding="utf-8")
    released_dir = _write_released(tree, label, project_root)
    ensure_private_dir(bundle.parent, "the exports directory (TRE_EXPORTS_DIR)")
    partial = bundle.with_name(f".{bundle.name}.partial")
    try:
        _write_zip(partial, tree, label, released_at)
        os.replace(partial, bundle)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    bundle.chmod(0o600)
    return ReleasedFiles(released_dir, bundle, sha256_file(bundle), manifest)


def _write_released(tree: Path, label: str, project_root: Path) -> Path:
    """`released/<label>/` in the project: the tree, written as new files below a folder
    opened without following links, then renamed into place."""
    building = f".{label}.{secrets.token_hex(4)}"
    with Folder.open(project_root, "") as root, root.folder("released", create=0o750) as released:
        try:
            with released.make_folder(building, 0o755) as target:
                _copy_tree(tree, target)
            if released.exists(label):
                released.remove_tree(label)  # left by a release that failed before it was recorded
            released.rename(building, label)
        except BaseException:
            released.remove_tree(building)
            raise
    return project_root / "released" / label


def _copy_tree(source: Path, target: Folder) -> None:
    for path in sorted(source.iterdir()):
        if path.is_dir():
            with target.make_folder(path.name, 0o755) as sub:
                _copy_tree(path, sub)
        else:
            target.write_new(path.name, path.read_bytes(), 0o644)


def read_manifest(bundle: Path, label: str) -> dict:
    with zipfile.ZipFile(bundle) as z:
        return json.loads(z.read(f"{label}/{MANIFEST}"))


def _write_zip(path: Path, tree: Path, label: str, released_at: dt.datetime) -> None:
    stamp = released_at.astimezone(dt.UTC).timetuple()[:6]
    entries = sorted(p for p in tree.rglob("*") if p.is_file())
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as z:
        for p in entries:
            info = zipfile.ZipInfo(f"{label}/{p.relative_to(tree).as_posix()}", date_time=stamp)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            z.writestr(info, p.read_bytes())


def stage_dir(exports_dir: Path, project_id: str, label: str) -> Path:
    """A fresh private staging folder for one release, on the central side."""
    ensure_private_dir(Path(exports_dir), "the exports directory (TRE_EXPORTS_DIR)")
    root = ensure_private_dir(Path(exports_dir) / ".staging", "the exports directory (TRE_EXPORTS_DIR)")
    return Path(tempfile.mkdtemp(prefix=f"{project_id}-{label}-", dir=root))


def remove_stage(staging: Path) -> None:
    shutil.rmtree(staging, ignore_errors=True)


# --- checking a bundle ------------------------------------------------------------------------


def verify_bundle(path: Path) -> tuple[dict | None, list[str]]:
    """Recompute every hash of a bundle's manifest: (the manifest, one line per problem).

    Problems: a file of the manifest missing, or with another sha256 or size; a file in the
    bundle that the manifest does not list; an entry outside the request's folder."""
    try:
        bundle = zipfile.ZipFile(path)
    except (OSError, zipfile.BadZipFile) as e:
        return None, [f"{Path(path).name} is not a readable zip file ({e.__class__.__name__})"]
    with bundle:
        names = bundle.namelist()
        manifests = [n for n in names if n.count("/") == 1 and n.endswith(f"/{MANIFEST}")]
        if len(manifests) != 1:
            return None, [f"{Path(path).name} has {len(manifests)} manifests at its top, not one"]
        label = manifests[0].split("/")[0]
        try:
            manifest = json.loads(bundle.read(manifests[0]))
        except (ValueError, UnicodeDecodeError):
            return None, [f"{label}/{MANIFEST} is not JSON"]
        if not isinstance(manifest, dict) or manifest.get("format") != BUNDLE_FORMAT:
            return None, [f"{label}/{MANIFEST} is not a {BUNDLE_FORMAT} manifest"]
        problems = []
        listed = {}
        for entry in manifest.get("files") or []:
            listed[f"{label}/{entry.get('path')}"] = entry
        for output in manifest.get("outputs") or []:
            for f in output.get("files") or []:
                if f"{label}/{f.get('path')}" not in listed:
                    problems.append(f"{label}/{f.get('path')}: listed for output {output.get('name')} but not hashed")
        for name in names:
            parts = PurePosixPath(name).parts
            if name.startswith("/") or ".." in parts or not name.startswith(f"{label}/"):
                problems.append(f"{name}: outside the request's folder {label}/")
            elif name != manifests[0] and name not in listed and not name.endswith("/"):
                problems.append(f"{name}: in the bundle but not in its manifest")
        for name, entry in listed.items():
            if name not in names:
                problems.append(f"{name}: in the manifest but missing from the bundle")
                continue
            data = bundle.read(name)
            if hashlib.sha256(data).hexdigest() != entry.get("sha256"):
                problems.append(f"{name}: sha256 differs from the manifest")
            elif len(data) != entry.get("size"):
                problems.append(f"{name}: size {len(data)} differs from the manifest ({entry.get('size')})")
    return manifest, problems


def _dump(value) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False, default=str) + "\n"


def _iso(moment: dt.datetime | None) -> str | None:
    return None if moment is None else moment.astimezone(dt.UTC).isoformat(timespec="seconds")
