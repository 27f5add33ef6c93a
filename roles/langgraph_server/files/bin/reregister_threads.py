"""Register again every thread that has checkpoints in Postgres.

The server keeps its thread list in files under its working directory; checkpoints live in
Postgres. On a replacement machine (or after the files were lost) every old thread answers
404 until it is registered again: POST /threads with the same thread_id, if_exists
do_nothing, and the graph_id from its newest checkpoint's metadata (without graph_id the
thread comes back empty). Then its state, history and pending interrupts come back from
Postgres. Run by the unit after every start; idempotent (known threads are left alone).

usage: reregister_threads.py --url http://127.0.0.1:8123 [--timeout S]
(the connection string comes from LANGGRAPH_APP_POSTGRES_URI, the unit's env file)
"""

import argparse
import json
import os
import sys
import time
import urllib.error
import urllib.request

import psycopg

# The newest root-namespace checkpoint that names its graph, per thread.
THREADS = """
SELECT DISTINCT ON (thread_id) thread_id, metadata->>'graph_id', metadata->>'assistant_id'
FROM checkpoints
WHERE checkpoint_ns = '' AND metadata ? 'graph_id'
ORDER BY thread_id, checkpoint_id DESC
"""


def call(method, url, body=None):
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return response.status


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", required=True)
    parser.add_argument("--timeout", type=float, default=120)
    args = parser.parse_args()

    deadline = time.time() + args.timeout
    while True:
        try:
            call("GET", args.url + "/ok")
            break
        except (OSError, urllib.error.URLError) as exc:
            if time.time() > deadline:
                print("the server did not answer /ok within %d seconds (%s): no thread registered" % (args.timeout, exc))
                return 1
            time.sleep(0.5)

    try:
        with psycopg.connect(os.environ["LANGGRAPH_APP_POSTGRES_URI"], connect_timeout=10) as connection:
            rows = connection.execute(THREADS).fetchall()
    except (KeyError, psycopg.Error) as exc:
        print("cannot read threads from Postgres: %s" % (str(exc).strip() or type(exc).__name__))
        return 1

    restored = failed = 0
    for thread_id, graph_id, assistant_id in rows:
        try:
            call("GET", "%s/threads/%s" % (args.url, thread_id))
            continue
        except urllib.error.HTTPError as exc:
            if exc.code != 404:
                failed += 1
                continue
        metadata = {"graph_id": graph_id}
        if assistant_id:
            metadata["assistant_id"] = assistant_id
        try:
            call("POST", args.url + "/threads", {"thread_id": str(thread_id), "if_exists": "do_nothing", "metadata": metadata})
            restored += 1
        except (OSError, urllib.error.URLError) as exc:
            failed += 1
            print("thread %s: %s" % (thread_id, exc))
    print("threads in Postgres: %d; registered again: %d; already known: %d; failed: %d"
          % (len(rows), restored, len(rows) - restored - failed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
