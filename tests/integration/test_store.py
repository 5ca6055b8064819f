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


def test_release_records_from_before_anchoring_are_the_ones_the_first_anchor_recorded(store, tre_env):
    """The first anchoring records the records already there (release.legacy: how many, the
    highest id, their digest); they stay legacy, and an unanchored record outside that set, at
    any id, is found as inserted."""
    import datetime as dt

    from sqlalchemy import text

    from tre.config import load_settings
    from tre.enums import ReleaseKind
    from tre.linkage import releases
    from tre.models import Project, ReleaseRecord
    from tre.release_anchors import anchor

    at = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)

    def record(record_id: int) -> ReleaseRecord:
        return ReleaseRecord(
            id=record_id,
            kind=list(ReleaseKind)[0],
            project_id="p1",
            recipient="A university (org. no. 100000040)",
            legal_basis="rek",
            persons=5,
            reference=f"old-{record_id}",
            released_at=at,
            keep_until=dt.date(2040, 1, 1),
        )

    with store.transaction() as session:
        session.add(Project(id="p1", title="p1", created_at=at))
        session.flush()
        session.add_all([record(3), record(4)])  # written before anchoring existed
    with store.transaction() as session:
        row = record(5)
        session.add(row)
        anchor(session, row, actor="ada", at=at)
    settings = load_settings(tre_env)
    checked = releases.verify(settings, store)
    assert (checked.legacy, checked.anchored, checked.problems) == (2, 1, [])
    for forged in (0, 1):
        with store.transaction() as session:
            session.add(record(forged))
        problems = releases.verify(settings, store).problems
        assert any(f"release record {forged} has no anchor" in p for p in problems), problems
        with store.engine.begin() as connection:  # past the ORM's § 4-10 guard, as the forger did
            connection.execute(text("DELETE FROM release_records WHERE id = :id"), {"id": forged})
