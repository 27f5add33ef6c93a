"""Creates or migrates the LangGraph checkpoint and store tables with the official
langgraph-checkpoint-postgres setup(). Prints {"changed": bool}: whether a migration ran.
The connection string comes from LANGGRAPH_SCHEMA_DSN (never from the command line)."""

import json
import os

import psycopg
from langgraph.checkpoint.postgres import PostgresSaver
from langgraph.store.postgres import PostgresStore

MIGRATION_TABLES = ("checkpoint_migrations", "store_migrations")


def applied(dsn):
    counts = {}
    with psycopg.connect(dsn) as conn:
        for table in MIGRATION_TABLES:
            exists = conn.execute("SELECT to_regclass(%s) IS NOT NULL", (table,)).fetchone()[0]
            counts[table] = conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0] if exists else 0
    return counts


def main():
    dsn = os.environ["LANGGRAPH_SCHEMA_DSN"]
    before = applied(dsn)
    with PostgresSaver.from_conn_string(dsn) as saver:
        saver.setup()
    with PostgresStore.from_conn_string(dsn) as store:
        store.setup()
    print(json.dumps({"changed": applied(dsn) != before}))


if __name__ == "__main__":
    main()
