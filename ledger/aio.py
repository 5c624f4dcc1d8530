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
- a pool per event loop (asyncio connections belong to the loop that opened them):
  psycopg's own :class:`psycopg_pool.AsyncConnectionPool`, up to ``size`` connections
  in autocommit (one round trip a query), a statement timeout on each, waiters served
  first come, first served, each within a timeout (:class:`PoolTimeout`). Around it,
  what the pool leaves to its user: a connection that sat idle pinged before use (as
  :func:`ledger.db._ping_when_idle` does for the blocking engines; done here rather
  than in the pool's ``check``, whose failure costs the request a back-off of a
  second), and a broken one makes the pool drop every connection opened before it
  (``drain()``: a database restart).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from typing import Any

import psycopg
import psycopg_pool
import sqlalchemy as sa
from sqlalchemy.engine import URL

__all__ = ["AsyncReader", "PoolTimeout"]

#: Attributes this module sets on a pooled connection: when it was opened, when it was
#: last handed back to its pool (``time.monotonic()``).
_OPENED_AT = "_invoicer_opened_at"
_RETURNED_AT = "_invoicer_returned_at"


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


class AsyncReader:
    """Runs the stores' SELECTs on PostgreSQL from an event loop: one
    :class:`psycopg_pool.AsyncConnectionPool` per loop, statements compiled once."""

    def __init__(self, url: URL, dialect: sa.Dialect, *, size: int, timeout: float,
                 statement_timeout_ms: int, idle_ping_s: Callable[[], float]) -> None:
        args, kwargs = dialect.create_connect_args(url)
        self._conninfo = psycopg.conninfo.make_conninfo(*args, **kwargs)
        self._dialect = dialect
        self.size = size
        self._timeout = timeout
        self._statement_timeout_ms = int(statement_timeout_ms)
        self._idle_ping_s = idle_ping_s
        self._pools: dict[asyncio.AbstractEventLoop, psycopg_pool.AsyncConnectionPool] = {}
        # When each pool last dropped its connections (drain): once for a restart.
        self._drained: dict[psycopg_pool.AsyncConnectionPool, float] = {}
        self._compiled: dict[sa.ClauseElement, _Compiled] = {}

    async def _configure(self, conn: psycopg.AsyncConnection) -> None:
        await conn.execute(f"SET statement_timeout = {self._statement_timeout_ms}")
        setattr(conn, _OPENED_AT, time.monotonic())

    async def pool(self) -> psycopg_pool.AsyncConnectionPool:
        """The running loop's pool (made and opened at its first read)."""
        loop = asyncio.get_running_loop()
        pool = self._pools.get(loop)
        if pool is not None:
            return pool
        # The pools of loops that have closed since (a test's server): forgotten.
        for old in [one for one in self._pools if one.is_closed()]:
            self._drained.pop(self._pools.pop(old), None)
        # Opened lazily as LoopPool did: one connection at first, more as readers wait.
        pool = psycopg_pool.AsyncConnectionPool(
            self._conninfo, min_size=1, max_size=self.size, timeout=self._timeout,
            kwargs={"autocommit": True}, configure=self._configure, open=False,
            name="ledger-async-read")
        await pool.open()
        if (first := self._pools.setdefault(loop, pool)) is not pool:
            await pool.close()  # another read of this loop opened one meanwhile
            return first
        return pool

    async def _dropped(self, pool: psycopg_pool.AsyncConnectionPool,
                       conn: psycopg.AsyncConnection) -> None:
        """``conn`` was found broken and handed back: the pool drops every connection
        opened before it too (a restart), once for all those that fail alike."""
        if getattr(conn, _OPENED_AT, 0.0) > self._drained.get(pool, float("-inf")):
            self._drained[pool] = time.monotonic()
            await pool.drain()

    async def _getconn(self, pool: psycopg_pool.AsyncConnectionPool
                       ) -> psycopg.AsyncConnection:
        """A connection of ``pool``, pinged first if it sat idle for long: a dead one is
        handed back (the pool replaces it) with every idle one (``drain``)."""
        idle_ping_s = self._idle_ping_s()
        while True:
            try:
                conn = await pool.getconn()
            except psycopg_pool.PoolTimeout:
                raise PoolTimeout(f"no database connection free within {self._timeout} s "
                                  f"(pool of {self.size})") from None
            returned = getattr(conn, _RETURNED_AT, None)
            if returned is None or time.monotonic() - returned <= idle_ping_s:
                return conn  # new, or used a moment ago
            try:
                await conn.execute("SELECT 1")
                return conn
            except psycopg.Error:
                await pool.putconn(conn)
                await self._dropped(pool, conn)
            except BaseException:
                await asyncio.shield(pool.putconn(conn))  # cancelled while pinging
                raise

    async def all(self, stmt: sa.ClauseElement, params: dict[str, Any]) -> list[Sequence[Any]]:
        """The rows ``stmt`` selects with ``params``, each value as its column's type
        gives it (as ``Connection.execute(stmt, params).all()`` would)."""
        compiled = self._compiled.get(stmt)
        if compiled is None:
            compiled = self._compiled[stmt] = _Compiled(stmt, self._dialect)
        pool = self._pools.get(asyncio.get_running_loop()) or await self.pool()
        conn = await self._getconn(pool)
        try:
            cursor = await conn.execute(compiled.sql, compiled.params(params))
            rows = await cursor.fetchall()
            if compiled.results is None:
                compiled.results = self._processors(stmt, cursor.description)
        except psycopg.Error:
            setattr(conn, _RETURNED_AT, time.monotonic())
            await pool.putconn(conn)  # kept unless broken
            if conn.broken:  # the server went away: the idle ones are likely dead too
                await self._dropped(pool, conn)
            raise
        except BaseException:
            # Cancelled half-way: psycopg cancels the query on the server; the pool
            # keeps the connection if that left it idle, else closes it.
            await asyncio.shield(pool.putconn(conn))
            raise
        setattr(conn, _RETURNED_AT, time.monotonic())
        await pool.putconn(conn)
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
        """Let go of every loop's pool without awaiting (a fork, a blocking close): the
        driver closes each connection when it is collected."""
        self._pools = {}
        self._drained = {}
