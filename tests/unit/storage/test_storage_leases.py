"""`Storage.leases`: each backend opens its own leases (SPEC section 6, shared controllers):
the database's locks on PostgreSQL and MariaDB, this process's alone on files and SQLite."""

from __future__ import annotations

from fabrica.storage import LocalLeases, SQLLeases, with_timeout


async def test_each_backend_opens_its_leases(storage):
    leases = storage.leases("device_api")
    try:
        if storage.name in ("postgresql", "mysql", "mariadb"):
            assert isinstance(leases, SQLLeases)
            assert leases.namespace.startswith("device_api@")
        else:
            assert isinstance(leases, LocalLeases)
        assert await leases.acquire("outbox:relay")
        assert "outbox:relay" in leases.held
    finally:
        await leases.close()


async def test_database_leases_exclude_another_holder_of_the_same_service(storage):
    """Two processes' leases (here: two connections) on one database: one holder at a
    time within a service, none shared across services."""
    if storage.name not in ("postgresql", "mysql", "mariadb"):
        return
    first, second = storage.leases("svc-a"), storage.leases("svc-a")
    other = storage.leases("svc-b")
    try:
        assert await first.acquire("lock")
        assert not await second.acquire("lock")
        assert await other.acquire("lock")  # another service's lease of that name
    finally:
        for leases in (first, second, other):
            await leases.close()


async def test_the_timeout_wrapper_forwards_leases(storage):
    bounded = with_timeout(storage, 5.0)
    leases = bounded.leases("device_api")
    try:
        assert type(leases) is type(storage.leases("device_api"))
    finally:
        await leases.close()
