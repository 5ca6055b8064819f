"""The metadata store: engine, transactions and migrations (Alembic).

SQLite by default, PostgreSQL by URL. On SQLite every transaction begins IMMEDIATE, so
writers serialise (the audit chain needs that); on PostgreSQL the audit head row is locked
with SELECT ... FOR UPDATE.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from alembic import command
from alembic.config import Config as AlembicConfig
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, event, exc
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from tre.config import PACKAGE_DIR
from tre.errors import StoreError

MIGRATIONS_DIR = PACKAGE_DIR / "migrations"

Clock = Callable[[], dt.datetime]


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class Store:
    """The metadata store at one URL. Pass it in; never keep one at module level."""

    def __init__(self, url: str, *, clock: Clock = utc_now):
        self.url = url
        self.clock = clock
        self.engine = _make_engine(url)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        # Added to the details of every audit event written through this store (demo mode).
        self.audit_context: dict = {}

    @property
    def shown_url(self) -> str:
        """The URL without its password, for messages."""
        return self.engine.url.render_as_string(hide_password=True)

    @property
    def sqlite_path(self) -> Path | None:
        if self.engine.url.get_backend_name() != "sqlite":
            return None
        database = self.engine.url.database
        return Path(database) if database and database != ":memory:" else None

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """A session in one transaction: committed on success, rolled back on any error."""
        with self._translate_errors(), self._sessions() as session, session.begin():
            if self.audit_context:
                session.info["audit_context"] = self.audit_context
            yield session

    def migrate(self) -> tuple[str | None, str]:
        """Create or upgrade the store to the newest schema; returns (before, after) revisions."""
        path = self.sqlite_path
        if path is not None and not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            # The store holds the audit chain and person keys: readable by its owner only.
            path.touch(mode=0o600)
        with self._translate_errors():
            before = self.current_revision()
            with self.engine.begin() as connection:
                config = _alembic_config()
                config.attributes["connection"] = connection
                command.upgrade(config, "head")
            return before, self.current_revision()

    def current_revision(self) -> str | None:
        with self._translate_errors(), self.engine.connect() as connection:
            return MigrationContext.configure(connection).get_current_revision()

    def check_ready(self) -> None:
        """Raise a one-line StoreError unless the store exists and has the newest schema."""
        path = self.sqlite_path
        if path is not None and not path.exists():
            raise StoreError(f"no metadata store at {path}: run `tre init`")
        current, head = self.current_revision(), head_revision()
        if current is None:
            raise StoreError(f"metadata store {self.shown_url} is not initialised: run `tre init`")
        if current != head:
            raise StoreError(
                f"metadata store {self.shown_url} has schema {current}, this version of tre needs {head}: "
                "run `tre init` to migrate it"
            )

    @contextmanager
    def _translate_errors(self):
        try:
            yield
        except exc.DatabaseError as e:
            original = str(getattr(e, "orig", e)).splitlines()[0]
            if "not a database" in original or "malformed" in original:
                raise StoreError(
                    f"metadata store {self.shown_url} is corrupted ({original}): restore it from a backup, "
                    "or move it away and run `tre init`"
                ) from None
            if isinstance(e, exc.OperationalError) and ("unable to open" in original or "connect" in original):
                raise StoreError(
                    f"cannot open metadata store {self.shown_url} ({original}): check TRE_DB_URL"
                ) from None
            raise


def head_revision() -> str:
    return ScriptDirectory.from_config(_alembic_config()).get_current_head()


def _alembic_config() -> AlembicConfig:
    config = AlembicConfig()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    return config


def _make_engine(url: str) -> Engine:
    try:
        engine = create_engine(url)
    except (exc.ArgumentError, exc.NoSuchModuleError, ValueError) as e:
        raise StoreError(f"TRE_DB_URL is not a usable database URL ({e.__class__.__name__}); check it") from None
    if engine.url.get_backend_name() == "sqlite":
        _serialise_sqlite_writers(engine)
    return engine


def _serialise_sqlite_writers(engine: Engine) -> None:
    # SQLAlchemy's documented recipe: let SQLAlchemy emit BEGIN itself, and make it IMMEDIATE,
    # so that two processes appending to the audit chain cannot both read the same head.
    @event.listens_for(engine, "connect")
    def on_connect(dbapi_connection, _record):
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.execute("PRAGMA busy_timeout = 30000")
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def on_begin(connection):
        connection.exec_driver_sql("BEGIN IMMEDIATE")
