"""Read-only database access for the API, with a statement timeout on both backends.

A bounded pool of connections (``pool_size``, made on demand, kept for reuse): the HTTP server
runs each request in a new thread, so a connection per thread would leak one per request.
SQLite: the store file opened read-only (``mode=ro``, ``PRAGMA query_only``), a progress
handler that interrupts a statement past its deadline. PostgreSQL (psycopg 3): sessions
read-only (``default_transaction_read_only``), ``statement_timeout``, UTC.
A statement past its deadline is a :class:`QueryTimeout` (503), never a hung request.
"""

from __future__ import annotations

import functools
import queue
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from warehouse.sta.errors import BadRequest, QueryTimeout
from warehouse.sta.sql import Dialect, Postgres, Sql, SQLite

Row = dict[str, Any]
_TIMEOUT_HINT = "narrow it (a Datastream, a phenomenonTime range, a smaller $top)"


class _Pool:
    """At most ``size`` connections; a caller waits up to ``wait_s`` for a free one."""

    def __init__(self, make: Callable[[], Any], size: int, wait_s: float):
        self._make = make
        self._free: queue.LifoQueue[Any] = queue.LifoQueue()
        self._slots = threading.BoundedSemaphore(size)
        self._all: list[Any] = []
        self._lock = threading.Lock()
        self._wait_s = wait_s

    @contextmanager
    def connection(self) -> Iterator[Any]:
        if not self._slots.acquire(timeout=self._wait_s):
            raise QueryTimeout("every database connection is busy; retry")
        conn = None
        try:
            try:
                conn = self._free.get_nowait()
            except queue.Empty:
                conn = self._make()
                with self._lock:
                    self._all.append(conn)
            yield conn
            self._free.put(conn)
            conn = None
        finally:
            if conn is not None:  # it failed in use: do not hand it out again
                self._discard(conn)
            self._slots.release()

    def _discard(self, conn: Any) -> None:
        with self._lock:
            if conn in self._all:
                self._all.remove(conn)
        try:
            conn.close()
        except Exception:  # noqa: BLE001  (closing a broken connection)
            pass

    def close(self) -> None:
        with self._lock:
            conns, self._all = self._all, []
        for conn in conns:
            conn.close()

    def size(self) -> int:
        with self._lock:
            return len(self._all)


class Backend:
    dialect: Dialect

    def fetch(self, sql: Sql) -> list[Row]:
        raise NotImplementedError

    def explain_rows(self, sql: Sql) -> int | None:
        """The planner's estimate of the rows ``sql`` returns, if the backend has one."""
        return None

    def stats_rows(self, table: str, columns: list[str]) -> int | None:
        """Rows of ``table`` per value of ``columns`` (an index's leading columns; none: the
        whole table) from the statistics the last ANALYZE kept, if any."""
        return None

    def connections(self) -> int:
        """How many connections are open (in use or kept)."""
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError


@functools.lru_cache(maxsize=256)
def _row_maker(names: tuple[str, ...]) -> Callable[[tuple[Any, ...]], Row]:
    """A function of a row tuple making its dict: one dict display, generated once per list of
    column names (a quarter of the time of ``dict(sqlite3.Row)``, half of ``dict(zip(…))``,
    3,000 rows a request). The generated source holds only ``repr``s of the names."""
    items = ", ".join(f"{name!r}: r[{i}]" for i, name in enumerate(names))
    maker: Callable[[tuple[Any, ...]], Row] = eval(f"lambda r: {{{items}}}")  # noqa: S307
    return maker


