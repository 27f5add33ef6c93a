"""Benchmark: checkpoint pruning (ours) against the hand-written guide's plain DELETE
(docs/hand-written-guide.md), same data.

Fills the LangGraph checkpoint tables of a scratch database with --threads threads of
--checkpoints-per-thread checkpoints each (one checkpoint_writes row per checkpoint,
--blobs-per-thread blob rows per thread; half the threads idle for 60 days, the rest
active today) and the agent server's own tables (Aegra 0.11.0's schema, recorded in
aegra_0.11.0_schema.sql: one `thread` row and --runs-per-thread finished `runs` rows per
thread), then, on identical data each time, prunes with a 30-day retention:

  ours  the collection's pruning code (plugins/module_utils/checkpoint_prune.py), batches
        of --batch-size threads, every table (the thread row, its runs by cascade);
  seed  the guide's single statement DELETE FROM checkpoints WHERE thread_id IN (stale
        threads), which leaves checkpoint_blobs, checkpoint_writes, and the engine's
        thread and runs rows behind.

It prints, side by side: checkpoint rows and all rows removed per second, the longest
single statement, the longest transaction (row locks are held until commit), and the rows
left orphaned (blobs and writes of no checkpoint; thread and runs rows of a thread whose
checkpoints are gone).

The checkpoint tables must exist (made by langgraph-checkpoint-postgres setup(); see
bench/README.md); the engine's are created when missing (--no-engine-tables: without them).
Needs psycopg2. Run as a role that may create tables and rows in the scratch database.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import psycopg2
import psycopg2.extensions

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "plugins", "module_utils"))
import checkpoint_prune  # noqa: E402  (the collection's own code, loaded by path)

TABLES = ("checkpoints", "checkpoint_blobs", "checkpoint_writes")
ENGINE_SCHEMA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "aegra_0.11.0_schema.sql")


# Statements that take row locks, held until the transaction ends.
LOCKING = ("DELETE", "UPDATE", "INSERT", "FOR UPDATE")


class TimedCursor(psycopg2.extensions.cursor):
    def execute(self, query, vars=None):  # noqa: A002  (psycopg2's own argument name)
        if any(word in query.upper() for word in LOCKING):
            self.connection.locking = True
        start = time.perf_counter()
        try:
            return super().execute(query, vars)
        finally:
            self.connection.longest_statement = max(
                self.connection.longest_statement, time.perf_counter() - start
            )


class TimedConnection(psycopg2.extensions.connection):
    """Records the longest statement, the longest span between transaction ends, and the
    longest such span of a transaction that took row locks (what other writers can wait
    behind; a read-only transaction blocks none of them)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.longest_statement = 0.0
        self.longest_transaction = 0.0
        self.longest_locking_transaction = 0.0
        self.locking = False
        self._since = time.perf_counter()

    def cursor(self, *args, **kwargs):
        kwargs.setdefault("cursor_factory", TimedCursor)
        return super().cursor(*args, **kwargs)

    def _end(self):
        now = time.perf_counter()
        self.longest_transaction = max(self.longest_transaction, now - self._since)
        if self.locking:
            self.longest_locking_transaction = max(self.longest_locking_transaction, now - self._since)
        self.locking = False
        self._since = now

    def commit(self):
        super().commit()
        self._end()

    def rollback(self):
        super().rollback()
        self._end()


FILL = """
TRUNCATE checkpoints, checkpoint_blobs, checkpoint_writes;
INSERT INTO checkpoints (thread_id, checkpoint_ns, checkpoint_id, parent_checkpoint_id, type, checkpoint, metadata)
SELECT t.id::text, '', lpad(c::text, 8, '0'), CASE WHEN c > 1 THEN lpad((c - 1)::text, 8, '0') END, 'msgpack',
       jsonb_build_object('v', 4, 'id', lpad(c::text, 8, '0'),
                          'ts', to_char((now() - make_interval(days => CASE WHEN t.n %% 2 = 0 THEN 60 ELSE 0 END)
                                         + make_interval(mins => t.n) + make_interval(secs => c)) AT TIME ZONE 'UTC',
                                        'YYYY-MM-DD"T"HH24:MI:SS.US"+00:00"'),
                          'channel_versions', jsonb_build_object('messages', c, 'notes', c),
                          'versions_seen', '{}'::jsonb, 'updated_channels', '["messages"]'::jsonb),
       jsonb_build_object('source', 'loop', 'step', c, 'graph_id', 'agent')
FROM (SELECT n, md5(n::text)::uuid AS id FROM generate_series(1, %(threads)s) AS n) AS t,
     generate_series(1, %(per_thread)s) AS c
ORDER BY CHECKPOINT_ORDER;
INSERT INTO checkpoint_writes (thread_id, checkpoint_ns, checkpoint_id, task_id, idx, channel, type, blob)
SELECT thread_id, checkpoint_ns, checkpoint_id, md5(checkpoint_id), 0, 'messages', 'msgpack', decode(repeat('ab', 150), 'hex')
FROM checkpoints;
INSERT INTO checkpoint_blobs (thread_id, checkpoint_ns, channel, version, type, blob)
SELECT t.id::text, '', 'messages', lpad(v::text, 8, '0'), 'msgpack', decode(repeat('cd', 400), 'hex')
FROM (SELECT n, md5(n::text)::uuid AS id FROM generate_series(1, %(threads)s) AS n) AS t,
     generate_series(1, %(blobs)s) AS v
ORDER BY BLOB_ORDER;
"""

