"""The hub's enforcer service runs the § 4-11 retention run once a day, after its round's check;
a failing retention run never keeps the servers from being checked."""

from __future__ import annotations

import pytest

from tre.hub_config import enforcer


def test_the_enforcer_runs_retention_once_a_day_after_checking_servers(monkeypatch):
    calls, rounds = [], []
    monkeypatch.setattr(enforcer, "enforce_once", lambda *a, **k: rounds.append("enforce") or [])

    def sleep(_):
        if rounds.count("enforce") == 3:
            raise KeyboardInterrupt  # ends the service loop, as the hub's SIGINT does

    monkeypatch.setattr(enforcer.time, "sleep", sleep)

    def daily(now):
        calls.append(now.date())
        rounds.append("retention")
        return ["retention: sugar deleted (limit 2028-11-26)"]

    logged = []
    with pytest.raises(KeyboardInterrupt):
        enforcer.run_forever(None, None, every=1, isolation=False, log=logged.append, daily=daily)
    assert rounds == ["enforce", "retention", "enforce", "enforce"] and len(calls) == 1
    assert logged == ["retention: sugar deleted (limit 2028-11-26)"]


def test_a_failing_retention_run_never_stops_enforcement(monkeypatch):
    rounds = []
    monkeypatch.setattr(enforcer, "enforce_once", lambda *a, **k: rounds.append("enforce") or [])

    def sleep(_):
        if rounds.count("enforce") == 4:
            raise KeyboardInterrupt

    monkeypatch.setattr(enforcer.time, "sleep", sleep)

    def daily(now):
        rounds.append("retention")
        raise RecursionError("maximum recursion depth exceeded")

    logged = []
    with pytest.raises(KeyboardInterrupt):
        enforcer.run_forever(None, None, every=1, isolation=False, log=logged.append, daily=daily)
    assert rounds == ["enforce", "retention", "enforce", "enforce", "enforce"]  # retried tomorrow, not every round
    assert logged == [
        "daily retention run failed (tried again tomorrow): RecursionError: maximum recursion depth exceeded"
    ]
