"""The agent server's pool recovery (roles/langgraph_server/files/server/
ai_infra_pool_recovery.py): a connection that fails its check as it is handed out has the
whole pool checked once, in the background; the failure still reaches psycopg_pool.
molecule/langgraph_server restarts a real PostgreSQL under runs in flight."""

from __future__ import annotations

import asyncio
import os
import sys

import pytest

SHIM_DIR = os.path.join(os.path.dirname(__file__), "..", "..", "..", "roles", "langgraph_server", "files", "server")
sys.path.insert(0, os.path.abspath(SHIM_DIR))

import ai_infra_pool_recovery  # noqa: E402  pylint: disable=wrong-import-position


class FakePool:
    def __init__(self):
        self.checks = 0

    async def check(self):
        self.checks += 1
        await asyncio.sleep(0)


class FakeConnection:
    def __init__(self, pool, broken):
        self._pool = pool
        self.broken = broken


async def check_connection(conn):
    if conn.broken:
        raise OSError("consuming input failed: terminating connection due to administrator command")


def run(coroutine):
    return asyncio.new_event_loop().run_until_complete(coroutine)


def test_a_working_connection_passes_and_checks_nothing_else():
    pool = FakePool()
    check = ai_infra_pool_recovery._recovering(check_connection)  # pylint: disable=protected-access

    async def scenario():
        await check(FakeConnection(pool, broken=False))
        await asyncio.sleep(0.01)

    run(scenario())
    assert pool.checks == 0


def test_a_broken_connection_fails_and_has_the_pool_checked_once():
    pool = FakePool()
    check = ai_infra_pool_recovery._recovering(check_connection)  # pylint: disable=protected-access

    async def scenario():
        for attempt in range(3):  # the next idle connections, broken too, while the check runs
            with pytest.raises(OSError):
                await check(FakeConnection(pool, broken=True))
            assert pool.ai_infra_checking, attempt  # one check in flight for all three
        await asyncio.sleep(0.01)
        assert not getattr(pool, "ai_infra_checking")
        with pytest.raises(OSError):  # a later failure checks the pool again
            await check(FakeConnection(pool, broken=True))
        await asyncio.sleep(0.01)

    run(scenario())
    assert pool.checks == 2


def test_the_pools_own_checks_do_not_check_it_again():
    """Inside pool.check() the connections are the pool's idle ones (no `_pool`)."""
    check = ai_infra_pool_recovery._recovering(check_connection)  # pylint: disable=protected-access

    async def scenario():
        with pytest.raises(OSError):
            await check(FakeConnection(None, broken=True))

    run(scenario())


def test_install_wraps_once():
    class Pool:
        check_connection = staticmethod(check_connection)

    original = ai_infra_pool_recovery.AsyncConnectionPool
    ai_infra_pool_recovery.AsyncConnectionPool = Pool
    try:
        ai_infra_pool_recovery.install()
        wrapped = Pool.check_connection
        ai_infra_pool_recovery.install()
        assert Pool.check_connection is wrapped
        assert wrapped.ai_infra_recovering
    finally:
        ai_infra_pool_recovery.AsyncConnectionPool = original
