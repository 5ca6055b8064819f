"""The hub's way into the TRE metadata store: blocking calls run off the event loop."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Callable
from typing import TypeVar

from sqlalchemy.orm import Session

from tre import audit
from tre.db import Store, utc_now

T = TypeVar("T")


class HubStore:
    """One metadata store per hub process, shared by its authenticator, spawners and pages."""

    def __init__(self, url: str):
        self.store = Store(url)

    def run(self, func: Callable[[Session], T]) -> T:
        with self.store.transaction() as session:
            return func(session)

    async def call(self, func: Callable[[Session], T]) -> T:
        """Run `func(session)` in one transaction, in a worker thread."""
        return await asyncio.to_thread(self.run, func)

    async def record(self, *, actor: str, action: str, object: str = "", details: dict | None = None) -> None:
        """Append an audit event (its own transaction)."""
        now = utc_now()
        await self.call(
            lambda session: audit.record(session, at=now, actor=actor, action=action, object=object, details=details)
        )

    @staticmethod
    def today() -> dt.date:
        # Approvals are dated in local (Norwegian) time; so is this machine's clock.
        return dt.date.today()


_stores: dict[str, HubStore] = {}


def hub_store(url: str) -> HubStore:
    """The HubStore for `url` in this process (the hub is one process with one engine per store)."""
    if url not in _stores:
        _stores[url] = HubStore(url)
    return _stores[url]
