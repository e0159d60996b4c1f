"""Read-only database access for the API, with a statement timeout on both backends.

SQLite: the store file opened read-only (``mode=ro``, ``PRAGMA query_only``), one connection
per thread, a progress handler that interrupts a statement past its deadline. PostgreSQL
(psycopg 3): one connection per thread, every transaction read-only, ``statement_timeout``.
A statement past its deadline is a :class:`QueryTimeout` (503), never a hung request.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from warehouse.sta.errors import BadRequest, QueryTimeout
from warehouse.sta.sql import Dialect, Postgres, Sql, SQLite

Row = dict[str, Any]


class Backend:
    dialect: Dialect

    def fetch(self, sql: Sql) -> list[Row]:
        raise NotImplementedError

    def explain_rows(self, sql: Sql) -> int | None:
        """The planner's estimate of the rows ``sql`` returns, if the backend has one."""
        return None

    def close(self) -> None:
        raise NotImplementedError


class SQLiteBackend(Backend):
    def __init__(self, path: str, *, timeout_s: float = 5.0):
        self.path = path
        self.timeout_s = timeout_s
        self.dialect = SQLite()
        self._local = threading.local()
        self._all: list[sqlite3.Connection] = []
        self._lock = threading.Lock()

    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            uri = Path(self.path).absolute().as_uri() + "?mode=ro"
            conn = sqlite3.connect(uri, uri=True, check_same_thread=False)
            conn.execute("PRAGMA query_only = 1")
            conn.execute("PRAGMA busy_timeout = 5000")
            conn.row_factory = sqlite3.Row
            self._local.conn = conn
            with self._lock:
                self._all.append(conn)
        return conn

    def fetch(self, sql: Sql) -> list[Row]:
        conn = self._conn()
        deadline = time.monotonic() + self.timeout_s
        conn.set_progress_handler(lambda: int(time.monotonic() > deadline), 10_000)
        try:
            text, params = self.dialect.render(sql)
            return [dict(r) for r in conn.execute(text, params).fetchall()]
        except sqlite3.OperationalError as exc:
            if "interrupted" in str(exc):
                raise QueryTimeout(
                    f"the query ran longer than {self.timeout_s:g} s: narrow it "
                    "(a Datastream, a phenomenonTime range, a smaller $top)"
                ) from None
            raise
        except (OverflowError, sqlite3.IntegrityError, sqlite3.DataError) as exc:
            raise BadRequest(f"a value in the query is out of range: {exc}") from None
        finally:
            conn.set_progress_handler(None, 0)

    def close(self) -> None:
        with self._lock:
            for conn in self._all:
                conn.close()
            self._all.clear()


class PostgresBackend(Backend):
    def __init__(self, dsn: str, *, timeout_s: float = 5.0):
        self.dsn = dsn
        self.timeout_s = timeout_s
        self.dialect = Postgres()
        self._local = threading.local()
        self._all: list[Any] = []
        self._lock = threading.Lock()

    def _conn(self) -> Any:
        import psycopg

        conn = getattr(self._local, "conn", None)
        if conn is None or conn.closed:
            conn = psycopg.connect(self.dsn, autocommit=True)
            conn.execute("SET default_transaction_read_only = on")
            conn.execute(f"SET statement_timeout = {int(self.timeout_s * 1000)}")
            conn.execute("SET TIME ZONE 'UTC'")
            self._local.conn = conn
            with self._lock:
                self._all.append(conn)
        return conn

    @contextmanager
    def _errors(self) -> Iterator[None]:
        import psycopg
        from psycopg import errors

        try:
            yield
        except errors.QueryCanceled:
            raise QueryTimeout(
                f"the query ran longer than {self.timeout_s:g} s: narrow it "
                "(a Datastream, a phenomenonTime range, a smaller $top)"
            ) from None
        except (errors.DataException, errors.UndefinedFunction, errors.DatatypeMismatch) as exc:
            raise BadRequest(
                f"a value in the query does not fit: {exc.diag.message_primary}"
            ) from None
        except psycopg.OperationalError:
            self._local.conn = None
            raise

    def fetch(self, sql: Sql) -> list[Row]:
        from psycopg.rows import dict_row

        text, params = self.dialect.render(sql)
        with self._errors(), self._conn().cursor(row_factory=dict_row) as cur:
            cur.execute(text, params)
            return list(cur.fetchall())

    def explain_rows(self, sql: Sql) -> int | None:
        text, params = self.dialect.render(sql)
        with self._errors(), self._conn().cursor() as cur:
            cur.execute("EXPLAIN (FORMAT JSON) " + text, params)
            plan = cur.fetchone()[0]
            return int(plan[0]["Plan"]["Plan Rows"])

    def close(self) -> None:
        with self._lock:
            for conn in self._all:
                conn.close()
            self._all.clear()


def open_backend(url: str, *, timeout_s: float = 5.0) -> Backend:
    """``sqlite:///path/to/file.db`` or a libpq URL ``postgresql://…`` (as the store's)."""
    if url.startswith(("postgresql://", "postgres://")):
        return PostgresBackend(url, timeout_s=timeout_s)
    if url.startswith("sqlite:///"):
        return SQLiteBackend(url.removeprefix("sqlite:///"), timeout_s=timeout_s)
    raise ValueError(f"storage url {url!r}: expected sqlite:///… or postgresql://…")
