"""A thread resumed while the pruner runs: run on the state host against a scratch database.

Fills the database as bench/prune_checkpoints.py does (20 threads, the even ones 60 days
old), then prunes with a 30-day retention in batches of 3. Between the pruner's scan and
its batches (its first log line), the fourth-oldest stale thread is made active from
another connection: a new checkpoint, or with the engine's tables a pending run. Prints
one JSON object: what the pruner removed and which threads are left.

usage: python3 prune_race.py --dsn DSN [--engine-tables]
"""

import argparse
import json
import os
import sys

import psycopg2

# Copied beside the collection's bench/ and plugins/module_utils/ (the test does).
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [os.path.join(HERE, "bench"), os.path.join(HERE, "plugins", "module_utils")]

import checkpoint_prune  # noqa: E402
import prune_checkpoints  # noqa: E402

NEW_CHECKPOINT = """
INSERT INTO checkpoints (thread_id, checkpoint_ns, checkpoint_id, parent_checkpoint_id, type, checkpoint, metadata)
VALUES (%(thread)s, '', 'resumed', NULL, 'msgpack',
        jsonb_build_object('v', 4, 'id', 'resumed', 'ts', to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"+00:00"'),
                           'channel_versions', '{}'::jsonb, 'versions_seen', '{}'::jsonb, 'updated_channels', '[]'::jsonb),
        '{"source": "loop"}')
"""
PENDING_RUN = "INSERT INTO runs (thread_id, assistant_id, status, user_id) VALUES (%(thread)s, 'bench', 'pending', 'bench')"


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--dsn", required=True)
    parser.add_argument("--engine-tables", action="store_true")
    args = parser.parse_args()
    conn = psycopg2.connect(args.dsn)
    if args.engine_tables:
        prune_checkpoints.create_engine_tables(conn)
    prune_checkpoints.fill(conn, argparse.Namespace(
        layout="conversations", threads=20, checkpoints_per_thread=2, blobs_per_thread=1,
        engine_tables=args.engine_tables, runs_per_thread=1))
    with conn.cursor() as cursor:
        cursor.execute(checkpoint_prune._STALE_THREADS, {"cutoff": checkpoint_prune._cutoff(cursor, 30)})
        stale = [row[0] for row in cursor.fetchall()]
    conn.commit()
    resumed = stale[3]
    log = []

    def resume_after_the_scan(message):
        log.append(message)
        if len(log) == 1:
            other = psycopg2.connect(args.dsn)
            other.autocommit = True
            with other.cursor() as cursor:
                cursor.execute(PENDING_RUN if args.engine_tables else NEW_CHECKPOINT, {"thread": resumed})
            other.close()

    pruned, rows = checkpoint_prune.prune(conn, 30, batch_size=3, log=resume_after_the_scan)
    with conn.cursor() as cursor:
        cursor.execute("SELECT DISTINCT thread_id FROM checkpoints")
        left = sorted(row[0] for row in cursor.fetchall())
    conn.commit()
    print(json.dumps({"stale_at_scan": stale, "resumed": resumed, "pruned": pruned, "rows": rows,
                      "threads_left": left, "log": log}))


if __name__ == "__main__":
    main()
