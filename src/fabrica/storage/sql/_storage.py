"""SQL storage: SQLite, PostgreSQL and MariaDB/MySQL through SQLAlchemy 2.

The schema is in `_schema` (one row per resource, its labels, spec snapshots, and a
revision counter), the operations in `_ops`, the SQL of selectors and the meaning of
errors in `_query`, the alembic migrations in `_migrate`. How the `Storage`
guarantees are kept:

- create is one INSERT guarded by the primary key (collection, uid) and the unique
  (collection, name); a violation is looked up to say which one (`AlreadyExists.field`);
- update is compare-and-swap, ``UPDATE ... WHERE uid = :uid AND resource_version =
  :expected``: no row changed means `NotFound` or `Conflict`, told apart by a read;
  delete locks the row (``SELECT ... FOR UPDATE``), compares and deletes; labels and spec
  snapshots go by ON DELETE CASCADE;
- each write is one transaction: document, labels and snapshot commit together or not at
  all. MySQL runs at READ COMMITTED, as PostgreSQL does, so writers lock rows, not gaps;
- resourceVersions are revisions of the collection: on PostgreSQL and MariaDB from a
  sequence of its own, so its writers run and commit in parallel, on SQLite and MySQL from
  its row in ``fabrica_collections``, locked from a write's last statements until it
  commits. Each write records its change in ``fabrica_changes`` in its transaction, and
  readers never pass a revision whose write may still commit, so the change log is
  gap-free (see `_changes`). A document is stored without its version, which is in the
  row's ``resource_version`` column. A collection's first write creates its sequence: the
  database user needs the right to create sequences in its schema;
- lookups by uid use the primary key whatever the statistics say: on PostgreSQL, schema
  0005 fixes the statistics that decide it (see that migration).

PostgreSQL (asyncpg) and MySQL (aiomysql) run on SQLAlchemy's async engine, reads in
autocommit on PostgreSQL (no BEGIN/ROLLBACK round trips). A lost connection, a database
restart or a pool timeout raises `Unavailable` (503 with Retry-After); a pooled connection
idle for more than 2 seconds is pinged before use and replaced if dead (`_ping_when_idle`),
so the service recovers by itself once the database is back.

SQLite's driver is synchronous (aiosqlite is a thread per connection, with a hop for every
call), so SQLite runs on SQLAlchemy's synchronous engine with one worker-thread hop per
operation (measured here: twice the creates per second of aiosqlite). It runs in WAL mode
(readers never wait for the writer) with ``synchronous=FULL`` (a commit is on disk) and a
busy timeout for other processes; in this process writers queue on an asyncio lock and open
their transactions with ``BEGIN IMMEDIATE``, so two writers never deadlock upgrading locks.
"""

from __future__ import annotations

import asyncio
import builtins
import sqlite3
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager, nullcontext
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine, create_engine, event, select
from sqlalchemy import exc as sa_exc
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from ...resource import Selector, is_dns1123_subdomain, is_uid
from .._base import (
    DEFAULT_CHANGE_HISTORY,
    AlreadyExists,
    Document,
    Invalid,
    NotFound,
    StorageError,
    StoredChange,
    Unavailable,
    UniqueKeys,
)
from .._bulk import BatchMode, BulkItem, SnapshotWriter
from .._checks import check_collection, check_new, check_update, is_version_id
from .._leases import Leases, LocalLeases
from .._outbox import Outbox, OutboxEntry, OutboxMessage, OutboxStats
from . import _bulk as bulk
from . import _changes as change_log
from . import _migrate as migrations
from . import _ops as ops
from ._query import is_deadlock, is_unavailable, list_query
from ._schema import versions
from ._url import DatabaseURL, parse_database_url

__all__ = ["SQLStorage"]

T = TypeVar("T")

_SQLITE_BUSY_TIMEOUT_MS = 10_000
_WRITE = "fabrica_write"
# As many connections as SQLAlchemy's default allows at most (5 + 10 overflow), all kept:
# overflow connections are closed as soon as they are returned, so a service whose
# concurrency exceeds 5 (a reconciler's 32 creates in flight) used to connect and
# disconnect for almost every operation.
_POOL_SIZE = 15
_PING_AFTER_IDLE = 2.0  # seconds a pooled connection may sit idle and be used unpinged
_IDLE_SINCE = "fabrica_idle_since"
_WRITE_ATTEMPTS = 3  # a write picked as a deadlock victim runs again (see `_write`)
_IN_FLIGHT_POLL_SECONDS = 0.005  # `latest` waiting for a writer in flight below a commit


