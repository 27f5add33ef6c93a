"""Start a release on a check port and prove it serves before it goes live.

Runs `langgraph dev` from the release (its langgraph.json, its venv) in a scratch working
directory, waits for /ok, checks that every graph is listed in /assistants/search, runs the
smoke graph once without a thread when one is named, and stops it. On failure it prints
the server's own error lines (a graph that fails to import names the import error) and
exits 1; the live release is untouched either way.

usage: release_check.py --release DIR --port N --graphs a,b [--smoke GRAPH] [--timeout S]
"""

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

ANSI = re.compile(r"\x1b\[[0-9;]*m")


def call(url, body=None, timeout=30):
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return json.loads(response.read().decode() or "null")


def error_lines(log_path):
    with open(log_path, errors="replace") as handle:
        lines = [ANSI.sub("", line).strip() for line in handle]
    wanted = [line for line in lines if "failed to load" in line or "[error" in line or "Error:" in line]
    return [line[:400] for line in (wanted or lines[-10:])][:6]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--release", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--graphs", required=True)
    parser.add_argument("--smoke", default="")
    parser.add_argument("--timeout", type=float, default=120)
    args = parser.parse_args()

    base = "http://127.0.0.1:%d" % args.port
    workdir = tempfile.mkdtemp(prefix="langgraph-check-")
    log_path = os.path.join(workdir, "server.log")
    command = [
        os.path.join(args.release, "venv", "bin", "langgraph"), "dev", "--no-reload", "--no-browser",
        "--host", "127.0.0.1", "--port", str(args.port), "--config", os.path.join(args.release, "langgraph.json"),
    ]
    problem = None
    with open(log_path, "w") as log:
        server = subprocess.Popen(command, cwd=workdir, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.time() + args.timeout
        while True:
            if server.poll() is not None:
                problem = "the server exited with status %d before it answered" % server.returncode
                break
            try:
                call(base + "/ok", timeout=5)
                break
            except (OSError, urllib.error.URLError):
                if time.time() > deadline:
                    problem = "the server did not answer /ok within %d seconds" % args.timeout
                    break
                time.sleep(0.5)
        if problem is None:
            listed = {entry["graph_id"] for entry in call(base + "/assistants/search", {"limit": 1000})}
            missing = sorted(set(args.graphs.split(",")) - listed)
            if missing:
                problem = "graphs missing from /assistants/search: %s (listed: %s)" % (", ".join(missing), ", ".join(sorted(listed)))
        if problem is None and args.smoke:
            try:
                output = call(base + "/runs/wait", {"assistant_id": args.smoke, "input": {}}, timeout=args.timeout)
            except urllib.error.HTTPError as exc:
                output = {"__error__": "HTTP %d %s" % (exc.code, exc.read().decode(errors="replace")[:300])}
            if not isinstance(output, dict) or "__error__" in output:
                problem = "the smoke graph %r did not complete: %s" % (args.smoke, json.dumps(output)[:400])
    finally:
        if server.poll() is None:
            os.killpg(server.pid, signal.SIGTERM)
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(server.pid, signal.SIGKILL)
                server.wait()
    if problem:
        print("release %s failed its check: %s" % (os.path.basename(args.release), problem))
        for line in error_lines(log_path):
            print("  " + line)
        shutil.rmtree(workdir, ignore_errors=True)
        return 1
    shutil.rmtree(workdir, ignore_errors=True)
    print("release %s answered /ok, listed %s%s" % (
        os.path.basename(args.release), args.graphs, ", and ran %s" % args.smoke if args.smoke else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
