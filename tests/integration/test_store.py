from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from tre.db import Store, head_revision
from tre.models import Base


def test_migrations_build_exactly_the_models(tmp_path):
    """A model changed without a migration fails here: write one with Alembic."""
    store = Store(f"sqlite:///{tmp_path / 'm.sqlite'}")
    before, after = store.migrate()
    assert (before, after) == (None, head_revision())
    with store.engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        assert compare_metadata(context, Base.metadata) == []


def test_migrate_is_idempotent(tmp_path):
    store = Store(f"sqlite:///{tmp_path / 'm.sqlite'}")
    store.migrate()
    assert store.migrate() == (head_revision(), head_revision())
    store.check_ready()
