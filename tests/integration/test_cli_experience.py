"""The CLI as an administrator meets it (issue 18): a quick `--help`, progress and a summary for
long commands and silence under --json, the audit log a page at a time, and errors that say
what is wrong in plain words."""

from __future__ import annotations

import contextlib
import io
import json
import re
import subprocess
import sys

import pandas as pd
import pytest
from delivery_factory import people, row, write_delivery

from tre.cli import main

HEAVY = ("sqlalchemy", "alembic", "pandas", "numpy", "duckdb", "scipy", "rich", "jupyterhub", "tornado", "statsmodels")


def test_help_imports_nothing_heavy():
    """`tre --help` (and a group's or a command's help) only parses: no database, data or UI
    library is loaded (benchmarks/cli.py measures the time)."""
    probe = (
        "import contextlib, io, sys\n"
        "from tre.cli import main\n"
        "for argv in (['--help'], ['request', '--help'], ['user', 'add', '--help'], ['audit', 'log', '--help']):\n"
        "    with contextlib.redirect_stdout(io.StringIO()), contextlib.suppress(SystemExit):\n"
        "        main(argv)\n"
        f"print(sorted({{m.split('.')[0] for m in sys.modules}} & {set(HEAVY)!r}))\n"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def _parsers():
    """Every command's parser, with the options it has."""
    from tre.cli import COMMAND_MODULES
    from tre.cli.framework import build_parser

    for module in COMMAND_MODULES:
        __import__(module)
    top = build_parser()
    for group in top._subparsers._group_actions[0].choices.values():
        actions = getattr(group, "_subparsers", None)
        if actions is None:
            yield group.prog, group
            continue
        for sub in actions._group_actions[0].choices.values():
            yield sub.prog, sub


def test_help_texts_name_only_options_that_exist():
    mentioned = re.compile(r"(?<![\w-])(--[a-z][a-z0-9-]*)")
    wrong = []
    for prog, parser in _parsers():
        options = {s for a in parser._actions for s in a.option_strings}
        for text in [parser.description or "", *(a.help or "" for a in parser._actions)]:
            # Options of another command are named with it, in backticks: `tre request exception ...`.
            own = re.sub(r"`tre [^`]*`", "", text)
            wrong += [f"{prog}: {o}" for o in mentioned.findall(own) if o not in options]
    assert wrong == []


def test_demo_help_names_the_demo_defaults(cli):
    from tre.demo import DemoOptions

    out = io.StringIO()
    with contextlib.redirect_stdout(out), pytest.raises(SystemExit):
        main(["demo", "--help"])
    text = " ".join(out.getvalue().split())
    options = DemoOptions()
    assert f"(default {options.persons:,})".replace(",", " ") in text
    assert f"(default {options.years})" in text and f"(default {options.seed})" in text


def test_unknown_names_are_errors_that_suggest(initialised):
    cli = initialised
    cli.ok("user", "add", "reidar", "--role", "researcher", as_user="ada")
    typo = cli("user", "list", as_user="reidr")
    assert (
        typo.code == 5 and typo.err == "tre: tre user list refused: 'reidr' is not a TRE user; did you mean reidar?\n"
    )
    far = cli("user", "list", as_user="zzzzzz")
    assert far.code == 5 and "did you mean" not in far.err
    revoke = cli("user", "revoke", "reidr", "--role", "researcher", as_user="ada")
    assert revoke.code == 6 and "unknown user 'reidr'; did you mean reidar?" in revoke.err

    nosuch = cli("project", "status", "nosuch", as_user="ada")
    assert nosuch.code == 6 and nosuch.out == ""
    assert nosuch.err.startswith("tre: unknown project 'nosuch'")
    from factories import make_project

    from tre.config import load_settings
    from tre.db import Store

    with Store(load_settings(cli.environ).db_url).transaction() as session:
        make_project(session, "diabetes")
    near = cli("project", "status", "diabetis", as_user="ada")
    assert near.code == 6 and "did you mean diabetes?" in near.err
    assert cli.ok("project", "status", "diabetes", "--json", as_user="ada").json()[0]["project"] == "diabetes"


@pytest.mark.parametrize(
    "name, make, words",
    [
        ("t.parquet", lambda p: pd.DataFrame({"a": ["x"], "n": [7]}).to_parquet(p), "is a Parquet file, not CSV"),
        ("t.xlsx", lambda p: p.write_bytes(b"PK\x03\x04" + bytes(200)), "is a zip archive (or an Office document)"),
        ("t.json", lambda p: p.write_text('{"a": {"0": "x"}, "n": {"0": 7}}'), "is JSON, not CSV"),
        ("t.bin", lambda p: p.write_bytes(bytes(range(256)) * 4), "not CSV"),
        ("t.csv", lambda p: p.write_text("a,n\nx,7\ny,8,9\n"), "line 3 has 3 fields where the header has 2"),
        ("t.csv", lambda p: p.write_text(""), "is empty"),
    ],
)
def test_check_table_says_what_a_file_is_when_it_is_not_csv(cli, tmp_path, name, make, words):
    path = tmp_path / name
    make(path)
    result = cli("check", "table", str(path), "--count-column", "n")
    assert result.code == 2 and words in result.err
    assert "reads CSV" in result.err or "CSV:" in result.err
    assert len(result.err.strip().splitlines()) == 1 and "Traceback" not in result.err


def test_the_audit_log_pages_newest_first_and_filters(initialised, tmp_path):
    from factories import make_project, make_request, make_user

    from tre.config import load_settings
    from tre.db import Store
    from tre.enums import Role

    cli = initialised
    for name in ("rita", "olav", "nils"):
        cli.ok("user", "add", name, "--role", "researcher", as_user="ada")
    with Store(load_settings(cli.environ).db_url).transaction() as session:
        project = make_project(session, "alpha")
        make_request(session, project, make_user(session, "kari", Role.RESEARCHER))
    cli.ok("project", "provision", "alpha", as_user="ada")
    cli.ok("project", "lock", "alpha", "--reason", "audit finding", as_user="ada")
    cli("user", "list", as_user="rita")  # a refusal

    everything = cli.ok("audit", "log", "--json", as_user="ada").json()
    seqs = [e["seq"] for e in everything]
    assert seqs == sorted(seqs, reverse=True)
    assert [e["seq"] for e in cli.ok("audit", "log", "--oldest-first", "--json", as_user="ada").json()] == seqs[::-1]
    newest = cli.ok("audit", "log", "--limit", "2", "--json", as_user="ada").json()
    assert [e["seq"] for e in newest] == seqs[:2]
    page = cli.ok("audit", "log", "--limit", "2", as_user="ada").out
    assert f"2 of {len(seqs)} matching events; the next page: --before {seqs[1]}" in page
    second = cli.ok("audit", "log", "--limit", "2", "--before", str(seqs[1]), "--json", as_user="ada").json()
    assert [e["seq"] for e in second] == seqs[2:4]

    by_rita = cli.ok("audit", "log", "--user", "rita", "--json", as_user="ada").json()
    assert {(e["actor"], e["action"]) for e in by_rita} == {("ada", "user.add"), ("rita", "access.denied")}
    about_alpha = cli.ok("audit", "log", "--project", "alpha", "--json", as_user="ada").json()
    assert [e["action"] for e in about_alpha] == ["project.lock", "project.provision"]
    assert cli.ok("audit", "log", "--project", "alph", "--json", as_user="ada").json() == []
    assert cli.ok("audit", "log", "--since", "1h", "--json", as_user="ada").json() == everything
    assert cli.ok("audit", "log", "--since", "2999-01-01", "--json", as_user="ada").json() == []
    assert "no events match" in cli.ok("audit", "log", "--person", "no-such-pid", as_user="ada").out
    bad = cli("audit", "log", "--since", "3 weeks", as_user="ada")
    assert bad.code == 2 and "an age (30m, 12h, 7d)" in bad.err


class Terminal(io.StringIO):
    def isatty(self):
        return True


def test_long_commands_show_progress_on_a_terminal_and_stay_quiet_under_json(initialised, tmp_path):
    deliveries = tmp_path / "deliveries"
    persons = people(30)
    write_delivery(deliveries, "dsf", [row("dsf", p) for p in persons])
    write_delivery(deliveries, "kuhr", [row("kuhr", p) for p in persons])
    out, err = io.StringIO(), Terminal()
    code = main(["ingest", str(deliveries), "--as", "ada"], environ=initialised.environ, stdout=out, stderr=err)
    assert code == 0
    drawn = err.getvalue()
    assert "ingest" in drawn and "\x1b[" in drawn  # a bar, drawn with terminal codes
    assert "kuhr-2023.csv: delivery" in out.getvalue()  # the summary, one line per delivery

    # Not on a terminal: the steps are log lines on stderr; under --json nothing but the JSON.
    write_delivery(deliveries, "kuhr", [row("kuhr", p) for p in persons], period="2024")
    logged = initialised("ingest", str(deliveries / "kuhr-2024.csv"), as_user="ada")
    assert "kuhr-2024.csv:" in logged.err and "\x1b[" not in logged.err
    quiet = initialised("synth", "--persons", "200", "--out", str(tmp_path / "s"), "--json")
    assert quiet.code == 0 and quiet.err == "" and json.loads(quiet.out)["persons"] == 200
