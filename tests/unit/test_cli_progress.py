"""Progress of long commands (tre.cli.progress): a bar on a terminal that follows the steps a
domain module names, log lines off a terminal, nothing under --json."""

import io
import re

from tre.cli.framework import COMMANDS, Context
from tre.cli.progress import progress
from tre.config import load_settings


class Terminal(io.StringIO):
    def isatty(self):
        return True


def _ctx(stderr, json=False, stdout=None):
    settings = load_settings({"TRE_HOME": "/nonexistent"})
    command = next(iter(COMMANDS.values())) if COMMANDS else None
    return Context(
        settings=settings, environ={}, command=command, json=json, stdout=stdout or io.StringIO(), stderr=stderr
    )


def test_a_terminal_gets_a_bar_that_follows_the_named_steps():
    err = Terminal()
    steps = ("cohort", "pseudonyms", "tables")
    with progress(_ctx(err), "extract of alpha", names=steps) as report:
        report("cohort")
        report("tables")
        assert report.done == 2
    drawn = re.sub(r"\x1b\[[0-9;?]*[a-zA-Z]", "", err.getvalue())
    assert "extract of alpha" in drawn and "0/3" in drawn and "3/3 0:00:00 tables" in drawn  # done at the end


def test_off_a_terminal_the_steps_are_lines_and_under_json_nothing():
    err = io.StringIO()
    with progress(_ctx(err), "ingest", names=["a.csv"]) as report:
        report("a.csv: read 10 rows")
    assert err.getvalue() == "a.csv: read 10 rows\n"
    quiet = Terminal()
    with progress(_ctx(quiet, json=True), "ingest") as report:
        report("a.csv: read 10 rows")
        report.update(1, 2)
    assert quiet.getvalue() == ""
    silent = io.StringIO()
    with progress(_ctx(silent), "synthetic registers", log_lines=False) as report:
        report.update(1, 4)
    assert silent.getvalue() == ""