class SQLiteBackend(Backend):
    def __init__(self, path: str, *, timeout_s: float = 5.0, pool_size: int = 8):
        self.path = path
        self.timeout_s = timeout_s
        self.dialect = SQLite()
        self._pool = _Pool(self._connect, pool_size, wait_s=timeout_s)

    def _connect(self) -> sqlite3.Connection:
        uri = Path(self.path).absolute().as_uri() + "?mode=ro"
        conn = sqlite3.connect(uri, uri=True, check_same_thread=False)
        conn.execute("PRAGMA query_only = 1")
        conn.execute("PRAGMA busy_timeout = 5000")
        return conn

    def fetch(self, sql: Sql) -> list[Row]:
        text, params = self.dialect.render(sql)
        with self._pool.connection() as conn:
            deadline = time.monotonic() + self.timeout_s
            conn.set_progress_handler(lambda: int(time.monotonic() > deadline), 10_000)
            try:
                cur = conn.execute(text, params)
                make = _row_maker(tuple(d[0] for d in cur.description or ()))
                return list(map(make, cur.fetchall()))
            except sqlite3.OperationalError as exc:
                if "interrupted" in str(exc):
                    raise QueryTimeout(f"the query ran longer than {self.timeout_s:g} s: "
                                       + _TIMEOUT_HINT) from None
                raise
            except (OverflowError, sqlite3.IntegrityError, sqlite3.DataError) as exc:
                raise BadRequest(f"a value in the query is out of range: {exc}") from None
            finally:
                conn.set_progress_handler(None, 0)

    def stats_rows(self, table: str, columns: list[str]) -> int | None:
        try:
            stats = self.fetch(Sql("SELECT idx, stat FROM sqlite_stat1 WHERE tbl = ?", (table,)))
        except sqlite3.OperationalError:
            return None  # never analyzed: no sqlite_stat1
        for row in stats:
            if row["idx"] is None:
                continue
            names = [r["name"] for r in self.fetch(Sql(
                "SELECT name FROM pragma_index_info(?) ORDER BY seqno", (row["idx"],)))]
            numbers = str(row["stat"]).split()
            if set(names[: len(columns)]) == set(columns) and len(numbers) > len(columns):
                return int(numbers[len(columns)])  # numbers[0]: the table's rows
        return None

    def connections(self) -> int:
        return self._pool.size()

    def close(self) -> None:
        self._pool.close()


class PostgresBackend(Backend):
    def __init__(self, dsn: str, *, timeout_s: float = 5.0, pool_size: int = 8):
        self.dsn = dsn
        self.timeout_s = timeout_s
        self.dialect = Postgres()
        self._pool = _Pool(self._connect, pool_size, wait_s=timeout_s)

    def _connect(self) -> Any:
        import psycopg

        conn = psycopg.connect(self.dsn, autocommit=True)
        conn.execute("SET default_transaction_read_only = on")
        conn.execute(f"SET statement_timeout = {int(self.timeout_s * 1000)}")
        conn.execute("SET TIME ZONE 'UTC'")
        return conn

    @contextmanager
    def _errors(self) -> Iterator[None]:
        import psycopg
        from psycopg import errors

        try:
            yield
        except errors.QueryCanceled:
            raise QueryTimeout(f"the query ran longer than {self.timeout_s:g} s: "
                               + _TIMEOUT_HINT) from None
        except (psycopg.DataError, errors.UndefinedFunction, errors.DatatypeMismatch,
                errors.AmbiguousFunction, errors.IndeterminateDatatype) as exc:
            # SQLSTATE class 22 (a value: overflow, division, a bad cast) and the type errors
            # a well-typed expression can still meet in PostgreSQL: the client's query, a 400
            raise BadRequest(f"the query cannot be evaluated: {exc.diag.message_primary}") \
                from None

    def fetch(self, sql: Sql) -> list[Row]:
        from psycopg.rows import dict_row

        text, params = self.dialect.render(sql)
        with self._pool.connection() as conn, self._errors(), \
                conn.cursor(row_factory=dict_row) as cur:
            cur.execute(text, params)
            return list(cur.fetchall())

    def explain_rows(self, sql: Sql) -> int | None:
        text, params = self.dialect.render(sql)
        with self._pool.connection() as conn, self._errors(), conn.cursor() as cur:
            cur.execute("EXPLAIN (FORMAT JSON) " + text, params)
            row = cur.fetchone()
            return None if row is None else int(row[0][0]["Plan"]["Plan Rows"])

    def connections(self) -> int:
        return self._pool.size()

    def close(self) -> None:
        self._pool.close()


def open_backend(url: str, *, timeout_s: float = 5.0, pool_size: int = 8) -> Backend:
    """``sqlite:///path/to/file.db`` or a libpq URL ``postgresql://…`` (as the store's)."""
    if url.startswith(("postgresql://", "postgres://")):
        return PostgresBackend(url, timeout_s=timeout_s, pool_size=pool_size)
    if url.startswith("sqlite:///"):
        return SQLiteBackend(url.removeprefix("sqlite:///"), timeout_s=timeout_s,
                             pool_size=pool_size)
    raise ValueError(f"storage url {url!r}: expected sqlite:///… or postgresql://…")
