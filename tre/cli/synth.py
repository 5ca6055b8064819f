"""`tre synth`: synthetic national register deliveries, for tests, demos and benchmarks.

Synthetic data need no TRE user and no metadata store: every ID number is a synthetic one
(month + 80) that can never be a real person's.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from tre.cli.framework import arg, command
from tre.cli.progress import progress

if TYPE_CHECKING:
    from rich.console import Console

    from tre.synth import Summary

HEADINGS = {
    "bad_check_digits": "check digit",
    "unknown_fnr": "unknown FNR",
    "duplicate": "duplicate",
    "after_death": "after death",
    "unknown_municipality": "unknown kommune",
}


@command(
    "synth",
    help="generate synthetic national register deliveries (DSF, KUHR, IPLOS, NPR, SES, ...) with deliberate dirt",
    args=[
        arg("--persons", type=int, default=10_000, help="residents when the period begins (default 10 000)"),
        arg("--years", type=int, default=1, help="number of years, ending with --last-year (default 1)"),
        arg("--seed", type=int, default=1, help="the same seed gives byte-identical files (default 1)"),
        arg("--out", type=Path, help="output directory (default: $TRE_DELIVERIES_DIR); a previous output is replaced"),
        arg("--format", default="csv", metavar="FORMAT", help="csv or parquet (default csv)"),
        arg("--dirt-rate", type=float, default=0.001, help="share of rows per kind of dirt (default 0.001)"),
        arg("--last-year", type=int, default=2024, help="the last year delivered (default 2024)"),
    ],
    roles=None,
    needs_store=False,
)
def synth(ctx, args):
    from tre.synth import generate
    from tre.synth.generation import CHUNK

    out = args.out if args.out is not None else ctx.settings.deliveries_dir
    # One chunk is quick: a bar only when there is more than one.
    big = isinstance(args.persons, int) and args.persons > CHUNK
    with progress(ctx, "synthetic registers", unit="chunks", log_lines=False, show=big) as report:
        summary = generate(
            out,
            persons=args.persons,
            years=args.years,
            seed=args.seed,
            format=args.format,
            dirt_rate=args.dirt_rate,
            last_year=args.last_year,
            progress=report.update,
        )
    ctx.emit(summary.to_dict(), lambda console: _print_summary(console, summary))


def _print_summary(console: Console, summary: Summary) -> None:
    from rich.table import Table

    from tre.synth import DirtKind

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
