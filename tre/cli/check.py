"""`tre check ...`: check a table, a notebook or any output for disclosure risk.

`tre check table` is a pure check of a file the caller has: no TRE user, no store. The
`--project` forms read the project's pseudonyms from its extract, so they need a known user.
A check that fails prints its report and exits with the DisclosureRisk code (10).
"""

from __future__ import annotations

import re
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from tre.cli.framework import ANY_ROLE, LazyChoices, arg, command, group, table
from tre.errors import DisclosureRisk, NotFound, UsageError

if TYPE_CHECKING:
    from tre.output_check.reports import Report

group("check", "check outputs for disclosure risk before they leave a project")

STATISTICS = ("count", "sum", "mean", "median", "min", "max")
PROJECT_ARGS = (
    arg(
        "--project",
        required=True,
        metavar="ID",
        help="the project the output comes from (its pseudonyms must not leak)",
    ),
    arg("--threshold", type=int, metavar="N", help="the minimum count (default from parameters.toml)"),
    arg("--html", type=Path, metavar="FILE", help="also write the HTML report here"),
)


@command(
    "check table",
    help="check a table of cells in long form (one column per dimension plus the count column)",
    args=[
        arg("file", metavar="FILE.csv", type=Path, help="interior cells, one row per cell (or per contributor)"),
        arg("--count-column", required=True, metavar="COL", help="the column of counts (units per row)"),
        arg("--value-column", metavar="COL", help="a magnitude table: the contributors' values"),
        arg("--statistic", choices=STATISTICS[1:], help="what a magnitude cell shows (default: sum)"),
        arg(
            "--denominator-column",
            metavar="COL",
            help="a rate table: the column of denominators (e.g. the population); each cell shows count / denominator, "
            "and both are checked",
        ),
        arg("--dimension", action="append", metavar="COL", help="a dimension (repeat; default: every other column)"),
        arg(
            "--threshold",
            type=int,
            metavar="N",
            help="the minimum count (default from parameters.toml; an approval may set another)",
        ),
        arg("--protect", action="store_true", help="apply remedies: suppression with margins, or --method"),
        arg(
            "--method",
            choices=LazyChoices("tre.output_check.assessments", "METHODS"),
            metavar="METHOD",
            help="with --protect: suppress (default), merge, round, midpoint6",
        ),
        arg(
            "--merge-dimension",
            action="append",
            metavar="COL",
            help="with --method merge: merge along this dimension (repeat; default all)",
        ),
        arg(
            "--released",
            nargs="+",
            default=[],
            type=Path,
            metavar="FILE.csv",
            help="tables released earlier, for the differencing check",
        ),
        arg("--html", type=Path, metavar="FILE", help="also write the HTML report here"),
    ],
    roles=None,
    needs_store=False,
)
def check_table(ctx, args):
    from tre.output_check import build_table, build_table_report, load_parameters
    from tre.output_check.reports import input_record
    from tre.output_check.sources import read_csv, read_released_file

    params = load_parameters(threshold=args.threshold)
    if args.method and not args.protect:
        raise UsageError("--method needs --protect")
    records = _read(read_csv, check_csv(args.file))
    used = {args.count_column, args.value_column, args.denominator_column} - {None}
    dimensions = args.dimension or [c for c in records.columns if c not in used]
    released = [_read(read_released_file, check_csv(p), value_column=args.count_column) for p in args.released]
    tab = build_table(
        records,
        dimensions,
        count=args.count_column,
        value=args.value_column,
        statistic=args.statistic,
        denominator=args.denominator_column,
        top_n=params.nk_n,
    )
    report = build_table_report(
        tab,
        params,
        method=(args.method or "suppress") if args.protect else None,
        merge_dimensions=args.merge_dimension,
        released=released,
        inputs=[input_record(args.file)] + [input_record(p) for p in args.released],
        now=ctx.now(),
    )
    _finish(ctx, report, args.html, f"Table {args.file.name}")


@command(
    "check notebook",
    help="check every output of a notebook (tables, text, images) for a project",
    args=[arg("file", metavar="FILE.ipynb", type=Path), *PROJECT_ARGS],
    roles=ANY_ROLE,
)
def check_notebook(ctx, args):
    from tre.output_check.notebooks import build_notebook_report, render_notebook_report_html
    from tre.output_check.queue import queue_dir

    params, project_dir, pseudonyms = _project_context(ctx, args)
    report = build_notebook_report(args.file, params, pseudonyms, queue_dir=queue_dir(project_dir), now=ctx.now())
    if args.html:
        args.html.write_text(render_notebook_report_html(report, args.file, pseudonyms), encoding="utf-8")
    _finish(ctx, report, None, f"Notebook {args.file.name}")


@command(
    "check output",
    help="check one output for a project: a queued output directory, a notebook, a CSV, an image or a text file",
    args=[arg("path", metavar="PATH", type=Path), *PROJECT_ARGS],
    roles=ANY_ROLE,
)
def check_output(ctx, args):
    from tre.output_check.intake import copy_output_folder, recheck_copy
    from tre.output_check.ledger_store import project_ledger_dir, read_ledger
    from tre.output_check.notebooks import build_file_report, build_notebook_report
    from tre.output_check.queue import queue_dir
    from tre.output_check.sources import read_released_tables
    from tre.project_files import Folder

    params, project_dir, pseudonyms = _project_context(ctx, args)
    path = args.path
    if path.is_dir():
        ledger = read_ledger(project_ledger_dir(ctx.settings.ledger_dir, args.project))
        released, skipped = read_released_tables(project_dir / "released")
        released = [t for t in released if t.name not in {e.name for e in ledger if e.audited}]
        with tempfile.TemporaryDirectory(prefix="tre-check-") as copy:
            # A queued output is the project's to write: read it as intake does (no links,
            # no FIFOs, sizes from fstat), then check the copy as intake does: recomputed centrally.
            with Folder.open(path, path.name) as source, Folder.open(Path(copy), "") as dest:
                copy_output_folder(source, dest, ctx.settings.output_file_limit, ctx.settings.output_evidence_limit)
            meta = _read_meta(Path(copy), path)
            report = recheck_copy(
                Path(copy), meta, params, released, pseudonyms=pseudonyms, now=ctx.now(), ledger=ledger
            )
        report.details["released_not_compared"] = skipped
    elif path.suffix.lower() == ".ipynb":
        report = build_notebook_report(path, params, pseudonyms, queue_dir=queue_dir(project_dir), now=ctx.now())
    elif path.exists():
        report = build_file_report(path, params, pseudonyms, now=ctx.now())
    else:
        raise NotFound(f"no such file or directory: {path}")
    _finish(ctx, report, args.html, f"Output {path.name}")