class SQLStorage:
    """Documents in a SQL database at `url` (see `parse_database_url` for the forms).

    The schema must be created or migrated before use: `prepare_schema` creates it in an
    empty database, `migrate` (or ``python -m PKG.server migrate``) also upgrades, and
    `check_schema` says whether it is current. `engine_options` go to SQLAlchemy's
    ``create_async_engine`` / ``create_engine`` (``pool_size=...``, ``echo=True``...).
    `change_history`: changes kept per collection (older ones are compacted away).
    """

    def __init__(self, url: str, *, change_history: int = DEFAULT_CHANGE_HISTORY,
                 **engine_options: Any) -> None:
        self.database: DatabaseURL = parse_database_url(url)
        self.change_history = change_history
        #: ``sqlite``, ``postgresql``, ``mysql`` or ``mariadb``.
        self.name = self.database.backend
        self.engine: AsyncEngine | Engine
        self._write_lock: asyncio.Lock | None = None
        self._collections: set[str] = set()  # known to have their change-log row
        self._settled: dict[str, int] = {}  # a revision known settled, per collection
        # The fields each collection keeps in the field index (`prepare_fields`).
        self._indexed: dict[str, tuple[str, ...]] = {}
        if self.database.is_sqlite:
            self.engine = _sqlite_engine(self.database, engine_options)
            self._write_lock = asyncio.Lock()
        else:
            self.engine = self._reader = _async_engine(self.database, engine_options)
            if self.name == "postgresql":  # reads without BEGIN/ROLLBACK round trips
                self._reader = self.engine.execution_options(isolation_level="AUTOCOMMIT")

    @property
    def url(self) -> str:
        """The database URL with its password hidden, for logs."""
        return self.database.redacted()

    def __repr__(self) -> str:
        return f"SQLStorage({self.url!r})"

    # -- schema ----------------------------------------------------------------------------

    def leases(self, namespace: str) -> Leases:
        """The database's leases (PostgreSQL, MariaDB/MySQL), or this process's alone
        (SQLite). Locks are per database server (PostgreSQL: per database), so the
        namespace names the service and where it keeps its data (a PostgreSQL schema is in
        the URL's options)."""
        if self.database.is_sqlite or not isinstance(self.engine, AsyncEngine):
            return LocalLeases()
        from ._leases import SQLLeases

        where = f"{self.database.redacted()} {self.database.connect_args.get('server_settings')}"
        return SQLLeases(self.engine, f"{namespace}@{where}")

    async def migrate(self, target: str = "head") -> tuple[str | None, str]:
        """Create or upgrade the schema; return the revisions before and after."""
        return await self._run(migrations.upgrade, target, write=True)

    async def downgrade(self, target: str) -> None:
        """Step the schema back to `target` ("base": no fabrica tables at all)."""
        await self._run(migrations.downgrade, target, write=True)

    async def schema_revision(self) -> str | None:
        """The database's schema revision; None when it has no fabrica schema."""
        return await self._run(migrations.current_revision)

    async def check_schema(
        self, migrate_command: str = "python -m PKG.server migrate"
    ) -> None:
        """Raise `MigrationRequired`, saying to run `migrate_command`, unless the schema is
        the one this release needs."""
        current = await self.schema_revision()
        migrations.require_up_to_date(current, f"the database {self.url}", migrate_command)

    async def prepare_schema(
        self, migrate_command: str = "python -m PKG.server migrate", *, upgrade: bool = False
    ) -> tuple[str | None, str] | None:
        """Make the schema ready to serve: create it in a database that has none; upgrade
        an older one only when `upgrade`, else raise `MigrationRequired` saying to run
        `migrate_command` (an upgrade is an operator's decision: back up first).

        Returns the revisions before and after when it changed the schema, else None.
        """
        current = await self.schema_revision()
        if current == migrations.head_revision():
            return None
        if current is None or upgrade:
            return await self.migrate()  # serialised by a database lock against others
        migrations.require_up_to_date(current, f"the database {self.url}", migrate_command)
        return None  # pragma: no cover (require_up_to_date raised)

    async def close(self) -> None:
        """Close pooled connections; the storage stays usable and reconnects on demand."""
        if isinstance(self.engine, AsyncEngine):
            await self.engine.dispose()
        else:
            await asyncio.to_thread(self.engine.dispose)

    # -- reads -----------------------------------------------------------------------------

    async def get(self, collection: str, uid: str) -> Document:
        check_collection(collection)
        if not is_uid(uid):
            raise NotFound(collection, uid)
        found = await self._run(ops.get_resource, collection, uid)
        if found is None:
            raise NotFound(collection, uid)
        return found

    async def get_by_name(self, collection: str, name: str) -> Document:
        check_collection(collection)
        if not is_dns1123_subdomain(name):
            raise NotFound(collection, name)
        found = await self._run(ops.get_resource_by_name, collection, name)
        if found is None:
            raise NotFound(collection, name)
        return found

    async def list_versions(self, collection: str, uid: str) -> list[Document]:
        check_collection(collection)
        found = await self._run(ops.list_versions, collection, uid)
        if found is None:
            raise NotFound(collection, uid)
        return found

    async def get_version(self, collection: str, uid: str, version_id: str) -> Document:
        check_collection(collection)
        if not is_version_id(version_id):
            raise NotFound(collection, f"{uid}/versions/{version_id}")
        found = await self._run(ops.fetch_one, select(versions.c.document).where(
            versions.c.collection == collection, versions.c.uid == uid,
            versions.c.version_id == version_id))
        if found is None:
            raise NotFound(collection, f"{uid}/versions/{version_id}")
        return found

    async def list(
        self,
        collection: str,
        *,
        selector: Selector | None = None,
        limit: int | None = None,
        after: str | None = None,
    ) -> list[Document]:
        check_collection(collection)
        for field in selector.fields if selector else ():
            if field.path != "metadata.name" and field.path not in self._indexed.get(
                    collection, ()):
                raise Invalid(f"{collection}: {field.path} is not in the field index "
                              "(prepare_fields)")
        return await self._run(ops.list_resources,
                               list_query(collection, selector, limit, after))

    # -- writes ----------------------------------------------------------------------------

    async def create(
        self, collection: str, doc: Document, snapshot: Document | None = None,
        *, outbox: Outbox | None = None, unique: UniqueKeys | None = None,
    ) -> Document:
        check_collection(collection)
        check_new(doc)
        meta = doc["metadata"]
        for attempt in range(_WRITE_ATTEMPTS):
            try:
                return await self._write(collection, ops.create, collection, doc, snapshot,
                                         outbox, self.change_history, unique,
                                         self._indexed.get(collection, ()))
            except sa_exc.IntegrityError:  # which one: ask, now the transaction is over
                if await self._run(ops.uid_taken, collection, meta["uid"]):
                    raise AlreadyExists(collection, "uid", meta["uid"]) from None
                if not unique or await self._run(ops.get_resource_by_name, collection,
                                                 meta["name"]) is not None:
                    raise AlreadyExists(collection, "name", meta["name"]) from None
                await self._refuse_held(collection, meta["uid"], unique, attempt)
        raise AssertionError("unreachable")

    async def _refuse_held(self, collection: str, uid: str, unique: UniqueKeys,
                           attempt: int) -> None:
        """After a write refused for a unique key: `AlreadyExists` naming its holder. When
        nobody holds it any more (its holder was deleted meanwhile), the write may run
        again, a few times."""
        held = await self._run(ops.unique_holder, collection, uid, unique)
        if held is not None:
            constraint, key, holder = held
            raise AlreadyExists(collection, constraint, key, holder)
        if attempt + 1 >= _WRITE_ATTEMPTS:
            raise Unavailable(f"{collection}: a unique value of {uid} was taken and let go "
                              "again by others while it was written; retry")

    async def prepare_unique(self, collection: str, constraints: Sequence[str]) -> None:
        check_collection(collection)
        await self._run(ops.prepare_unique, collection, list(constraints), write=True)

    async def check_unique(self, collection: str, uid: str, unique: UniqueKeys) -> None:
        check_collection(collection)
        held = await self._run(ops.unique_holder, collection, uid, dict(unique))
        if held is not None:
            constraint, key, holder = held
            raise AlreadyExists(collection, constraint, key, holder)

    async def prepare_fields(self, collection: str, paths: Sequence[str]) -> None:
        """Keep `paths` (``status.phase``, ``spec.mac``...) of the collection in the field
        index from now on, building their rows for the stored resources when new; rows of
        fields no longer named are dropped. Lists by these fields read the index."""
        check_collection(collection)
        wanted = tuple(dict.fromkeys(path for path in paths if path != "metadata.name"))
        for attempt in range(_WRITE_ATTEMPTS):
            try:
                await self._run(ops.prepare_fields, collection, list(wanted), write=True)
                break
            except sa_exc.IntegrityError:
                # Another process built the same field at the same time (several workers'
                # first start): its rows are there once it commits; look again.
                if attempt + 1 == _WRITE_ATTEMPTS:
                    raise
        self._indexed[collection] = wanted

    async def update(
        self,
        collection: str,
        doc: Document,
        expected_version: str,
        snapshot: Document | None = None,
        *,
        outbox: Outbox | None = None,
        unique: UniqueKeys | None = None,
    ) -> Document:
        check_collection(collection)
        meta = doc["metadata"]
        check_update(doc)
        if not is_uid(meta["uid"]):
            raise NotFound(collection, meta["uid"])
        for attempt in range(_WRITE_ATTEMPTS):
            try:
                return await self._write(collection, ops.update_resource, collection, doc,
                                         expected_version, snapshot, outbox,
                                         self.change_history, unique,
                                         self._indexed.get(collection, ()))
            except sa_exc.IntegrityError:
                if not unique:
                    raise
                await self._refuse_held(collection, meta["uid"], unique, attempt)
        raise AssertionError("unreachable")

    async def delete(
        self, collection: str, uid: str, expected_version: str | None = None,
        *, outbox: Outbox | None = None,
    ) -> Document:
        check_collection(collection)
        if not is_uid(uid):
            raise NotFound(collection, uid)
        return await self._write(collection, ops.delete_resource, collection, uid,
                                 expected_version, outbox, self.change_history)

    # -- the change log (see _changes) ---------------------------------------------------

    async def latest(self, collection: str) -> int:
        check_collection(collection)
        settled, in_flight = await self._settled_now(collection)
        if in_flight:
            return await self._wait_for_writers(collection, settled)
        return settled

    async def _settled_now(self, collection: str) -> tuple[int, bool]:
        settled, in_flight = await self._run(change_log.latest, collection,
                                             self._settled.get(collection, 0))
        self._know_settled(collection, settled)
        return settled, in_flight

    async def _wait_for_writers(self, collection: str, settled: int) -> int:
        """Revisions come from a sequence, so a write may commit while one numbered below
        it is still in flight; a read after the later one was acknowledged must show it.
        Wait until every number up to the newest committed one is settled (writers in
        flight are live: a dead one's number is settled at once)."""
        target = await self._run(change_log.newest, collection)
        while settled < target:
            await asyncio.sleep(_IN_FLIGHT_POLL_SECONDS)
            settled = (await self._settled_now(collection))[0]
        return settled

    async def changes(
        self, collection: str, after: int, limit: int = 1000
    ) -> builtins.list[StoredChange]:
        check_collection(collection)
        found, settled = await self._run(change_log.read_changes, collection, after, limit,
                                         self._settled.get(collection, 0))
        self._know_settled(collection, settled)
        return found

    def _know_settled(self, collection: str, settled: int) -> None:
        """Remember the highest revision known settled: the next walk starts there."""
        if settled > self._settled.get(collection, 0):
            self._settled[collection] = settled

    async def horizon(self, collection: str) -> int:
        check_collection(collection)
        return await self._run(change_log.horizon, collection)

    async def compact(self, collection: str, keep: int) -> None:
        check_collection(collection)
        await self._run(change_log.compact, collection, keep, write=True)

    # -- the outbox (see _outbox) ------------------------------------------------------------

    #: Writes take ``outbox=``: their events commit with them.
    supports_outbox = True

    async def outbox_append(self, resource: str, messages: Sequence[OutboxMessage]) -> None:
        """Record `messages` that belong to no write (a reconciler's own events)."""
        if messages:
            await self._run(ops.append_outbox, resource, messages, write=True)

    async def outbox_pending(self, limit: int = 500) -> builtins.list[OutboxEntry]:
        """The oldest `limit` recorded messages, in ``seq`` order."""
        return await self._run(ops.outbox_pending, limit)

    async def outbox_done(self, seqs: Sequence[int]) -> None:
        """Forget relayed messages."""
        if seqs:
            await self._run(ops.outbox_done, list(seqs), write=True)

    async def outbox_stats(self) -> OutboxStats:
        return await self._run(ops.outbox_stats)

    async def delete_version(self, collection: str, uid: str, version_id: str) -> None:
        check_collection(collection)
        if not is_version_id(version_id):
            raise NotFound(collection, f"{uid}/versions/{version_id}")
        await self._run(ops.delete_version, collection, uid, version_id, write=True)

    # -- export and import (see _bulk) -------------------------------------------------------

    async def export_snapshot(self, collections: Sequence[str], writer: SnapshotWriter
                              ) -> None:
        """Every document of `collections`, to `writer`, from one read transaction."""
        for collection in collections:
            check_collection(collection)
        async with self._translated():
            if isinstance(self.engine, Engine):
                await asyncio.to_thread(_snapshot_sqlite, self.engine, list(collections),
                                        writer)
                return
            snapshot = self.engine.execution_options(isolation_level="REPEATABLE READ")
            async with snapshot.connect() as conn, conn.begin():
                await conn.run_sync(bulk.export_snapshot, list(collections), writer)

    async def write_batch(self, collection: str, items: Sequence[BulkItem], *,
                          mode: BatchMode, remove: Sequence[str] = (),
                          outbox: Outbox | None = None) -> builtins.list[Document]:
        """`items` and the removal of `remove` in one transaction (see `_bulk`)."""
        check_collection(collection)
        for item in items:
            (check_update if mode == "update" else check_new)(item.document)
        try:
            return await self._write(collection, bulk.write_batch, collection, list(items),
                                     mode, list(remove), outbox, self.change_history,
                                     self._indexed.get(collection, ()))
        except sa_exc.IntegrityError:  # which one: ask, now the transaction is over
            metas = [item.document["metadata"] for item in items]
            found = await self._run(bulk.taken, collection, [m["uid"] for m in metas],
                                    [m["name"] for m in metas])
            if found is not None:
                raise AlreadyExists(collection, *found) from None
            for item in items:  # else a unique key: whose, and who holds it
                if not item.unique:
                    continue
                held = await self._run(ops.unique_holder, collection,
                                       item.document["metadata"]["uid"], item.unique)
                if held is not None:
                    raise AlreadyExists(collection, *held) from None
            raise

    async def get_many(self, collection: str, uids: Sequence[str]
                       ) -> builtins.dict[str, Document]:
        check_collection(collection)
        wanted = sorted({uid for uid in uids if is_uid(uid)})
        return await self._run(bulk.get_many, collection, wanted) if wanted else {}

    # -- running operations ----------------------------------------------------------------

    async def _write(self, collection: str, operation: Callable[..., T], *args: Any) -> T:
        """A write, after making sure its collection has its row and sequence (once per
        storage: a write that finds none, deleted since, rolls back and runs again).

        A write runs again, a few times, when the database rolled it back whole for a
        reason that says nothing about the write: a reader settled the revision it drew
        before it logged it (`RevisionTaken`, see `_changes`), or InnoDB picked it as
        a deadlock victim (e.g. creates of one name queued behind one that rolls back all
        upgrade their shared locks at once)."""
        if collection not in self._collections:
            await self._run(ops.ensure_collection, collection, write=True)
            self._collections.add(collection)
        for attempt in range(_WRITE_ATTEMPTS):
            try:
                return await self._run(operation, *args, write=True)
            except change_log.NoCollectionRow:
                await self._run(ops.ensure_collection, collection, write=True)
            except change_log.RevisionTaken:
                pass  # a reader settled the number first: draw another
            except Unavailable as exc:
                if attempt + 1 == _WRITE_ATTEMPTS or not is_deadlock(exc):
                    raise
        return await self._run(operation, *args, write=True)

    async def _run(self, operation: Callable[..., T], *args: Any, write: bool = False) -> T:
        """`operation(connection, *args)` in one transaction (committed when `write`)."""
        async with self._write_lock if write and self._write_lock else nullcontext():
            async with self._translated():
                if isinstance(self.engine, Engine):
                    return await asyncio.to_thread(_run_sync, self.engine, operation, write,
                                                   *args)
                if write:
                    async with self.engine.begin() as conn:
                        return await conn.run_sync(operation, *args)
                async with self._reader.connect() as conn:
                    return await conn.run_sync(operation, *args)

    @asynccontextmanager
    async def _translated(self) -> AsyncIterator[None]:
        try:
            yield
        except (StorageError, ValueError, sa_exc.IntegrityError):
            raise
        except Exception as exc:
            if not is_unavailable(exc):
                raise
            reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()
            raise Unavailable(
                f"{self.name} database unavailable: {type(exc).__name__}: "
                f"{reason[0] if reason else 'no detail'}"
            ) from exc


