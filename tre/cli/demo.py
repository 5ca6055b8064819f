"""`tre demo`: the whole path on synthetic data."""

from __future__ import annotations

from tre import demo
from tre.cli.framework import arg, command, positive_int


@command(
    "demo",
    help="run the demo: synthetic registers through ingest, approvals, extracts, output checking and release",
    args=[
        arg(
            "--persons", type=positive_int, default=demo.DemoOptions.persons, help="persons in the synthetic population"
        ),
        arg("--years", type=positive_int, default=demo.DemoOptions.years, help="years of register data"),
        arg("--seed", type=int, default=demo.DemoOptions.seed, help="random seed of the synthetic data"),
        arg("--no-hub", action="store_true", help="do not start JupyterHub at the end"),
    ],
    roles=None,
    needs_store=False,
    json=False,
)
def run_demo(ctx, args):
    options = demo.DemoOptions(persons=args.persons, years=args.years, seed=args.seed, hub=not args.no_hub)
    console = ctx.console()
    state = demo.Demo(ctx.settings, ctx.store, options, say=lambda text: console.print(f"• {text}"), console=console)
    demo.run(state)