def _read_meta(copy: Path, path: Path) -> dict:
    """The meta.json of a queued output's copy (`path`: the folder it was copied from, for messages)."""
    import json

    from tre.errors import UserError

    try:
        meta = json.loads((copy / "meta.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        raise UserError(f"{path} is not a queued output (it needs meta.json): queue it with tre.safe") from None
    if not isinstance(meta, dict):
        raise UserError(f"{path}/meta.json is not a queued output's meta")
    return meta


def check_csv(path: Path) -> Path:
    """`path` if it looks like CSV text; else a UsageError that says, in plain words, what the
    file is and what `tre check table` reads."""
    from tre.output_check.egress import what_it_is

    wanted = "`tre check table` reads CSV: comma-separated text with a header row"
    try:
        with open(path, "rb") as f:
            head = f.read(64 * 1024)
    except FileNotFoundError:
        raise NotFound(f"no such file: {path}") from None
    except IsADirectoryError:
        raise UsageError(f"{path} is a folder, not a CSV file: {wanted}") from None
    really = what_it_is(head)
    if really == "a Parquet file":
        raise UsageError(f"{path.name} is a Parquet file, not CSV: {wanted} (pandas: `df.to_csv(path, index=False)`)")
    if really is not None:
        raise UsageError(f"{path.name} is {really}, not CSV: {wanted}")
    try:
        text = head.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        if len(head) - e.start > 4:  # not only a character cut at the end of what was read
            raise UsageError(f"{path.name} is not UTF-8 text, so not CSV: {wanted}") from None
        text = head[: e.start].decode("utf-8-sig")
    if "\x00" in text:
        raise UsageError(f"{path.name} holds binary data, not CSV: {wanted}")
    if text.lstrip()[:1] in ("{", "["):
        raise UsageError(f"{path.name} is JSON, not CSV: {wanted} (pandas: `df.to_csv(path, index=False)`)")
    if not text.strip():
        raise UsageError(f"{path.name} is empty: {wanted}")
    return path


def _read(reader, path: Path, **options):
    """`reader(path)`, with pandas' word for a ragged CSV put in plain words."""
    from tre.output_check.tables import TableError

    try:
        return reader(path, **options)
    except TableError as e:
        ragged = re.search(r"Expected (\d+) fields in line (\d+), saw (\d+)", str(e))
        if ragged is None:
            raise
        header, line, fields = ragged.groups()
        raise UsageError(
            f"{path.name} is not a table in CSV: line {line} has {fields} fields where the header has {header} "
            "(a value with a comma needs quotes)"
        ) from None


def _project_context(ctx, args):
    """The parameters, the project's folder and its extract's pseudonyms, for a --project check."""
    from tre.models import Project
    from tre.output_check import load_parameters
    from tre.output_check.sources import extract_path, read_pseudonyms
    from tre.workspace import disclosure_threshold

    with ctx.store.transaction() as session:
        if session.get(Project, args.project) is None:
            raise NotFound(f"no project {args.project!r}: see the approvals for the projects that exist")
        central = disclosure_threshold(session, args.project)
    if args.threshold is not None and central is not None and args.threshold < central:
        raise UsageError(
            f"project {args.project} checks outputs with threshold {central} (its approval): "
            f"--threshold {args.threshold} cannot go below it"
        )
    params = load_parameters(threshold=args.threshold if args.threshold is not None else central)
    pseudonyms = read_pseudonyms(extract_path(ctx.settings.projects_dir, args.project))
    return params, ctx.settings.projects_dir / args.project, pseudonyms


def _finish(ctx, report: Report, html_path: Path | None, title: str) -> None:
    from tre.output_check import Status
    from tre.output_check.reports import render_html

    data = report.as_dict()
    if html_path:
        html_path.write_text(render_html(report, title), encoding="utf-8")
    flagged = [c for c in data.get("cells", []) if c["status"] != "ok" or c["checks"]]
    ctx.emit(
        data,
        lambda console: _print(console, data, flagged),
    )
    if report.status == Status.FAIL:
        raise DisclosureRisk(f"check failed: {data['summary'][len('fail: ') :]}")


def _print(console, data, flagged) -> None:
    console.print(data["summary"])
    if flagged:
        rows = [
            [
                ", ".join(f"{k}={v}" for k, v in c["key"].items()),
                c["value"],
                c["published"],
                c["status"],
                ", ".join(c["checks"]),
            ]
            for c in flagged[:60]
        ]
        table(["cell", "true", "published", "status", "checks"], rows)(console)
        if len(flagged) > 60:
            console.print(f"... and {len(flagged) - 60} more cells")
    for output in data.get("outputs", []):
        if output["status"] != "pass":
            console.print(f"cell {output['cell']} ({output['type']}): {output['status']}")
