"""`tre hub` refuses to start in one line when something it needs is missing."""

import pytest


@pytest.mark.parametrize(
    "env, code, message",
    [
        ({"TRE_HUB_ISOLATION": "sideways"}, 3, "hub_isolation must be on, off or auto"),
        ({"TRE_HUB_PROXY_COMMAND": "/nonexistent/chp"}, 3, "configurable-http-proxy not found at /nonexistent/chp"),
        ({"TRE_HUB_NETNS_POOL": "10.213.0.0/30", "TRE_HUB_ISOLATION": "auto"}, None, None),
    ],
)
def test_hub_start_refusals_are_one_line(initialised, env, code, message):
    initialised.environ.update(env)
    result = initialised.subprocess("hub")
    if message is None:  # as root: the pool is too small for a hub; otherwise isolation is off
        import os

        if os.geteuid() != 0:
            pytest.skip("needs root to reach the network setup")
        assert result.code == 3 and "hub_netns_pool 10.213.0.0/30 is too small" in result.err
        return
    assert result.code == code and message in result.err
    assert "Traceback" not in result.err and len(result.err.strip().splitlines()) == 1


def test_enforce_without_a_running_hub(initialised):
    result = initialised("hub", "enforce")
    assert result.code == 1 and "no hub of this installation is running" in result.err