# Where each thread's rows lie in the tables (insertion order):
#   conversations  a thread's rows together, threads in time order, the idle ones first:
#                  threads that are conversations of minutes, written as they happened;
#   interleaved    every thread's rows spread over the whole table (each checkpoint step
#                  of every thread, then the next): threads that ran side by side for the
#                  table's whole life, the worst case for pruning in batches.
LAYOUTS = {
    "conversations": {"CHECKPOINT_ORDER": "(t.n %% 2 = 0) DESC, t.n, c", "BLOB_ORDER": "(t.n %% 2 = 0) DESC, t.n, v"},
    "interleaved": {"CHECKPOINT_ORDER": "c, t.n", "BLOB_ORDER": "v, t.n"},
}

# One thread row per thread, as old as its newest checkpoint, and finished runs.
FILL_ENGINE = """
TRUNCATE thread, assistant CASCADE;
INSERT INTO assistant (assistant_id, name, graph_id, user_id) VALUES ('bench', 'agent', 'agent', 'bench');
INSERT INTO thread (thread_id, status, user_id, created_at, updated_at)
SELECT md5(n::text)::uuid::text, 'idle', 'bench', t.ts, t.ts
FROM generate_series(1, %(threads)s) AS n,
     LATERAL (SELECT now() - make_interval(days => CASE WHEN n %% 2 = 0 THEN 60 ELSE 0 END)
                     + make_interval(mins => n) AS ts) AS t;
INSERT INTO runs (thread_id, assistant_id, status, input, output, user_id, created_at, updated_at)
SELECT thread_id, 'bench', 'success', '{"messages": []}', '{"messages": []}', 'bench', updated_at, updated_at
FROM thread, generate_series(1, %(runs)s);
"""

SEED_DELETE = """
DELETE FROM checkpoints WHERE thread_id IN (
  SELECT thread_id FROM checkpoints GROUP BY thread_id
  HAVING max((checkpoint->>'ts')::timestamptz) < now() - interval '30 days')
"""

ORPHANS = """
SELECT count(*) FROM {table} x
WHERE NOT EXISTS (SELECT 1 FROM checkpoints c WHERE c.thread_id = x.thread_id)
"""


# Rows of the engine's tables whose thread has no checkpoint left.
ENGINE_ORPHANS = {
    "thread": "SELECT count(*) FROM thread t WHERE NOT EXISTS (SELECT 1 FROM checkpoints c WHERE c.thread_id = t.thread_id)",
    "runs": "SELECT count(*) FROM runs r WHERE NOT EXISTS (SELECT 1 FROM checkpoints c WHERE c.thread_id = r.thread_id)",
}


def create_engine_tables(conn):
    with conn.cursor() as cursor:
        cursor.execute("SELECT to_regclass('thread') IS NULL")
        if cursor.fetchone()[0]:
            with open(ENGINE_SCHEMA, encoding="utf-8") as schema:
                cursor.execute(schema.read())
    conn.commit()


def tables(engine):
    return TABLES + (("thread", "runs") if engine else ())


def fill(conn, args):
    with conn.cursor() as cursor:
        fill_sql = FILL
        for token, order in LAYOUTS[args.layout].items():
            fill_sql = fill_sql.replace(token, order)
        cursor.execute(fill_sql, {"threads": args.threads, "per_thread": args.checkpoints_per_thread,
                                  "blobs": args.blobs_per_thread})
        if args.engine_tables:
            cursor.execute(FILL_ENGINE, {"threads": args.threads, "runs": args.runs_per_thread})
        conn.commit()
        counts = {}
        for table in tables(args.engine_tables):
            cursor.execute("SELECT count(*) FROM %s" % table)
            counts[table] = cursor.fetchone()[0]
    conn.commit()
    conn.autocommit = True
    with conn.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE %s" % ", ".join(tables(args.engine_tables)))
    conn.autocommit = False
    return counts


