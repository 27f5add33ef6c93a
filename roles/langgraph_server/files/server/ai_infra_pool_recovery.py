"""Lets Aegra's checkpoint pool get over a PostgreSQL restart within seconds.

Aegra makes one psycopg_pool.AsyncConnectionPool for LangGraph's checkpointer and store,
with `check=AsyncConnectionPool.check_connection`: each connection is tested as it is
handed out. After a failed test psycopg_pool waits before testing the next idle
connection, doubling the wait each time (1, 2, 4, 8, 16 s: its reconnection backoff).
A PostgreSQL restart breaks every idle connection at once, so with the pool's five idle
connections a run's next checkpoint write waited 31 s, past the pool's 30 s timeout, and
the run ended `error` (measured in molecule/langgraph_server: PostgreSQL was back after
0.5 s). Here the first failed test also has the whole pool tested at once
(`AsyncConnectionPool.check()`: broken connections replaced, working ones kept), so the
caller finds a new connection after its first 1 s pause.

Imported by ai_infra_aegra before Aegra makes its pool; a no-op without psycopg_pool.
"""

import asyncio

try:
    from psycopg_pool import AsyncConnectionPool
except ImportError:  # an engine without psycopg_pool: nothing to fix
    AsyncConnectionPool = None

# The checks in flight (a task with no reference may be collected before it ends).
_CHECKS = set()


async def _check_pool(pool):
    try:
        await pool.check()
    # A closed pool (the server stopping) has nothing to recover.
    except Exception:  # pylint: disable=broad-except
        pass
    finally:
        pool.ai_infra_checking = False


def _recovering(check_connection):
    async def check_connection_or_check_pool(conn):
        try:
            await check_connection(conn)
        except Exception:
            # Set while a connection is handed out; None inside pool.check() itself, whose
            # own tests come through here too.
            pool = getattr(conn, "_pool", None)
            if pool is not None and not getattr(pool, "ai_infra_checking", False):
                pool.ai_infra_checking = True
                task = asyncio.get_running_loop().create_task(_check_pool(pool))
                _CHECKS.add(task)
                task.add_done_callback(_CHECKS.discard)
            raise

    check_connection_or_check_pool.ai_infra_recovering = True
    return check_connection_or_check_pool


def install():
    """Wrap AsyncConnectionPool.check_connection once (Aegra passes it as `check`)."""
    if AsyncConnectionPool is None or getattr(AsyncConnectionPool.check_connection, "ai_infra_recovering", False):
        return
    AsyncConnectionPool.check_connection = staticmethod(_recovering(AsyncConnectionPool.check_connection))
