"""Each process's in-memory copy of the controls, so checking them costs no query per request.

Reloaded from PostgreSQL when the "controls" topic arrives on the invalidation bus (a change
reaches every replica within moments of its commit), and every few seconds regardless, which
covers a message lost while Redis reconnected.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from tollgate.controls import service
from tollgate.controls.service import CONTROLS_TOPIC, Snapshot
from tollgate.db import Database
from tollgate.invalidation import InvalidationBus

log = logging.getLogger(__name__)


class ControlsCache:
    def __init__(
        self, db: Database, bus: InvalidationBus | None, *, refresh_seconds: float = 5.0
    ) -> None:
        self._db = db
        self._bus = bus
        self._refresh_seconds = refresh_seconds
        self._snapshot = Snapshot(global_stop=None, accounts={})
        self._lock = asyncio.Lock()
        # Reload requests and the newest request a finished reload has covered: a burst of
        # changes costs one or two reloads, never one per message.
        self._requested = 0
        self._covered = 0
        self._running = False
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self.reload()
        self._running = True
        if self._bus is not None:
            self._bus.on(CONTROLS_TOPIC, self._on_change)
        self._task = asyncio.create_task(self._refresh(), name="tollgate-controls-refresh")

    async def stop(self) -> None:
        # The bus keeps its callbacks; a stopped cache ignores them.
        self._running = False
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def reload(self) -> None:
        self._requested += 1
        wanted = self._requested
        async with self._lock:
            if self._covered >= wanted:
                return  # a reload that began after this request has read the change
            covers = self._requested
            async with self._db.transaction() as session:
                snapshot = await service.load_snapshot(session)
            self._snapshot = snapshot
            self._covered = covers

    async def _on_change(self, topic: str) -> None:
        if self._running:
            await self.reload()

    async def _refresh(self) -> None:
        while True:
            await asyncio.sleep(self._refresh_seconds)
            try:
                await self.reload()
            except Exception:
                log.exception("reloading controls failed; keeping the last known state")

    def global_stop(self) -> str | None:
        """The reason, when the global emergency stop is on."""
        return self._snapshot.global_stop

    def account_stop(self, account_id: int) -> str | None:
        """The reason, when this account's emergency stop is on."""
        state = self._snapshot.accounts.get(account_id)
        if state is None or not state.stopped:
            return None
        return state.stop_reason or "emergency stop"

    def suspended(self, account_id: int) -> bool:
        state = self._snapshot.accounts.get(account_id)
        return state is not None and state.suspended

    def exempt_from_limits(self, account_id: int) -> bool:
        state = self._snapshot.accounts.get(account_id)
        return state is not None and state.exempt_from_limits
