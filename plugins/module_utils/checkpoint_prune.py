# -*- coding: utf-8 -*-
# Copyright: ai_infra platform team
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""Pruning of LangGraph checkpoints in PostgreSQL: the one implementation.

Used by the checkpoint_prune module (imported as module_utils) and by the prune timer
on the state host (the postgresql role installs this very file and runs it as a script),
so both remove exactly the same rows.

A thread's age is the time of its newest checkpoint as LangGraph records it
(checkpoint->>'ts', ISO 8601), not the insertion time, so restored or migrated data ages
correctly. A stale thread is removed from checkpoint_writes, checkpoint_blobs and
checkpoints (checkpoint_blobs has no checkpoint_id, so deleting by thread is the only
way not to leave blobs behind). Deletion runs in batches of threads, one short
transaction per batch, and each batch checks again that its threads are still stale, so
a thread resumed after the candidates were listed is kept.

When the database also holds the agent server's own tables (Aegra: `thread`, whose
`runs`, `crons` and `thread_ttl` rows go with it by ON DELETE CASCADE), a stale thread's
row goes in the same transaction as its checkpoints, and so does a thread row that never
got a checkpoint once it is older than the cutoff (`updated_at`). A thread with a run
pending or running is never pruned, however old: a run the queue has not finished must
find its thread and checkpoints.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

TABLES = ("checkpoint_writes", "checkpoint_blobs", "checkpoints")
# The agent server's thread table (Aegra), pruned with the checkpoints when it exists.
ENGINE_THREADS = "thread"
ENGINE_BUSY_STATUSES = ["pending", "running"]

# Threads whose newest checkpoint is older than the cutoff, oldest first.
_STALE_THREADS = """
SELECT thread_id FROM checkpoints
GROUP BY thread_id
HAVING max((checkpoint->>'ts')::timestamptz) < %(cutoff)s
ORDER BY max((checkpoint->>'ts')::timestamptz)
"""

_STILL_STALE = """
SELECT thread_id FROM checkpoints
WHERE thread_id = ANY(%(threads)s)
GROUP BY thread_id
HAVING max((checkpoint->>'ts')::timestamptz) < %(cutoff)s
"""

# With the engine's tables: threads whose newest checkpoint is older than the cutoff, or
# that have none and whose row was last updated before it; never one with a run pending
# or running, nor one whose row was updated since the cutoff.
_ENGINE_STALE_THREADS = """
SELECT thread_id FROM (
    SELECT thread_id, max((checkpoint->>'ts')::timestamptz) AS last FROM checkpoints
    WHERE %(only)s::text[] IS NULL OR thread_id = ANY(%(only)s)
    GROUP BY thread_id
    UNION ALL
    SELECT t.thread_id, t.updated_at FROM thread t
    WHERE (%(only)s::text[] IS NULL OR t.thread_id = ANY(%(only)s))
      AND NOT EXISTS (SELECT 1 FROM checkpoints c WHERE c.thread_id = t.thread_id)
) AS candidates
WHERE last < %(cutoff)s
  AND NOT EXISTS (SELECT 1 FROM thread t WHERE t.thread_id = candidates.thread_id AND t.updated_at >= %(cutoff)s)
  AND NOT EXISTS (SELECT 1 FROM runs r WHERE r.thread_id = candidates.thread_id AND r.status = ANY(%(busy)s))
ORDER BY last
"""


class PruneError(Exception):
    """A failure with a message fit for an operator (no credentials, no traceback)."""


def check_schema(cursor):
    """Raise PruneError unless the three checkpoint tables exist."""
    cursor.execute(
        "SELECT t FROM unnest(%s::text[]) AS t WHERE to_regclass(t) IS NULL", (list(TABLES),)
    )
    missing = [row[0] for row in cursor.fetchall()]
    if missing:
        raise PruneError(
            "table(s) %s missing: this database has no LangGraph checkpoint schema "
            "(run the langgraph-checkpoint-postgres setup, or check the database name)"
            % ", ".join(missing)
        )


def has_engine_tables(cursor):
    """True when the agent server's thread and runs tables (Aegra) are in this database."""
    cursor.execute("SELECT to_regclass('thread') IS NOT NULL AND to_regclass('runs') IS NOT NULL")
    return bool(cursor.fetchone()[0])


def _cutoff(cursor, retention_days):
    cursor.execute("SELECT now() - make_interval(days => %s)", (retention_days,))
    return cursor.fetchone()[0]


def _batches(items, size):
    for start in range(0, len(items), size):
        yield items[start:start + size]