def row_counts(conn, engine):
    with conn.cursor() as cursor:
        counts = {}
        for table in tables(engine):
            cursor.execute("SELECT count(*) FROM %s" % table)
            counts[table] = cursor.fetchone()[0]
    conn.commit()
    return counts


def orphans(conn, engine):
    """{metric name: rows} of rows left pointing at no checkpoint."""
    with conn.cursor() as cursor:
        result = {}
        for table in ("checkpoint_blobs", "checkpoint_writes"):
            cursor.execute(ORPHANS.format(table=table))
            result["orphaned " + table.split("_")[1]] = cursor.fetchone()[0]
        if engine:
            for table, query in ENGINE_ORPHANS.items():
                cursor.execute(query)
                result["orphaned %s rows" % table] = cursor.fetchone()[0]
    conn.commit()
    return result


def measure(conn, run, engine):
    """Runs `run` (a prune) and measures it: rows removed from before/after counts (so the
    rows that went by cascade count too), time, longest statement and transaction."""
    before = row_counts(conn, engine)
    conn.longest_statement = conn.longest_transaction = conn.longest_locking_transaction = 0.0
    conn.locking = False
    conn._since = time.perf_counter()  # pylint: disable=protected-access
    start = time.perf_counter()
    run()
    elapsed = time.perf_counter() - start
    after = row_counts(conn, engine)
    removed = dict((table, before[table] - after[table]) for table in before)
    result = {
        "checkpoint rows removed": removed["checkpoints"],
        "rows removed, all tables": sum(removed.values()),
        "seconds": elapsed,
        "checkpoint rows/s": removed["checkpoints"] / elapsed if elapsed else 0.0,
        "all rows/s": sum(removed.values()) / elapsed if elapsed else 0.0,
        "longest statement (s)": conn.longest_statement,
        "longest transaction (s)": conn.longest_transaction,
        "longest locking transaction (s)": conn.longest_locking_transaction,
    }
    result.update(orphans(conn, engine))
    return result


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dsn", default="dbname=bench_prune")
    parser.add_argument("--threads", type=int, default=10000)
    parser.add_argument("--checkpoints-per-thread", type=int, default=100)
    parser.add_argument("--blobs-per-thread", type=int, default=20)
    parser.add_argument("--runs-per-thread", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=500)
    parser.add_argument("--layout", choices=sorted(LAYOUTS), default="conversations",
                        help="where each thread's rows lie in the tables (see LAYOUTS)")
    parser.add_argument("--no-engine-tables", dest="engine_tables", action="store_false",
                        help="the checkpoint tables only (a langgraph dev database)")
    parser.add_argument("--quick", action="store_true",
                        help="200 threads x 10 checkpoints: proves the script runs (make test); no figures")
    args = parser.parse_args()
    if args.quick:
        args.threads, args.checkpoints_per_thread, args.blobs_per_thread = 200, 10, 2

    conn = psycopg2.connect(args.dsn, connection_factory=TimedConnection)
    if args.engine_tables:
        create_engine_tables(conn)
    results = {}

    counts = fill(conn, args)
    print("data: %s, %d threads (half idle 60 days), layout %s, retention 30 days"
          % (", ".join("%s %d rows" % (t, counts[t]) for t in tables(args.engine_tables)), args.threads, args.layout),
          flush=True)

    def ours():
        checkpoint_prune.prune(conn, 30, args.batch_size)

    results["ours (batch %d)" % args.batch_size] = measure(conn, ours, args.engine_tables)

    fill(conn, args)

    def seed():
        with conn.cursor() as cursor:
            cursor.execute(SEED_DELETE)
        conn.commit()

    results["seed plain DELETE"] = measure(conn, seed, args.engine_tables)

    names = list(results)
    metrics = list(results[names[0]])
    width = max(len(m) for m in metrics) + 2
    print("".join([" " * width] + ["%24s" % n for n in names]))
    for metric in metrics:
        cells = []
        for name in names:
            value = results[name][metric]
            cells.append("%24s" % ("%.3f" % value if isinstance(value, float) else value))
        print(metric.ljust(width) + "".join(cells))
    ours_name, seed_name = names
    ours, seed_result = results[ours_name], results[seed_name]
    print("ratio ours/seed: checkpoint rows/s %.2f, ours' all rows/s to the seed's checkpoint rows/s %.2f, "
          "longest statement %.3f, longest transaction %.3f, longest locking transaction %.3f"
          % (ours["checkpoint rows/s"] / seed_result["checkpoint rows/s"],
             ours["all rows/s"] / seed_result["checkpoint rows/s"],
             ours["longest statement (s)"] / seed_result["longest statement (s)"],
             ours["longest transaction (s)"] / seed_result["longest transaction (s)"],
             ours["longest locking transaction (s)"] / seed_result["longest locking transaction (s)"]))
    conn.close()


if __name__ == "__main__":
    main()
