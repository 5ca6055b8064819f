"""`tre synth`: synthetic national register deliveries, for tests, demos and benchmarks.

Synthetic data need no TRE user and no metadata store: every ID number is a synthetic one
(month + 80) that can never be a real person's.
"""

from __future__ import annotations

from contextlib import nullcontext
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from tre.cli.framework import arg, command
from tre.synth import FORMATS, DirtKind, Summary, generate
from tre.synth.generation import CHUNK

HEADINGS = {
    "bad_check_digits": "check digit",
    "unknown_fnr": "unknown FNR",
    "duplicate": "duplicate",
    "after_death": "after death",
    "unknown_municipality": "unknown kommune",
}
PROGRESS_FROM = CHUNK  # show a progress bar when the run has more than one chunk of persons


@command(
    "synth",
    help="generate synthetic national register deliveries (DSF, KUHR, IPLOS, NPR, SES, ...) with deliberate dirt",
    args=[
        arg("--persons", type=int, default=10_000, help="residents when the period begins (default 10 000)"),
        arg("--years", type=int, default=1, help="number of years, ending with --last-year (default 1)"),
        arg("--seed", type=int, default=1, help="the same seed gives byte-identical files (default 1)"),
        arg("--out", type=Path, help="output directory (default: $TRE_DELIVERIES_DIR); a previous output is replaced"),
        arg("--format", default="csv", metavar="FORMAT", help=f"{' or '.join(FORMATS)} (default csv)"),
        arg("--dirt-rate", type=float, default=0.001, help="share of rows per kind of dirt (default 0.001)"),
        arg("--last-year", type=int, default=2024, help="the last year delivered (default 2024)"),
    ],
    roles=None,
    needs_store=False,
)
def synth(ctx, args):
    out = args.out if args.out is not None else ctx.settings.deliveries_dir
    with _progress(ctx, args.persons) as report:
        summary = generate(
            out,
            persons=args.persons,
            years=args.years,
            seed=args.seed,
            format=args.format,
            dirt_rate=args.dirt_rate,
            last_year=args.last_year,
            progress=report,
        )
    ctx.emit(summary.to_dict(), lambda console: _print_summary(console, summary))


def _progress(ctx, persons: int):
    """A progress bar on stderr (a terminal) for runs of more than one chunk; else no callback."""
    terminal = getattr(ctx.stderr, "isatty", lambda: False)()
    if not terminal or not isinstance(persons, int) or persons <= PROGRESS_FROM:
        return nullcontext(None)
    progress = Progress(
        TextColumn("synthetic registers"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("chunks"),
        TimeElapsedColumn(),
        console=Console(file=ctx.stderr),
        transient=True,
    )

    class _Bar:
        def __enter__(self):
            progress.start()
            self.task = progress.add_task("synth", total=None)
            return self.report

        def report(self, done: int, total: int) -> None:
            progress.update(self.task, completed=done, total=total)

        def __exit__(self, *exc):
            progress.stop()

    return _Bar()


def _print_summary(console: Console, summary: Summary) -> None:
    kinds = [k.value for k in DirtKind]
    table = Table(show_edge=False, header_style="bold", title="rows, and deliberately dirty rows by kind")
    table.add_column("file", no_wrap=True)
    table.add_column("rows", justify="right")
    for kind in kinds:
        table.add_column(HEADINGS[kind], justify="right")
    for f in summary.files:
        dirt = summary.dirt.get(f.file, {})
        table.add_row(f.file, f"{f.rows:,}", *(f"{dirt[k]:,}" if k in dirt else "" for k in kinds))
    console.print(table)
    dirty = sum(sum(d.values()) for d in summary.dirt.values())
    console.print(
        f"{len(summary.files)} deliveries, {summary.rows:,} rows ({dirty:,} deliberately dirty, listed in dirt.json) "
        f"for {summary.persons:,} residents ({summary.registered:,} registered at some time) "
        f"{summary.first_year}-{summary.last_year}, seed {summary.seed}, written to {summary.out_dir} "
        f"in {summary.seconds:.1f} s"
    )
