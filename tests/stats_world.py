"""TRE installations for the statistics tests: a fresh one, and a small synthetic nation
(tre synth) ingested and published as statistics."""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

from conftest import CLI

from tre.config import load_settings

PERSONS, YEARS, SEED = 1500, 2, 5
NOW = dt.datetime(2025, 3, 1, 12, tzinfo=dt.UTC)


def fresh_cli(base: Path) -> CLI:
    """A new TRE installation under `base` with its store and one admin, `ada`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRE_")}
    env.update(
        TRE_HOME=str(base / "home"), TRE_PROJECTS_DIR=str(base / "projects"), TRE_APPROVALS_DIR=str(base / "approvals")
    )
    cli = CLI(env)
    cli.ok("init")
    cli.ok("user", "add", "ada", "--role", "admin")
    cli.settings = load_settings(env)
    return cli


def make_world(base: Path) -> CLI:
    """A new installation, synthetic registers for 2023-2024 ingested; statistics built (run 1),
    the site and the feedback written."""
    cli = fresh_cli(base)
    deliveries = base / "deliveries"
    cli.ok("synth", "--persons", str(PERSONS), "--years", str(YEARS), "--seed", str(SEED), "--out", str(deliveries))
    cli.ok("ingest", str(deliveries), as_user="ada", clock=lambda: NOW)
    cli.first_build = cli.ok("stats", "build", "--json", as_user="ada", clock=lambda: NOW).json()
    cli.ok("stats", "site", as_user="ada")
    cli.ok("stats", "feedback", as_user="ada", clock=lambda: NOW)
    cli.deliveries = deliveries
    return cli
