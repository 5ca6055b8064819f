"""Benchmark `tre synth` at national scale: 5.5 M persons x 1 year, on (at most) 2 cores.

Runs `tre synth` as a child process per format and prints the wall time and the child's peak
memory (max RSS from wait4), against the targets of issue 2: at most 5 minutes and 8 GB.

    .venv/bin/python benchmarks/synth.py [--persons 5500000] [--years 1] [--formats csv parquet]

The output goes to benchmarks/out/synth-<format> (git-ignored) and is removed afterwards
unless --keep is given.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TARGET_SECONDS = 5 * 60
TARGET_BYTES = 8 * 1024**3
CORES = 2


def machine() -> str:
    cpuinfo = Path("/proc/cpuinfo").read_text().splitlines()
    meminfo = Path("/proc/meminfo").read_text().splitlines()
    cpu = next((line.split(":", 1)[1].strip() for line in cpuinfo if line.startswith("model name")), "?")
    memory = next(int(line.split()[1]) for line in meminfo if line.startswith("MemTotal")) * 1024
    return f"{os.cpu_count()} CPUs ({cpu}), {memory / 1024**3:.0f} GB RAM, Python {platform.python_version()}"


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def pin_to_cores() -> None:
    cpus = sorted(os.sched_getaffinity(0))
    os.sched_setaffinity(0, cpus[:CORES])


def run(tre: Path, out: Path, persons: int, years: int, fmt: str) -> dict:
    argv = [str(tre), "synth", "--persons", str(persons), "--years", str(years), "--seed", "1"]
    argv += ["--out", str(out), "--format", fmt, "--json"]
    began = time.perf_counter()
    process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, preexec_fn=pin_to_cores)
    stdout_chunks = []
    # Read stdout while it runs (the JSON summary is large), then reap the child with wait4 to
    # get its own resource usage (max RSS in KiB on Linux).
    for chunk in iter(lambda: process.stdout.read(1 << 16), b""):
        stdout_chunks.append(chunk)
    stderr = process.stderr.read()
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    seconds = time.perf_counter() - began
    if process.returncode != 0:
        sys.exit(f"tre synth failed ({process.returncode}): {stderr.decode(errors='replace').strip()}")
    summary = json.loads(b"".join(stdout_chunks))
    size = sum(p.stat().st_size for p in out.iterdir())
    return {
        "format": fmt,
        "seconds": seconds,
        "generate_seconds": summary["seconds"],
        "peak_bytes": usage.ru_maxrss * 1024,
        "cpu_seconds": usage.ru_utime + usage.ru_stime,
        "rows": summary["rows"],
        "files": len(summary["files"]),
        "bytes_on_disk": size,
        "registered": summary["registered"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--persons", type=int, default=5_500_000)
    parser.add_argument("--years", type=int, default=1)
    parser.add_argument("--formats", nargs="+", default=["csv", "parquet"], choices=["csv", "parquet"])
    parser.add_argument("--keep", action="store_true", help="keep the generated files")
    args = parser.parse_args()
    tre = Path(sys.executable).parent / "tre"
    print(f"machine: {machine()}; pinned to {CORES} cores")
    print(f"load average before: {load()}")
    print(f"targets (issue 2): <= {TARGET_SECONDS / 60:.0f} min wall, <= {TARGET_BYTES / 1024**3:.0f} GB peak memory")
    for fmt in args.formats:
        out = REPO / "benchmarks" / "out" / f"synth-{fmt}"
        shutil.rmtree(out, ignore_errors=True)
        out.parent.mkdir(parents=True, exist_ok=True)
        r = run(tre, out, args.persons, args.years, fmt)
        verdict = "meets" if r["seconds"] <= TARGET_SECONDS and r["peak_bytes"] <= TARGET_BYTES else "MISSES"
        print(
            f"{fmt:8} {args.persons:,} persons x {args.years} year(s): wall {r['seconds']:.1f} s "
            f"(generate() {r['generate_seconds']:.1f} s, CPU {r['cpu_seconds']:.1f} s), "
            f"peak RSS {r['peak_bytes'] / 1024**3:.2f} GB; {r['rows']:,} rows in {r['files']} files, "
            f"{r['bytes_on_disk'] / 1024**3:.2f} GB on disk, {r['rows'] / r['seconds'] / 1e6:.2f} M rows/s "
            f"-> {verdict} the targets"
        )
        print(f"load average after {fmt}: {load()}")
        if not args.keep:
            shutil.rmtree(out, ignore_errors=True)


if __name__ == "__main__":
    main()
