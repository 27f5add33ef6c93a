"""Benchmark: checkpoint pruning (ours) against the seed guide's plain DELETE, same data.

Fills the LangGraph checkpoint tables of a scratch database with --threads threads of
--checkpoints-per-thread checkpoints each (one checkpoint_writes row per checkpoint,
--blobs-per-thread blob rows per thread; half the threads idle for 60 days, the rest
active today), then, on identical data each time, prunes with a 30-day retention:

  ours  the collection's pruning code (plugins/module_utils/checkpoint_prune.py), batches
        of --batch-size threads, all three tables;
  seed  the guide's single statement DELETE FROM checkpoints WHERE thread_id IN (stale
        threads), which leaves checkpoint_blobs and checkpoint_writes behind.

It prints, side by side: checkpoint rows removed per second, the longest single
statement, the longest transaction (row locks are held until commit), and the rows left
orphaned in checkpoint_blobs and checkpoint_writes.

The tables must exist (made by langgraph-checkpoint-postgres setup(); see bench/README.md).
Needs psycopg2. Run as a role that may create and drop rows in the scratch database.
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


class TimedCursor(psycopg2.extensions.cursor):
    def execute(self, query, vars=None):  # noqa: A002  (psycopg2's own argument name)
        start = time.perf_counter()
        try:
            return super().execute(query, vars)
        finally:
            self.connection.longest_statement = max(
                self.connection.longest_statement, time.perf_counter() - start
            )


class TimedConnection(psycopg2.extensions.connection):
    """Records the longest statement and the longest span between transaction ends."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.longest_statement = 0.0
        self.longest_transaction = 0.0
        self._since = time.perf_counter()

    def cursor(self, *args, **kwargs):
        kwargs.setdefault("cursor_factory", TimedCursor)
        return super().cursor(*args, **kwargs)

    def _end(self):
        now = time.perf_counter()
        self.longest_transaction = max(self.longest_transaction, now - self._since)
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
                                         + make_interval(secs => c)) AT TIME ZONE 'UTC',
                                        'YYYY-MM-DD"T"HH24:MI:SS.US"+00:00"'),
                          'channel_versions', jsonb_build_object('messages', c, 'notes', c),
                          'versions_seen', '{}'::jsonb, 'updated_channels', '["messages"]'::jsonb),
       jsonb_build_object('source', 'loop', 'step', c, 'graph_id', 'agent')
FROM (SELECT n, md5(n::text)::uuid AS id FROM generate_series(1, %(threads)s) AS n) AS t,
     generate_series(1, %(per_thread)s) AS c;
INSERT INTO checkpoint_writes (thread_id, checkpoint_ns, checkpoint_id, task_id, idx, channel, type, blob)
SELECT thread_id, checkpoint_ns, checkpoint_id, md5(checkpoint_id), 0, 'messages', 'msgpack', decode(repeat('ab', 150), 'hex')
FROM checkpoints;
INSERT INTO checkpoint_blobs (thread_id, checkpoint_ns, channel, version, type, blob)
SELECT t.id::text, '', 'messages', lpad(v::text, 8, '0'), 'msgpack', decode(repeat('cd', 400), 'hex')
FROM (SELECT md5(n::text)::uuid AS id FROM generate_series(1, %(threads)s) AS n) AS t,
     generate_series(1, %(blobs)s) AS v;
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


def fill(conn, args):
    with conn.cursor() as cursor:
        cursor.execute(FILL, {"threads": args.threads, "per_thread": args.checkpoints_per_thread,
                              "blobs": args.blobs_per_thread})
        conn.commit()
        counts = {}
        for table in TABLES:
            cursor.execute("SELECT count(*) FROM %s" % table)
            counts[table] = cursor.fetchone()[0]
    conn.commit()
    conn.autocommit = True
    with conn.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE checkpoints, checkpoint_blobs, checkpoint_writes")
    conn.autocommit = False
    return counts


def orphans(conn):
    with conn.cursor() as cursor:
        result = {}
        for table in ("checkpoint_blobs", "checkpoint_writes"):
            cursor.execute(ORPHANS.format(table=table))
            result[table] = cursor.fetchone()[0]
    conn.commit()
    return result


def measure(conn, run):
    conn.longest_statement = conn.longest_transaction = 0.0
    conn._since = time.perf_counter()
    start = time.perf_counter()
    removed = run()
    elapsed = time.perf_counter() - start
    return {
        "checkpoint rows removed": removed,
        "seconds": elapsed,
        "checkpoint rows/s": removed / elapsed if elapsed else 0.0,
        "longest statement (s)": conn.longest_statement,
        "longest transaction (s)": conn.longest_transaction,
        "orphaned blobs": None,
        "orphaned writes": None,
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dsn", default="dbname=bench_prune")
    parser.add_argument("--threads", type=int, default=10000)
    parser.add_argument("--checkpoints-per-thread", type=int, default=100)
    parser.add_argument("--blobs-per-thread", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=500)
    parser.add_argument("--quick", action="store_true",
                        help="200 threads x 10 checkpoints: proves the script runs (make test); no figures")
    args = parser.parse_args()
    if args.quick:
        args.threads, args.checkpoints_per_thread, args.blobs_per_thread = 200, 10, 2

    conn = psycopg2.connect(args.dsn, connection_factory=TimedConnection)
    results = {}
    results_all = {}

    counts = fill(conn, args)
    print("data: %s, %d threads (half idle 60 days), retention 30 days"
          % (", ".join("%s %d rows" % (t, counts[t]) for t in TABLES), args.threads), flush=True)

    def ours():
        rows = checkpoint_prune.prune(conn, 30, args.batch_size)[1]
        results_all["ours"] = sum(rows.values())
        return rows["checkpoints"]

    results["ours (batch %d)" % args.batch_size] = measure(conn, ours)
    results["ours (batch %d)" % args.batch_size]["rows removed, all tables"] = results_all["ours"]
    results["ours (batch %d)" % args.batch_size].update(
        dict(("orphaned " + t.split("_")[1], n) for t, n in orphans(conn).items()))

    fill(conn, args)

    def seed():
        with conn.cursor() as cursor:
            cursor.execute(SEED_DELETE)
            removed = cursor.rowcount
        conn.commit()
        results_all["seed"] = removed
        return removed

    results["seed plain DELETE"] = measure(conn, seed)
    results["seed plain DELETE"]["rows removed, all tables"] = results_all["seed"]
    results["seed plain DELETE"].update(
        dict(("orphaned " + t.split("_")[1], n) for t, n in orphans(conn).items()))

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
    print("ratio ours/seed: rows/s %.2f, longest statement %.3f, longest transaction %.3f"
          % (results[ours_name]["checkpoint rows/s"] / results[seed_name]["checkpoint rows/s"],
             results[ours_name]["longest statement (s)"] / results[seed_name]["longest statement (s)"],
             results[ours_name]["longest transaction (s)"] / results[seed_name]["longest transaction (s)"]))
    conn.close()


if __name__ == "__main__":
    main()
