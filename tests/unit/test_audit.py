import datetime as dt

import pytest
from sqlalchemy import update

from tre import audit
from tre.db import Store
from tre.models import AuditEvent, AuditHead

T0 = dt.datetime(2026, 11, 26, 12, 0, tzinfo=dt.UTC)


@pytest.fixture
def chain(tmp_path) -> Store:
    store = Store(f"sqlite:///{tmp_path / 'audit.sqlite'}")
    store.migrate()
    with store.transaction() as session:
        for i in range(1, 8):
            audit.record(
                session,
                at=T0 + dt.timedelta(minutes=i),
                actor="ada",
                action="project.lock",
                object=f"project:p{i}",
                details={"reason": f"expired {i}"},
            )
    return store


def first_problem(store):
    with store.transaction() as session:
        return audit.verify_chain(session)[1]


def test_intact_chain_verifies(chain):
    with chain.transaction() as session:
        count, problem = audit.verify_chain(session)
    assert (count, problem) == (7, None)


def test_edited_event_is_named(chain):
    with chain.transaction() as session:
        session.execute(update(AuditEvent).where(AuditEvent.seq == 4).values(details='{"reason":"nothing to see"}'))
    problem = first_problem(chain)
    assert problem.seq == 4 and "edited" in problem.problem


def test_deleted_event_is_named(chain):
    with chain.transaction() as session:
        session.delete(session.get(AuditEvent, 3))
    problem = first_problem(chain)
    assert problem.seq == 3 and "deleted" in problem.problem


def test_deleted_and_renumbered_events_are_caught(chain):
    with chain.transaction() as session:
        session.delete(session.get(AuditEvent, 3))
        session.flush()
        for seq in range(4, 8):
            session.execute(update(AuditEvent).where(AuditEvent.seq == seq).values(seq=seq - 1))
    problem = first_problem(chain)
    assert problem.seq == 3 and "does not follow" in problem.problem


def test_reordered_events_are_named(chain):
    with chain.transaction() as session:
        session.execute(update(AuditEvent).where(AuditEvent.seq == 5).values(seq=-5))
        session.execute(update(AuditEvent).where(AuditEvent.seq == 6).values(seq=5))
        session.execute(update(AuditEvent).where(AuditEvent.seq == -5).values(seq=6))
    problem = first_problem(chain)
    assert problem.seq == 5 and "reordered" in problem.problem


def test_deleted_tail_is_caught_by_the_head(chain):
    with chain.transaction() as session:
        session.delete(session.get(AuditEvent, 7))
    problem = first_problem(chain)
    assert problem.seq == 7 and "deleted" in problem.problem


def test_inserted_event_is_caught(chain):
    with chain.transaction() as session:
        forged_hash = audit.event_hash(8, audit.format_time(T0), "eve", "x", "", None, "{}", "f" * 64)
        session.add(
            AuditEvent(
                seq=8,
                at=audit.format_time(T0),
                actor="eve",
                action="x",
                object="",
                details="{}",
                prev_hash="f" * 64,
                hash=forged_hash,
            )
        )
        session.execute(update(AuditHead).values(seq=8, hash=forged_hash))
    problem = first_problem(chain)
    assert problem.seq == 8 and "does not follow" in problem.problem


def test_details_with_an_id_number_are_refused(chain):
    with chain.transaction() as session, pytest.raises(ValueError, match="must not contain an ID number"):
        audit.record(session, at=T0, actor="ada", action="vault.lookup", details={"fnr": "01" + "8" * 9})


def test_log_filters(chain):
    with chain.transaction() as session:
        assert [e.seq for e in audit.query_events(session, object="project:p2")] == [2]
        assert [e.seq for e in audit.query_events(session, action="project.*", limit=2)] == [6, 7]
        assert [e.seq for e in audit.query_events(session, since=T0 + dt.timedelta(minutes=6))] == [6, 7]
        assert audit.query_events(session, actor="eve") == []


def test_digests_never_look_like_id_numbers(chain):
    """A sha256 with a run of 11 digits is audited grouped, not refused."""
    sha = "0123456789" + "1" + "ab" * 26 + "c"
    with chain.transaction() as session:
        event = audit.record(session, at=T0, actor="ada", action="x", details={"sha256": audit.digest(sha)})
    assert "01234567-891ababa" in event.details
