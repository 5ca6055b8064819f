"""The audit chain under concurrency: sequence numbers and times agree.

Writers take the event's time, then wait for the chain's head; eight threads appending at once
used to leave later sequence numbers with earlier times."""

from __future__ import annotations

import random
import threading
import time

from tre import audit
from tre.db import utc_now


def test_sequence_numbers_and_times_agree_under_concurrency(store):
    def writer(n: int) -> None:
        rng = random.Random(n)
        for i in range(15):
            at = utc_now()
            time.sleep(rng.random() * 0.004)  # work between taking the time and writing
            with store.transaction() as session:
                audit.record(session, at=at, actor="ada", action="test.concurrent", details={"writer": n, "i": i})

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    with store.transaction() as session:
        events = audit.query_events(session, action="test.concurrent")
        count, problem = audit.verify_chain(session)
    assert len(events) == 120 and problem is None
    times = [e.at for e in events]  # ordered by sequence number
    assert times == sorted(times), "a later event carries an earlier time"
