"""The publication record: every cell the statistics ever published, per run and year.

One DuckDB file, `record.duckdb` in `stats_dir` (mode 0600, central side). A *run* is one
`tre stats build`; it publishes some years of every indicator. For each cell (indicator,
year, region, sex, age) of a run the record keeps what was shown (the value, the marker and
its public reason), the population, and, for published cells only, the exact quantity the
shown value gives away (events, persons or hours) and the persons behind it. Hidden cells
keep no value: the record holds what was published, nothing more, plus the internal reasons
a cell was hidden (for the officers, never published).

The record is written, in one transaction, *before* the new files are published: a run that
dies after it still counts as published for the differencing of every later run. The
publication is the latest run of each indicator and year.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd

from tre.config import ensure_private_dir
from tre.errors import UserError
from tre.stats.protect import EARLIER, HIDDEN, Earlier, ProtectedCube, rounded

SCHEMA = [
    """CREATE TABLE IF NOT EXISTS runs (
        run INTEGER PRIMARY KEY, published_at TIMESTAMPTZ NOT NULL, actor VARCHAR NOT NULL, years INTEGER[] NOT NULL,
        indicators_version VARCHAR NOT NULL, parameters_version VARCHAR NOT NULL, cells BIGINT NOT NULL,
        hidden BIGINT NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS tables (
        run INTEGER NOT NULL, indicator VARCHAR NOT NULL, year INTEGER NOT NULL, basis VARCHAR NOT NULL,
        cells BIGINT NOT NULL, hidden BIGINT NOT NULL, primary_cells BIGINT NOT NULL, audited BIGINT NOT NULL,
        audited_by_moves BIGINT NOT NULL, audited_by_lp BIGINT NOT NULL, repairs INTEGER NOT NULL,
        under_protected BIGINT NOT NULL, checker_seconds DOUBLE NOT NULL, PRIMARY KEY (run, indicator, year))""",
    """CREATE TABLE IF NOT EXISTS cells (
        run INTEGER NOT NULL, indicator VARCHAR NOT NULL, year INTEGER NOT NULL, region VARCHAR NOT NULL,
        sex VARCHAR NOT NULL, age VARCHAR NOT NULL, population BIGINT NOT NULL, shown DOUBLE, marker VARCHAR NOT NULL,
        reason VARCHAR NOT NULL, protected DOUBLE, units BIGINT, checks VARCHAR NOT NULL)""",
]


class Record:
    """The publication record, opened under the statistics lock. Pass it in."""

    def __init__(self, con: duckdb.DuckDBPyConnection):
        self.con = con

    def next_run(self) -> int:
        return int(self.con.execute("SELECT coalesce(max(run), 0) + 1 FROM runs").fetchall()[0][0])

    def earlier(self, cube_shape: tuple[int, ...], hierarchies, indicator: str, year: int) -> Earlier | None:
        """What earlier runs published of `indicator` in `year` (None: nothing yet)."""
        frame = self.con.execute(
            """SELECT run, region, sex, age, marker, protected, units, checks FROM cells
               WHERE indicator = $1 AND year = $2 ORDER BY run""",
            [indicator, year],
        ).df()
        if frame.empty:
            return None
        positions = [
            frame[column].map({code: i for i, code in enumerate(h.codes)})
            for column, h in zip(("region", "sex", "age"), hierarchies, strict=True)
        ]
        known = positions[0].notna() & positions[1].notna() & positions[2].notna()
        frame, positions = frame[known], [p[known].astype(int).to_numpy() for p in positions]
        earlier = Earlier(hidden=np.zeros(cube_shape, dtype=bool), flagged=np.zeros(cube_shape, dtype=bool))
        reasons = frame["checks"].str.split(",")
        flagged = reasons.map(lambda r: any(c not in ("", "secondary", EARLIER) for c in r)).to_numpy()
        for run in sorted(frame["run"].unique()):
            rows = (frame["run"] == run).to_numpy()
            index = tuple(p[rows] for p in positions)
            values, units = np.full(cube_shape, np.nan), np.full(cube_shape, np.nan)
            values[index] = frame.loc[rows, "protected"].astype(float).to_numpy()
            units[index] = frame.loc[rows, "units"].astype(float).to_numpy()
            hidden = (frame.loc[rows, "marker"] == HIDDEN).to_numpy()
            earlier.hidden[index] |= hidden
            earlier.flagged[index] |= hidden & flagged[rows]
            earlier.values.append(values)
            earlier.units.append(units)
            earlier.runs.append(int(run))
        return earlier

    def write(
        self,
        run: int,
        *,
        at: dt.datetime,
        actor: str,
        years: list[int],
        indicators_version: str,
        parameters_version: str,
        protected: list[ProtectedCube],
    ) -> None:
        """The run and every cell of it, in one transaction."""
        frames = [cell_frame(run, p) for p in protected]
        cells = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
        self.con.execute("BEGIN")
        try:
            self.con.execute(
                "INSERT INTO runs VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                [
                    run,
                    at,
                    actor,
                    years,
                    indicators_version,
                    parameters_version,
                    len(cells),
                    int((cells["marker"] == HIDDEN).sum()) if len(cells) else 0,
                ],
            )
            for p in protected:
                a = p.audit
                self.con.execute(
                    "INSERT INTO tables VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
                    [
                        run,
                        p.cube.indicator.id,
                        p.cube.year,
                        p.cube.basis,
                        int(p.hidden.size),
                        int(p.hidden.sum()),
                        int(p.primary.sum()),
                        a.checked,
                        a.by_moves,
                        a.by_lp,
                        p.repairs,
                        len(a.under_protected),
                        p.seconds,
                    ],
                )
            if len(cells):
                self.con.register("__tre_new_cells", cells)
                self.con.execute("INSERT INTO cells SELECT * FROM __tre_new_cells")
                self.con.unregister("__tre_new_cells")
            self.con.execute("COMMIT")
        except BaseException:
            self.con.execute("ROLLBACK")
            raise

    def publication(self) -> pd.DataFrame:
        """The cells now published: of each indicator and year, those of its latest run."""
        return self.con.execute(
            """SELECT c.indicator, c.year, c.region, c.sex, c.age, c.population, c.shown, c.marker, c.reason, c.run
               FROM cells c JOIN (SELECT indicator, year, max(run) AS run FROM cells GROUP BY ALL) l
               USING (indicator, year, run) ORDER BY c.indicator, c.year"""
        ).df()

    def runs(self) -> pd.DataFrame:
        return self.con.execute("SELECT * FROM runs ORDER BY run").df()

    def tables(self, run: int | None = None) -> pd.DataFrame:
        where = "" if run is None else f"WHERE run = {int(run)}"
        return self.con.execute(f"SELECT * FROM tables {where} ORDER BY run, indicator, year").df()


def cell_frame(run: int, p: ProtectedCube) -> pd.DataFrame:
    """One row per cell of a protected cube, as the record stores it."""
    cube = p.cube
    hs = cube.hierarchies
    grid = np.meshgrid(*[np.arange(len(h.codes)) for h in hs], indexing="ij")
    codes = [np.asarray(h.codes, dtype=object)[g.ravel()] for h, g in zip(hs, grid, strict=True)]
    hidden = p.hidden.ravel()
    shown = rounded(cube, p.hidden).ravel()
    return pd.DataFrame(
        {
            "run": run,
            "indicator": cube.indicator.id,
            "year": cube.year,
            "region": codes[0],
            "sex": codes[1],
            "age": codes[2],
            "population": cube.population.ravel().astype(np.int64),
            "shown": shown,
            "marker": p.marker.ravel(),
            "reason": p.reason.ravel(),
            "protected": np.where(hidden, np.nan, p.protected.ravel()),
            "units": pd.array(np.where(hidden, np.nan, cube.units.ravel()), dtype="Int64"),
            "checks": p.internal_checks().ravel(),
        }
    )


@contextmanager
def locked(stats_dir: Path) -> Iterator[None]:
    """One statistics build (or record reader that must see a whole run) at a time."""
    ensure_private_dir(stats_dir, "the statistics directory (TRE_STATS_DIR)")
    descriptor = os.open(stats_dir / "stats.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise UserError("another `tre stats build` is running: wait for it to finish") from None
        yield
    finally:
        os.close(descriptor)


@contextmanager
def open_record(stats_dir: Path, *, write: bool) -> Iterator[Record | None]:
    """The record (created when writing); None when reading and there is none yet."""
    path = stats_dir / "record.duckdb"
    if not write and not path.exists():
        yield None
        return
    ensure_private_dir(stats_dir, "the statistics directory (TRE_STATS_DIR)")
    try:
        con = duckdb.connect(str(path), read_only=not write)
    except duckdb.Error as e:
        raise UserError(
            f"cannot open the publication record {path} ({e.__class__.__name__}): restore it from a backup"
        ) from None
    try:
        if write:
            for statement in SCHEMA:
                con.execute(statement)
        yield Record(con)
    finally:
        con.close()
        if path.exists():
            path.chmod(0o600)
