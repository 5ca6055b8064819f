"""TOTP codes for tests: the hub and the review page accept each code once, so a test that logs
the same person in twice needs the next unused one (it waits for the next 30-second step when
the current and the next are used)."""

from __future__ import annotations

import time

from tre.credentials import TOTP_STEP, current_totp

_used: dict[str, int] = {}  # secret -> the last time step handed out


def fresh_code(secret: str) -> str:
    """A code for `secret` not handed out before: the current step's or the next's (both still
    valid if a step boundary passes before the server checks it)."""
    while True:
        now = int(time.time() // TOTP_STEP)
        for step in (now, now + 1):
            if step > _used.get(secret, -1):
                _used[secret] = step
                return current_totp(secret, at=step * TOTP_STEP + 1)
        time.sleep(0.5)
