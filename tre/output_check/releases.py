"""Release: the reviewed bytes leave the project, as a bundle on the central side.

A release copies each output of an approved request out of the project's requests folder into
a staging folder on the central side, checks every copied file against the sha256 fixed at
submission, and only then writes:

- `projects/<id>/released/REQ-<n>/<output>/...`: the released files, in the layout the
  differencing check reads (`NAME.csv` + `NAME.csv.json`; the sidecar gains the release's name
  `REQ-<n>/<output>` and `release`, `request`, `released_at`), and `manifest.json`;
- the export bundle `$TRE_EXPORTS_DIR/<project>/REQ-<n>.zip`, the only path out of a project:

      REQ-<n>/manifest.json              tre-release-bundle/1 (see `build_manifest`)
      REQ-<n>/outputs/<output>/<file>    the files as reviewed (meta.json stays behind: it
                                         names the OS account that made the output)
      REQ-<n>/reports/<output>.json      the check report, with the re-check made at intake

The zip is deterministic (entries sorted, stamped with the release time), so its sha256,
recorded with the release, identifies it.
"""

from __future__ import annotations

import datetime as dt
import errno
import json
import os
import shutil
import stat
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from tre.config import ensure_private_dir
from tre.errors import InvalidTransition
from tre.output_check.intake import WorkspaceOutputs
from tre.output_check.policies import ProjectInfo
from tre.output_check.reports import sha256_file
from tre.output_check.sources import SIDECAR_FORMAT, SIDECAR_SUFFIX
from tre.output_check.workflow import RequestState, file_decisions

BUNDLE_FORMAT = "tre-release-bundle/1"
RECORD_YEARS = 5  # § 4-10: the record of releases is kept at least five years
LEFT_BEHIND = frozenset({"meta.json"})  # and every evidence.* file: central-only, it never leaves


def _left_behind(name: str) -> bool:
    return name in LEFT_BEHIND or name.startswith("evidence.")


