"""Writing deliveries: one file per source and period, each with its manifest, staged atomically.

Files are written on a background thread (Arrow's CSV and Parquet writers release the GIL), so
the next chunk is generated while the last one is written. Everything goes into a staging
directory beside the output directory, which replaces it only when the whole run succeeded.
"""

from __future__ import annotations

import hashlib
import os
import queue
import re
import shutil
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from tre.errors import UsageError, UserError
from tre.registers import Manifest, get_source, manifest_path
from tre.synth.frame import arrow_schema

FORMATS = ("csv", "parquet")
GROUND_TRUTH = "dirt.json"  # marks a directory as `tre synth` output (safe to replace)


class DeliveryFile:
    """One delivery being written: Arrow tables in, data file and manifest out."""

    def __init__(self, directory: Path, source: str, period: str, fmt: str):
        self.source = get_source(source)
        self.period = period
        self.format = fmt
        self.path = directory / f"{source}-{period}.{fmt}"
        self.rows = 0  # rows handed in so far (the writer thread may lag behind)
        self.schema = arrow_schema(self.source)
        if fmt == "csv":
            self._sink = pa.OSFile(str(self.path), "wb")
            # Arrow quotes the header; deliveries have a plain one.
            self._sink.write((",".join(self.schema.names) + "\n").encode("utf-8"))
            options = pacsv.WriteOptions(include_header=False, quoting_style="none")
            self._writer = pacsv.CSVWriter(self._sink, self.schema, write_options=options)
        else:
            self._sink = None
            self._writer = pq.ParquetWriter(str(self.path), self.schema, compression="zstd")

    def write(self, table: pa.Table) -> None:
        self._writer.write_table(table)

    def discard(self) -> None:
        """Close the file without a manifest (the run failed)."""
        self._writer.close()
        if self._sink is not None:
            self._sink.close()

    def close(self, producer: str, extra: dict) -> Manifest:
        self.discard()
        manifest = Manifest(
            source=self.source.name,
            period=self.period,
            file=self.path.name,
            format=self.format,
            rows=self.rows,
            sha256=sha256_of(self.path),
            producer=producer,
            extra=extra,
        )
        manifest_path(self.path).write_text(manifest.to_json(), encoding="utf-8")
        return manifest


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 22):
            digest.update(block)
    return digest.hexdigest()


class Deliveries:
    """All the deliveries of a run, written in order on one background thread."""

    def __init__(self, directory: Path, fmt: str, producer: str, extra: dict):
        self.directory = directory
        self.format = fmt
        self.producer = producer
        self.extra = extra
        self.files: dict[tuple[str, str], DeliveryFile] = {}
        self._queue: queue.Queue = queue.Queue(maxsize=6)  # bounds the tables held in memory
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._work, name="tre-synth-writer", daemon=True)
        self._thread.start()

    def open(self, source: str, period: str) -> None:
        if (source, period) not in self.files:
            self.files[(source, period)] = DeliveryFile(self.directory, source, period, self.format)

    def rows(self, source: str, period: str) -> int:
        return self.files[(source, period)].rows

    def file_name(self, source: str, period: str) -> str:
        return self.files[(source, period)].path.name

    def write(self, source: str, period: str, table: pa.Table) -> None:
        delivery = self.files[(source, period)]
        delivery.rows += table.num_rows
        if table.num_rows:
            self._submit(lambda: delivery.write(table))

    def close(self) -> list[Manifest]:
        """Finish every file (in a stable order) and write the manifests."""
        manifests = []
        for key in sorted(self.files):
            delivery = self.files[key]
            self._submit(lambda d=delivery: manifests.append(d.close(self.producer, self.extra)))
        self._submit(None)
        self._thread.join()
        self._raise()
        return manifests

    def abort(self) -> None:
        """Stop the writer thread after a failure and close the files; the caller removes them."""
        if not self._thread.is_alive():
            return
        self._error = self._error or RuntimeError("aborted")
        with suppress(queue.Full):
            self._queue.put(None, timeout=5)
        self._thread.join(timeout=30)
        for delivery in self.files.values():
            with suppress(Exception):  # already failing: closing is best effort
                delivery.discard()

    def _submit(self, job: Callable | None) -> None:
        self._raise()
        while True:
            try:
                self._queue.put(job, timeout=1)
                return
            except queue.Full:
                self._raise()

    def _raise(self) -> None:
        if self._error is not None:
            raise self._error

    def _work(self) -> None:
        while True:
            job = self._queue.get()
            if job is None:
                return
            if self._error is None:
                try:
                    job()
                except BaseException as e:  # handed to the main thread at its next call
                    self._error = e


# --- the output directory -------------------------------------------------------------------


def output_dir_problems(out_dir: Path) -> list[str]:
    """Problems with writing to `out_dir` (empty when fine); nothing is created."""
    out_dir = Path(out_dir)
    if out_dir.exists():
        if not out_dir.is_dir():
            return [f"--out {out_dir} is a file: name a directory"]
        entries = [p.name for p in out_dir.iterdir()]
        if entries and not is_synth_output(entries):
            return [f"--out {out_dir} holds files that are not a `tre synth` output: choose a new or empty directory"]
    parent = _existing_ancestor(out_dir.parent)
    if not os.access(parent, os.W_OK | os.X_OK):
        return [f"--out {out_dir}: cannot write in {parent}: choose a directory you can write"]
    return []


_OUTPUT_NAME = re.compile(r"^[a-z_]+-[0-9-]+\.(csv|parquet|manifest\.json)$")


def is_synth_output(names: list[str]) -> bool:
    """Whether a directory's entries are exactly what `tre synth` writes (so it may be replaced)."""
    return GROUND_TRUTH in names and all(n == GROUND_TRUTH or _OUTPUT_NAME.match(n) for n in names)


def _existing_ancestor(path: Path) -> Path:
    path = path.absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


@contextmanager
def staged_directory(out_dir: Path) -> Iterator[Path]:
    """A fresh directory beside `out_dir` that becomes `out_dir` when the block succeeds.

    A previous `tre synth` output in `out_dir` is replaced; on failure nothing of the new run
    is left behind and the old output is untouched.
    """
    out_dir = Path(out_dir).absolute()
    problems = output_dir_problems(out_dir)
    if problems:
        raise UsageError("; ".join(problems))
    try:
        out_dir.parent.mkdir(parents=True, exist_ok=True)
        stage = out_dir.parent / f".{out_dir.name}.synth-{uuid.uuid4().hex[:8]}"
        stage.mkdir()
    except OSError as e:
        raise UserError(f"cannot write to {out_dir.parent} ({e.strerror}): choose another --out") from None
    try:
        yield stage
        _replace(stage, out_dir)
    except OSError as e:
        shutil.rmtree(stage, ignore_errors=True)
        raise UserError(f"cannot write synthetic data to {out_dir} ({e.strerror}); nothing was written") from None
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise


def _replace(stage: Path, out_dir: Path) -> None:
    if not out_dir.exists():
        stage.rename(out_dir)
        return
    old = out_dir.parent / f".{out_dir.name}.old-{uuid.uuid4().hex[:8]}"
    out_dir.rename(old)
    stage.rename(out_dir)
    shutil.rmtree(old, ignore_errors=True)
