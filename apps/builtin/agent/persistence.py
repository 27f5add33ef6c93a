"""Checkpointer and store for langgraph.json's `checkpointer.path` and `store.path`.

The server enters each context manager once at start and keeps what it yields: an
AsyncPostgresSaver and an AsyncPostgresStore, each on its own connection pool. The graphs
are compiled without a checkpointer; the server gives them this one.

The connection string comes from LANGGRAPH_APP_POSTGRES_URI (the role's 0600 env file):
`langgraph dev` overwrites DATABASE_URI with its own.
"""

import contextlib
import os

from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver
from langgraph.store.postgres.aio import AsyncPostgresStore
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

# What the Postgres checkpointer and store need on every connection.
CONNECTION_KWARGS = {"autocommit": True, "prepare_threshold": 0, "row_factory": dict_row}


@contextlib.asynccontextmanager
async def _pool(max_size_variable):
    pool = AsyncConnectionPool(
        os.environ["LANGGRAPH_APP_POSTGRES_URI"],
        min_size=1,
        max_size=int(os.environ.get(max_size_variable, "10")),
        kwargs=CONNECTION_KWARGS,
        open=False,
    )
    await pool.open(wait=True, timeout=30)
    try:
        yield pool
    finally:
        await pool.close()


@contextlib.asynccontextmanager
async def checkpointer():
    async with _pool("LANGGRAPH_APP_CHECKPOINTER_POOL_SIZE") as pool:
        saver = AsyncPostgresSaver(pool)
        # Idempotent migrations; the state role has usually run them already.
        await saver.setup()
        yield saver


@contextlib.asynccontextmanager
async def store():
    async with _pool("LANGGRAPH_APP_STORE_POOL_SIZE") as pool:
        postgres_store = AsyncPostgresStore(pool)
        await postgres_store.setup()
        yield postgres_store