@dataclass(frozen=True)
class ReleasedFiles:
    released_dir: Path
    bundle: Path
    bundle_sha256: str


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
) -> dict:
    """What the bundle is: the request, the approval it rests on, and per output its files with
    their sha256, its check status and report, the author's context, and every vote."""
    decisions = file_decisions(request)
    approval = project.approval
    parameters = {}
    outputs = []
    for f in request.files:
        params = f.report.get("parameters") or {}
        if params.get("version") is not None:
            parameters[f"{params['version']}/threshold={params.get('threshold')}"] = params
        outputs.append(
            {
                "name": f.name,
                "kind": f.kind,
                "sha256": f.sha256,
                "check_status": f.check_status,
                "summary": f.summary,
                "parameters_version": params.get("version"),
                "report": f"reports/{f.name}.json",
                "context": {k: f.context.get(k, "") for k in ("population", "shows", "relation")},
                "made_by": {k: f.meta.get(k) for k in ("call", "arguments", "created_at") if k in f.meta},
                "files": [
                    {**c, "path": f"outputs/{f.name}/{c['name']}"} for c in f.contents if not _left_behind(c["name"])
                ],
                "decision": str(decisions[f.name]),
                "votes": [
                    {
                        "reviewer": v.reviewer,
                        "decision": str(v.decision),
                        "comment": v.comment,
                        "override": v.override,
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
    }


def stage_outputs(outputs: WorkspaceOutputs, request: RequestState, staging: Path) -> None:
    """Copy every reviewed file out of the project and check it against its sha256; raise
    naming every file that differs from what was submitted (nothing is released then)."""
    problems = []
    for f in request.files:
        source = outputs.output_dir(request.project_id, request.label, f.name)
        for entry in f.contents:
            target = staging / f.name / entry["name"]
            target.parent.mkdir(parents=True, exist_ok=True)
            try:
                _copy_regular(source / entry["name"], target)
            except (FileNotFoundError, NotADirectoryError):
                problems.append(f"{f.name}/{entry['name']} is missing")
                continue
            except _NotRegular:
                problems.append(f"{f.name}/{entry['name']} is no longer a regular file")
                continue
            if sha256_file(target) != entry["sha256"]:
                problems.append(f"{f.name}/{entry['name']} changed after submission (sha256 differs)")
    if problems:
        raise InvalidTransition(
            f"cannot release {request.label}: the files on disk are not the reviewed files: {'; '.join(problems)}; "
            "return the request to its author (`tre review return`)"
        )


def write_release(
    staging: Path,
    request: RequestState,
    manifest: dict,
    *,
    released_root: Path,
    bundle: Path,
    released_at: dt.datetime,
) -> ReleasedFiles:
    """From the checked copies in `staging`: the released folder and the bundle, each written
    under a temporary name and renamed into place."""
    label = request.label
    released_dir = released_root / label
    released_root.mkdir(parents=True, exist_ok=True)
    building = Path(tempfile.mkdtemp(prefix=f".{label}.", dir=released_root))
    try:
        for f in request.files:
            for entry in f.contents:
                if _left_behind(entry["name"]):
                    continue
                target = building / f.name / entry["name"]
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(staging / f.name / entry["name"], target)
                if target.name.endswith(".csv" + SIDECAR_SUFFIX):
                    _mark_released(target, f"{label}/{f.name}", label, released_at)
        (building / "manifest.json").write_text(_dump(manifest), encoding="utf-8")
        for path in [building, *building.rglob("*")]:
            path.chmod(0o755 if path.is_dir() else 0o644)
        if released_dir.exists():
            shutil.rmtree(released_dir)  # left by a release that failed before it was recorded
        os.rename(building, released_dir)
    except BaseException:
        shutil.rmtree(building, ignore_errors=True)
        raise
    ensure_private_dir(bundle.parent, "the exports directory (TRE_EXPORTS_DIR)")
    partial = bundle.with_name(f".{bundle.name}.partial")
    try:
        _write_zip(partial, staging, request, manifest, released_at)
        os.replace(partial, bundle)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    bundle.chmod(0o600)
    return ReleasedFiles(released_dir, bundle, sha256_file(bundle))


def read_manifest(bundle: Path, label: str) -> dict:
    with zipfile.ZipFile(bundle) as z:
        return json.loads(z.read(f"{label}/manifest.json"))


def _write_zip(path: Path, staging: Path, request: RequestState, manifest: dict, released_at: dt.datetime) -> None:
    stamp = released_at.astimezone(dt.UTC).timetuple()[:6]
    label = request.label
    entries: dict[str, bytes | Path] = {f"{label}/manifest.json": _dump(manifest).encode("utf-8")}
    for f in request.files:
        entries[f"{label}/reports/{f.name}.json"] = _dump(f.report).encode("utf-8")
        for entry in f.contents:
            if not _left_behind(entry["name"]):
                entries[f"{label}/outputs/{f.name}/{entry['name']}"] = staging / f.name / entry["name"]
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as z:
        for name in sorted(entries):
            info = zipfile.ZipInfo(name, date_time=stamp)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            value = entries[name]
            z.writestr(info, value if isinstance(value, bytes) else value.read_bytes())


def _mark_released(sidecar: Path, name: str, label: str, released_at: dt.datetime) -> None:
    meta = json.loads(sidecar.read_text(encoding="utf-8"))
    if meta.get("format") != SIDECAR_FORMAT:
        return
    meta.update(name=name, release=label, request=label, released_at=_iso(released_at))
    sidecar.write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")


class _NotRegular(Exception):
    pass


def _copy_regular(source: Path, target: Path) -> None:
    """Copy a regular file without following a symlink at its last component."""
    try:
        fd = os.open(source, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError as e:
        if e.errno == errno.ELOOP:  # the name is a symlink
            raise _NotRegular(source) from None
        raise
    with os.fdopen(fd, "rb") as src:
        if not stat.S_ISREG(os.fstat(src.fileno()).st_mode):
            raise _NotRegular(source)
        with open(target, "wb") as dst:
            shutil.copyfileobj(src, dst, 1 << 20)


def _dump(value) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False, default=str) + "\n"


def _iso(moment: dt.datetime | None) -> str | None:
    return None if moment is None else moment.astimezone(dt.UTC).isoformat(timespec="seconds")
