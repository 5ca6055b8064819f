"""Fixtures shared by every kind of test: an isolated TRE installation and a CLI runner."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from tre.cli import main
from tre.config import load_settings
from tre.db import Store

REPO = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent


@dataclass
class Result:
    code: int
    out: str
    err: str

    def json(self):
        return json.loads(self.out)


@pytest.fixture
def tre_env(tmp_path) -> dict:
    """Environment of a fresh TRE installation under tmp_path (nothing of the repo's var/)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRE_")}
    env["TRE_CLI_IDENTITY"] = "demo"  # who acts is asserted here, as in make demo (tre/identity.py)
    env["TRE_PROJECT_DISK_QUOTA"] = "0"  # no loop-mounted volumes unless a test wants them
    env.update(
        TRE_HOME=str(tmp_path / "home"),
        TRE_PROJECTS_DIR=str(tmp_path / "projects"),
        TRE_APPROVALS_DIR=str(tmp_path / "approvals"),
    )
    return env


class CLI:
    """Runs `tre` in-process, as a user would type it."""

    def __init__(self, environ: dict):
        self.environ = environ

    def __call__(self, *argv: str, as_user: str | None = None, clock=None) -> Result:
        argv = list(argv) + (["--as", as_user] if as_user else [])
        out, err = io.StringIO(), io.StringIO()
        code = main(argv, environ=self.environ, stdout=out, stderr=err, clock=clock)
        return Result(code, out.getvalue(), err.getvalue())

    def ok(self, *argv: str, as_user: str | None = None, clock=None) -> Result:
        result = self(*argv, as_user=as_user, clock=clock)
        assert result.code == 0, f"tre {' '.join(argv)} failed ({result.code}): {result.err}"
        return result

    def subprocess(self, *argv: str, input: str | None = None) -> Result:
        """Runs the installed `tre` console script in a child process."""
        proc = subprocess.run(
            [str(VENV_BIN / "tre"), *argv], env=self.environ, capture_output=True, text=True, input=input, timeout=300
        )
        return Result(proc.returncode, proc.stdout, proc.stderr)


@pytest.fixture
def cli(tre_env) -> CLI:
    return CLI(tre_env)


@pytest.fixture
def initialised(cli) -> CLI:
    """A TRE with its store created and one admin, `ada`."""
    cli.ok("init")
    cli.ok("user", "add", "ada", "--role", "admin")
    return cli


@pytest.fixture
def store(initialised, tre_env) -> Store:
    return Store(load_settings(tre_env).db_url)
