"""`tre demo`: the whole path on synthetic data."""

from __future__ import annotations

from tre.cli.framework import arg, command, positive_int
from tre.cli.progress import progress


@command(
    "demo",
    help="run the demo: synthetic registers through ingest, approvals, extracts, output checking and release",
    args=[
        arg("--persons", type=positive_int, help="persons in the synthetic population (default 20 000)"),
        arg("--years", type=positive_int, help="years of register data (default 2)"),
        arg("--seed", type=int, help="random seed of the synthetic data (default 2024)"),
        arg("--no-hub", action="store_true", help="do not start JupyterHub at the end"),
    ],
    roles=None,
    needs_store=False,
    json=False,
)
def run_demo(ctx, args):
    from tre import demo

    given = {k: getattr(args, k) for k in ("persons", "years", "seed") if getattr(args, k) is not None}
    options = demo.DemoOptions(**given, hub=not args.no_hub)
    console = ctx.console()
    # The bar is drawn on the console the demo narrates to: its lines print above it, and the
    # last of them (where the statistics site is) stays the last line.
    with progress(ctx, "demo", total=len(demo.STEPS), unit="steps", console=console, log_lines=False) as report:
        state = demo.Demo(
            ctx.settings, ctx.store, options, say=lambda text: console.print(f"• {text}"), console=console
        )
        demo.run(state, progress=report.update)
