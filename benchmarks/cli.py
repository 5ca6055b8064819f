"""How fast the CLI answers `tre --help` (target: well under a second; issue 18).

    .venv/bin/python benchmarks/cli.py [--baseline CHECKOUT]

Runs `tre --help`, `tre request --help` and `tre audit log --help` in fresh interpreters
(the venv's Python, as the console script does) five times each and prints the median wall
time, and which heavy libraries each one loaded. With `--baseline`, the same for another
checkout of tre in the same run (its package first on PYTHONPATH), e.g. one made with
`git archive main | tar -x -C /tmp/base`.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RUNS = 5
COMMANDS = (["--help"], ["request", "--help"], ["audit", "log", "--help"])
HEAVY = ("sqlalchemy", "alembic", "pandas", "numpy", "duckdb", "scipy", "rich", "jupyterhub", "tornado")
PROBE = (
    "import contextlib, io, sys\n"
    "from tre.cli import main\n"
    "with contextlib.redirect_stdout(io.StringIO()), contextlib.suppress(SystemExit):\n"
    "    main(sys.argv[1:])\n"
    f"print(','.join(sorted({{m.split('.')[0] for m in sys.modules}} & {set(HEAVY)!r})), file=sys.stderr)\n"
)


def measure(checkout: Path, argv: list[str]) -> tuple[float, str]:
    env = {**os.environ, "PYTHONPATH": str(checkout)}
    times, loaded = [], ""
    for _ in range(RUNS):
        start = time.perf_counter()
        done = subprocess.run(
            [sys.executable, "-c", PROBE, *argv], env=env, cwd=checkout, capture_output=True, text=True
        )
        times.append(time.perf_counter() - start)
        loaded = done.stderr.strip().splitlines()[-1] if done.stderr.strip() else ""
    return statistics.median(times), loaded


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", type=Path, help="another checkout of tre to compare with")
    args = parser.parse_args()
    print(f"{platform.node()}: {os.cpu_count()} cores, Python {platform.python_version()}, median of {RUNS}")
    checkouts = [("this checkout", REPO)] + ([("baseline", args.baseline)] if args.baseline else [])
    for label, checkout in checkouts:
        for argv in COMMANDS:
            seconds, loaded = measure(checkout, argv)
            print(f"{label:14} tre {' '.join(argv):18} {seconds:6.2f} s   loads: {loaded or 'nothing heavy'}")


if __name__ == "__main__":
    main()
