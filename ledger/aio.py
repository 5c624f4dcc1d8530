"""Reads on an event loop without blocking it: PostgreSQL through psycopg 3's
``AsyncConnection``, for the API's hot reads (:meth:`ledger.db.Database.read_async`).

A read done with the blocking driver on an event loop's thread stops every request of
the process for its round trip; one awaited here lets the loop serve the others
meanwhile. SQLAlchemy's own asyncio layer did the same at a price this path cannot
pay: a greenlet switch and an adapter around every call (+0.7 ms of CPU on a
subscriber's history, 1.5 -> 2.2 ms), and a pool whose waiters could be overtaken by
newcomers until they timed out (p99 past 1.5 s under 200 connections). So this module
is small and direct:

- the statements are the stores' own SQLAlchemy statements (``ledger/invoices.py``),
  compiled once for PostgreSQL, their parameters and rows processed by their columns'
  own types (``Money``, ``UTCDateTime``, ...): no SQL is written twice;
- :class:`LoopPool`, a pool per event loop (asyncio connections belong to the loop that
  opened them): a fixed number of connections in autocommit (one round trip a query),
  a statement timeout on each, a connection that sat idle pinged before use (as
  :func:`ledger.db._ping_when_idle` does for the blocking engines), a broken one
  dropped with every idle one opened before it (a database restart), and waiters served
  first come, first served, each within a timeout.

psycopg_pool's ``AsyncConnectionPool`` (3.3.3) was measured in its place (2026-12-07,
interleaved, ``bench/api_load.py --connections 200``): as fast (history 28-36 % of
trivial against 30-43 %, CPU 0.91-1.19 against 0.94-1.11 ms a request), but its
workers and scheduler catch ``CancelledError``, and a loop ending with its pool open
(``asyncio.run`` of a read, a test server's thread) hung in ``asyncio.run``'s task
cancellation (``tests/ledger``'s loops test ran 10 min); its callers cannot all close it
first, so this pool stays.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import time
from collections.abc import Callable, Sequence
from typing import Any

import psycopg
import sqlalchemy as sa
from sqlalchemy.engine import URL

__all__ = ["AsyncReader", "LoopPool", "PoolTimeout"]


class PoolTimeout(TimeoutError):
    """No connection of a loop's pool came free in time."""


class _Compiled:
    """A statement compiled for PostgreSQL, with its columns' processors."""

    __slots__ = ("binds", "defaults", "results", "sql")

    def __init__(self, stmt: sa.ClauseElement, dialect: sa.Dialect) -> None:
        compiled = stmt.compile(dialect=dialect)
        self.sql: str = compiled.string
        binds = {compiled.bind_names[bind]: bind for bind in compiled.binds.values()}
        # The statement's own literals (``status = 'archived'``) are parameters too.
        self.defaults = {name: bind.effective_value for name, bind in binds.items()
                         if not bind.required}
        self.binds = {name: proc for name, bind in binds.items()
                      if (proc := bind.type.dialect_impl(dialect).bind_processor(dialect))}
        # The driver's column types say which processor a column needs (NUMERIC or
        # FLOAT for a Numeric); known at the first result.
        self.results: list[tuple[int, Callable[[Any], Any]]] | None = None

    def params(self, given: dict[str, Any]) -> dict[str, Any]:
        params = {**self.defaults, **given}
        for name, proc in self.binds.items():
            params[name] = proc(params[name])
        return params


class LoopPool:
    """A fixed pool of PostgreSQL ``AsyncConnection``s for one event loop.

    ``connect`` opens one (autocommit, statement timeout set). :meth:`acquire` waits
    at most ``timeout`` seconds for a connection, in arrival order: a connection handed
    back goes straight to the oldest waiter. A connection idle for more than
    ``idle_ping_s`` is pinged first and replaced if the server dropped it.
    """

    def __init__(self, connect: Callable[[], Any], size: int, *, timeout: float,
                 idle_ping_s: float) -> None:
        self._connect = connect
        self.size = size
        self._timeout = timeout
        self._idle_ping_s = idle_ping_s
        self._idle: collections.deque[tuple[psycopg.AsyncConnection, float]] = \
            collections.deque()
        self._waiters: collections.deque[asyncio.Future] = collections.deque()
        self._open = 0  # connections open or being opened

    async def acquire(self) -> psycopg.AsyncConnection:
        while self._idle:
            conn, used = self._idle.pop()  # the most recently used: the likeliest alive
            if time.monotonic() - used <= self._idle_ping_s:
                return conn
            try:
                await conn.execute("SELECT 1")
                return conn
            except psycopg.Error:
                await self._drop(conn)
            except BaseException:
                self.discard(conn)  # cancelled while pinging
                raise
        if self._open < self.size:
            return await self._new()
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            conn = await asyncio.wait_for(waiter, self._timeout)
        except BaseException as exc:
            if waiter in self._waiters:
                self._waiters.remove(waiter)
            if waiter.done() and not waiter.cancelled() and waiter.exception() is None:
                self._pass_on(waiter.result())  # handed over just as it gave up
            if isinstance(exc, TimeoutError):
                raise PoolTimeout(f"no database connection free within {self._timeout} s "
                                  f"(pool of {self.size})") from None
            raise
        return conn if conn is not None else await self._new(counted=True)

    def _pass_on(self, handed: psycopg.AsyncConnection | None) -> None:
        # What a waiter got and will not use: a connection, or a place to open one.
        if handed is not None:
            self.release(handed)
        else:
            self._open -= 1
            self._wake_one_to_open()

    async def _new(self, *, counted: bool = False) -> psycopg.AsyncConnection:
        if not counted:
            self._open += 1
        try:
            return await self._connect()
        except BaseException:
            self._open -= 1
            self._wake_one_to_open()
            raise

    def release(self, conn: psycopg.AsyncConnection) -> None:
        """Hand ``conn`` back: to the oldest waiter, else to the idle ones. A closed or
        broken connection is dropped instead, with every idle one (a restart)."""
        if conn.closed or conn.broken:
            self._open -= 1
            asyncio.get_running_loop().create_task(self._close(conn))
            while self._idle:  # opened before the break: likely dead too
                old, _ = self._idle.popleft()
                self._open -= 1
                asyncio.get_running_loop().create_task(self._close(old))
            self._wake_one_to_open()
            return
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(conn)
                return
        self._idle.append((conn, time.monotonic()))

    def discard(self, conn: psycopg.AsyncConnection) -> None:
        """Drop ``conn`` (its state is unknown: a query cancelled half-way)."""
        self._open -= 1
        asyncio.get_running_loop().create_task(self._close(conn))
        self._wake_one_to_open()

    def _wake_one_to_open(self) -> None:
        # A place came free: the oldest waiter opens a connection of its own (None).
        while self._waiters and self._open < self.size:
            waiter = self._waiters.popleft()
            if not waiter.done():
                self._open += 1
                waiter.set_result(None)
                return

    async def _drop(self, conn: psycopg.AsyncConnection) -> None:
        self._open -= 1
        await self._close(conn)

    @staticmethod
    async def _close(conn: psycopg.AsyncConnection) -> None:
        with contextlib.suppress(psycopg.Error):
            await conn.close()

    async def close(self) -> None:
        """Close the idle connections (those in use are closed as they come back)."""
        self.size = 0
        while self._idle:
            conn, _ = self._idle.popleft()
            await self._drop(conn)

    def forget(self) -> None:
        """Let go of every connection without awaiting (another loop's, or a parent
        process's): the driver closes each when it is collected."""
        self._idle.clear()
        self.size = 0