def prune(conn, retention_days, batch_size=500, dry_run=False, log=None):
    """Remove every thread whose newest checkpoint is older than retention_days.

    conn is a psycopg2 connection. Returns (threads_pruned, rows_deleted) where
    rows_deleted maps each table to a row count. With dry_run nothing is deleted and the
    counts say what would be.
    """
    if not isinstance(retention_days, int) or isinstance(retention_days, bool) or retention_days <= 0:
        raise PruneError("retention_days must be a whole number of days greater than 0")
    if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size <= 0:
        raise PruneError("batch_size must be a whole number greater than 0")
    log = log or (lambda message: None)

    conn.autocommit = False
    with conn.cursor() as cursor:
        check_schema(cursor)
        engine = has_engine_tables(cursor)
        tables = TABLES + ((ENGINE_THREADS,) if engine else ())
        cutoff = _cutoff(cursor, retention_days)
        if engine:
            cursor.execute(_ENGINE_STALE_THREADS, {"cutoff": cutoff, "only": None, "busy": ENGINE_BUSY_STATUSES})
        else:
            cursor.execute(_STALE_THREADS, {"cutoff": cutoff})
        candidates = [row[0] for row in cursor.fetchall()]
    conn.commit()
    rows = dict((table, 0) for table in tables)
    log("%d thread(s) with no checkpoint since %s" % (len(candidates), cutoff.isoformat()))

    pruned = 0
    for batch in _batches(candidates, batch_size):
        with conn.cursor() as cursor:
            if engine:
                # Lock the batch's thread rows first: a run created meanwhile waits for
                # this short transaction, and one created before is seen as busy below.
                cursor.execute("SELECT 1 FROM thread WHERE thread_id = ANY(%s) FOR UPDATE", (batch,))
                cursor.execute(_ENGINE_STALE_THREADS, {"cutoff": cutoff, "only": batch, "busy": ENGINE_BUSY_STATUSES})
            else:
                cursor.execute(_STILL_STALE, {"threads": batch, "cutoff": cutoff})
            stale = [row[0] for row in cursor.fetchall()]
            for table in tables:
                if dry_run:
                    cursor.execute(
                        "SELECT count(*) FROM %s WHERE thread_id = ANY(%%s)" % table, (stale,)
                    )
                    rows[table] += cursor.fetchone()[0]
                else:
                    cursor.execute("DELETE FROM %s WHERE thread_id = ANY(%%s)" % table, (stale,))
                    rows[table] += cursor.rowcount
        if dry_run:
            conn.rollback()
        else:
            conn.commit()
        pruned += len(stale)
    log(
        "%s %d thread(s): %s"
        % (
            "would remove" if dry_run else "removed",
            pruned,
            ", ".join("%s %d rows" % (table, rows[table]) for table in tables),
        )
    )
    return pruned, rows


def vacuum(conn, log=None):
    """VACUUM (ANALYZE) the checkpoint tables so freed space is reused at once."""
    log = log or (lambda message: None)
    conn.rollback()
    conn.autocommit = True
    with conn.cursor() as cursor:
        for table in TABLES:
            cursor.execute("VACUUM (ANALYZE) %s" % table)
    conn.autocommit = False
    log("vacuumed %s" % ", ".join(TABLES))


def main(argv=None):
    """The prune timer's entry point: logs to stdout (the journal), exits 1 on failure."""
    import argparse
    import sys

    parser = argparse.ArgumentParser(description="Prune old LangGraph threads from PostgreSQL.")
    parser.add_argument("--dsn", default="", help="libpq connection string (default: local socket)")
    parser.add_argument("--dbname", default="langgraph")
    parser.add_argument("--retention-days", type=int, required=True)
    parser.add_argument("--batch-size", type=int, default=500)
    parser.add_argument("--vacuum", action="store_true")
    parser.add_argument("--dry-run", action="store_true")
    args = parser.parse_args(argv)

    def log(message):
        # stdout goes to the journal under systemd; flush so lines keep their order.
        sys.stdout.write(message + "\n")
        sys.stdout.flush()

    try:
        import psycopg2
    except ImportError:
        log("psycopg2 is not installed (Debian/Ubuntu package python3-psycopg2)")
        return 1
    try:
        conn = psycopg2.connect(args.dsn, dbname=args.dbname) if args.dsn else psycopg2.connect(dbname=args.dbname)
    except psycopg2.Error as exc:
        log("could not connect to PostgreSQL: %s" % str(exc).strip())
        return 1
    try:
        prune(conn, args.retention_days, args.batch_size, dry_run=args.dry_run, log=log)
        if args.vacuum and not args.dry_run:
            vacuum(conn, log=log)
    except PruneError as exc:
        log("prune failed: %s" % exc)
        return 1
    except psycopg2.Error as exc:
        log("prune failed: %s" % str(exc).strip())
        return 1
    finally:
        conn.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