def _run_sync(engine: Engine, operation: Callable[..., T], write: bool, *args: Any) -> T:
    if write:
        with engine.execution_options(**{_WRITE: True}).begin() as conn:
            return operation(conn, *args)
    with engine.connect() as conn:
        return operation(conn, *args)


def _snapshot_sqlite(engine: Engine, collections: list[str], writer: SnapshotWriter) -> None:
    """SQLite: an explicit read transaction (the driver runs in autocommit), whose first
    read fixes the state every later read of it sees."""
    with engine.connect() as conn:
        conn.exec_driver_sql("BEGIN")
        try:
            bulk.export_snapshot(conn, collections, writer)
        finally:
            conn.exec_driver_sql("COMMIT")


def _async_engine(database: DatabaseURL, options: Mapping[str, Any]) -> AsyncEngine:
    settings: dict[str, Any] = {"connect_args": dict(database.connect_args),
                                "pool_recycle": 1800, "pool_size": _POOL_SIZE,
                                "max_overflow": 0}
    if database.backend in ("mysql", "mariadb"):
        settings["isolation_level"] = "READ COMMITTED"
    engine = create_async_engine(database.url, **{**settings, **options})
    if "pool_pre_ping" not in options:
        _ping_when_idle(engine.sync_engine)
    return engine