class AsyncReader:
    """Runs the stores' SELECTs on PostgreSQL from an event loop: one :class:`LoopPool`
    per loop, statements compiled once."""

    def __init__(self, url: URL, dialect: sa.Dialect, *, size: int, timeout: float,
                 statement_timeout_ms: int, idle_ping_s: Callable[[], float]) -> None:
        args, kwargs = dialect.create_connect_args(url)
        self._conninfo = psycopg.conninfo.make_conninfo(*args, **kwargs)
        self._dialect = dialect
        self.size = size
        self._timeout = timeout
        self._statement_timeout_ms = int(statement_timeout_ms)
        self._idle_ping_s = idle_ping_s
        self._pools: dict[asyncio.AbstractEventLoop, LoopPool] = {}
        self._compiled: dict[sa.ClauseElement, _Compiled] = {}

    async def _connect(self) -> psycopg.AsyncConnection:
        conn = await psycopg.AsyncConnection.connect(self._conninfo, autocommit=True)
        try:
            await conn.execute(f"SET statement_timeout = {self._statement_timeout_ms}")
        except BaseException:
            await conn.close()
            raise
        return conn

    def pool(self) -> LoopPool:
        """The running loop's pool (made at its first read)."""
        loop = asyncio.get_running_loop()
        pool = self._pools.get(loop)
        if pool is None:
            # The pools of loops that have closed since (a test's server): forgotten.
            for old in [one for one in self._pools if one.is_closed()]:
                self._pools.pop(old).forget()
            pool = self._pools[loop] = LoopPool(
                self._connect, self.size, timeout=self._timeout,
                idle_ping_s=self._idle_ping_s())
        return pool

    async def all(self, stmt: sa.ClauseElement, params: dict[str, Any]) -> list[Sequence[Any]]:
        """The rows ``stmt`` selects with ``params``, each value as its column's type
        gives it (as ``Connection.execute(stmt, params).all()`` would)."""
        compiled = self._compiled.get(stmt)
        if compiled is None:
            compiled = self._compiled[stmt] = _Compiled(stmt, self._dialect)
        pool = self.pool()
        conn = await pool.acquire()
        try:
            cursor = await conn.execute(compiled.sql, compiled.params(params))
            rows = await cursor.fetchall()
            if compiled.results is None:
                compiled.results = self._processors(stmt, cursor.description)
        except psycopg.Error:
            pool.release(conn)  # still usable unless broken (release tells)
            raise
        except BaseException:
            pool.discard(conn)  # cancelled half-way: its state is unknown
            raise
        pool.release(conn)
        processors = compiled.results
        if not processors:
            return rows
        out = []
        for row in rows:
            row = list(row)
            for i, proc in processors:
                row[i] = proc(row[i])
            out.append(row)
        return out

    def _processors(self, stmt: sa.ClauseElement, description: Sequence[Any]
                    ) -> list[tuple[int, Callable[[Any], Any]]]:
        """(index, processor) of each column whose type processes what the driver gives
        (``UTCDateTime``: UTC; ``Money``: ``Decimal``; ...), the others left alone."""
        found = []
        for i, (col, desc) in enumerate(zip(stmt.selected_columns, description, strict=True)):
            proc = col.type.dialect_impl(self._dialect).result_processor(
                self._dialect, desc.type_code)
            if proc is not None:
                found.append((i, proc))
        return found

    async def close(self) -> None:
        """Close the running loop's pool; forget the others'."""
        pool = self._pools.pop(asyncio.get_running_loop(), None)
        self.forget()
        if pool is not None:
            await pool.close()

    def forget(self) -> None:
        """Let go of every loop's pool without awaiting (a fork, a blocking close)."""
        pools, self._pools = list(self._pools.values()), {}
        for pool in pools:
            pool.forget()
