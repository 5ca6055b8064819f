"""`tre synth` from the command line: no user or store needed, one-line errors, nothing half-written."""

from __future__ import annotations

import json
import os
import pty
import subprocess
from pathlib import Path

import pytest
from conftest import VENV_BIN

from tre.registers import Manifest
from tre.synth import GROUND_TRUTH, generate


def _leftovers(parent: Path) -> list[str]:
    return sorted(p.name for p in parent.iterdir() if p.name.startswith("."))


def test_runs_as_a_process_without_a_tre_user_or_store(cli, tmp_path, tre_env):
    out = tmp_path / "deliveries"
    result = cli.subprocess("synth", "--persons", "800", "--years", "2", "--seed", "5", "--out", str(out))
    assert result.code == 0, result.err
    assert "kuhr-2024.csv" in result.out and "deliveries," in result.out and "seed 5" in result.out
    assert result.err == ""
    assert (out / GROUND_TRUTH).is_file() and (out / "dsf-2023.csv").is_file()
    assert not Path(tre_env["TRE_HOME"]).exists()  # no store, no state directory


def test_json_summary_matches_the_files(cli, tmp_path):
    out = tmp_path / "d"
    result = cli.ok(
        "synth", "--persons", "500", "--out", str(out), "--format", "parquet", "--last-year", "2020", "--json"
    )
    summary = result.json()
    assert summary["format"] == "parquet" and summary["first_year"] == summary["last_year"] == 2020
    for f in summary["files"]:
        manifest = Manifest.read(out / f["file"].replace(".parquet", ".manifest.json"))
        assert (manifest.rows, manifest.sha256) == (f["rows"], f["sha256"])
    assert summary["rows"] == sum(f["rows"] for f in summary["files"])
    assert set(summary["dirt"]) == {f["file"] for f in summary["files"]}


def test_default_output_is_the_deliveries_directory(cli, tre_env):
    cli.ok("synth", "--persons", "400")
    assert (Path(tre_env["TRE_HOME"]) / "deliveries" / "kuhr-2024.csv").is_file()


@pytest.mark.parametrize(
    "argv, expected",
    [
        (["--persons", "-5"], "--persons must be a whole number from 1"),
        (["--format", "xml"], "--format must be one of csv, parquet, got 'xml'"),
        (["--years", "0", "--dirt-rate", "2"], "--years must be a whole number from 1 to 30, got 0; --dirt-rate"),
        (["--last-year", "2050"], "--last-year must be from 2017 to 2039"),
        (["--persons", "ten"], "argument --persons: invalid int value: 'ten'"),
    ],
)
def test_bad_arguments_give_one_line_and_write_nothing(cli, tmp_path, argv, expected):
    out = tmp_path / "out"
    result = cli("synth", "--out", str(out), *argv)
    assert result.code == 2
    assert result.err.count("\n") == 1 and expected in result.err and "Traceback" not in result.err
    assert list(tmp_path.iterdir()) == []


def test_unwritable_or_foreign_output_is_refused(cli, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory\n")
    result = cli("synth", "--persons", "100", "--out", str(blocker / "out"))
    assert result.code != 0 and result.err.count("\n") == 1 and "--out" in result.err
    assert result.err.startswith("tre: ")
    foreign = tmp_path / "someone-elses"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me\n")
    result = cli("synth", "--persons", "100", "--out", str(foreign))
    assert result.code == 2 and "not a `tre synth` output" in result.err
    assert [p.name for p in foreign.iterdir()] == ["notes.txt"]
    # An earlier output with someone's notes added is not replaced either.
    earlier = tmp_path / "earlier"
    cli.ok("synth", "--persons", "100", "--out", str(earlier))
    (earlier / "notes.txt").write_text("keep me\n")
    result = cli("synth", "--persons", "100", "--out", str(earlier))
    assert result.code == 2 and (earlier / "notes.txt").is_file()
    assert _leftovers(tmp_path) == []


def test_a_new_run_replaces_an_earlier_one_whole(cli, tmp_path):
    out = tmp_path / "d"
    cli.ok("synth", "--persons", "300", "--years", "2", "--seed", "1", "--out", str(out))
    cli.ok("synth", "--persons", "300", "--years", "1", "--seed", "2", "--out", str(out))
    assert not (out / "kuhr-2023.csv").exists()  # nothing of the first run is left
    assert Manifest.read(out / "kuhr-2024.manifest.json").extra["seed"] == 2
    assert _leftovers(tmp_path) == []


def test_an_interrupted_run_leaves_the_earlier_output_untouched(tmp_path):
    out = tmp_path / "d"
    generate(out, persons=300, years=1, seed=1)
    before = {p.name: p.read_bytes() for p in out.iterdir()}

    def interrupt(done, total):
        if done == 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        generate(out, persons=300, years=1, seed=9, progress=interrupt)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert _leftovers(tmp_path) == []


@pytest.mark.slow
def test_large_runs_show_a_progress_bar_on_a_terminal(cli, tmp_path):
    # In-process stderr is not a terminal: no bar, stdout stays parseable.
    out = tmp_path / "big"
    result = cli.ok("synth", "--persons", "210000", "--out", str(out), "--format", "parquet", "--json")
    assert result.err == "" and json.loads(result.out)["persons"] == 210000
    # On a terminal the bar is drawn on stderr while the chunks are written.
    primary, secondary = pty.openpty()
    argv = [str(VENV_BIN / "tre"), "synth", "--persons", "210000", "--out", str(out), "--format", "parquet"]
    process = subprocess.Popen(argv, env=cli.environ, stdout=subprocess.PIPE, stderr=secondary)
    os.close(secondary)
    drawn = b""
    while True:
        try:
            chunk = os.read(primary, 4096)
        except OSError:  # the terminal closes with the process
            break
        if not chunk:
            break
        drawn += chunk
    stdout, _ = process.communicate(timeout=120)
    os.close(primary)
    assert process.returncode == 0
    assert b"synthetic registers" in drawn and b"chunks" in drawn
    assert b"kuhr-2024.parquet" in stdout