def _ping_when_idle(engine: Engine) -> None:
    """Ping a pooled connection before use only when it sat idle for a while.

    SQLAlchemy's ``pool_pre_ping`` pings at every checkout: a round trip per operation, a
    sixth of a busy server's time. A connection returned moments ago is alive as far as
    a ping could tell; one idle longer may have died with a database restart, and is pinged
    and replaced. A connection that dies while in use fails its operation (`Unavailable`),
    and SQLAlchemy then recycles every connection older than that failure.
    """
    @event.listens_for(engine, "checkin")
    def checkin(dbapi_connection: Any, record: Any) -> None:
        record.info[_IDLE_SINCE] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def checkout(dbapi_connection: Any, record: Any, proxy: Any) -> None:
        since = record.info.pop(_IDLE_SINCE, None)
        if since is None or time.monotonic() - since < _PING_AFTER_IDLE:
            return  # new, or in use a moment ago
        try:
            alive = engine.dialect.do_ping(dbapi_connection)
        except Exception as exc:
            raise sa_exc.DisconnectionError(f"pooled connection is dead: {exc}") from exc
        if not alive:
            raise sa_exc.DisconnectionError("pooled connection is dead")


def _sqlite_engine(database: DatabaseURL, options: Mapping[str, Any]) -> Engine:
    path = database.url.database
    assert path
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(database.url,
                           **{"connect_args": {"check_same_thread": False}, **options})
    event.listen(engine, "connect", _sqlite_connect)
    event.listen(engine, "begin", _sqlite_begin)
    return engine


def _sqlite_connect(dbapi_connection: sqlite3.Connection, _record: Any) -> None:
    # Let us open transactions ourselves (the sqlite3 module's implicit BEGIN is deferred).
    dbapi_connection.isolation_level = None
    for pragma in (f"busy_timeout={_SQLITE_BUSY_TIMEOUT_MS}", "foreign_keys=ON",
                   "synchronous=FULL"):
        dbapi_connection.execute(f"PRAGMA {pragma}")
    _enable_wal(dbapi_connection)


def _enable_wal(connection: sqlite3.Connection) -> None:
    """WAL mode stays with the file once set. Setting it on a new database takes an
    exclusive lock, and SQLite answers "locked" at once, busy timeout or not, while another
    connection writes (processes starting together): so wait here."""
    deadline = time.monotonic() + _SQLITE_BUSY_TIMEOUT_MS / 1000
    while True:
        try:
            if connection.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
                connection.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.01)  # in a worker thread, never on the event loop


def _sqlite_begin(conn: Connection) -> None:
    """Writes take the write lock up front; reads are single autocommit statements."""
    if conn.get_execution_options().get(_WRITE):
        conn.exec_driver_sql("BEGIN IMMEDIATE")
