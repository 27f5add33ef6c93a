"""Start a release on a check port and prove it serves before it goes live.

Runs the release's server (its langgraph.json, its venv) in a scratch working directory:
`langgraph dev`, or Aegra with the role's env file but its own in-process executor (the
check takes no job from the shared Redis queue, and schedules no cron). Waits for the
health path (/ok, /health), checks that every graph is listed in /assistants/search, runs the
smoke graph once without a thread when one is named, and stops it. On failure it prints
the server's own error lines (a graph that fails to import names the import error) and
exits 1; the live release is untouched either way.

usage: release_check.py --release DIR --port N --graphs a,b [--smoke GRAPH] [--timeout S]
                        [--engine aegra|langgraph_dev] [--env-file FILE]
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
# The role installs this script in <home>/bin and the Aegra shim in <home>/server.
SHIM_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "server")


def call(url, body=None, timeout=30):
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return json.loads(response.read().decode() or "null")


def error_lines(log_path):
    with open(log_path, errors="replace") as handle:
        lines = [ANSI.sub("", line).strip() for line in handle]
    wanted = [line for line in lines
              if "failed to load" in line or "[error" in line or "Error:" in line or '"level": "error"' in line]
    return [line[:400] for line in (wanted or lines[-10:])][:6]


def read_env_file(path):
    """KEY=value lines as systemd's EnvironmentFile reads the role's file (no quoting)."""
    values = {}
    with open(path) as handle:
        for line in handle:
            line = line.strip()
            if line and not line.startswith("#") and "=" in line:
                name, value = line.split("=", 1)
                values[name] = value
    return values


def server_command(args):
    """The argv, environment and health path of the release's server on the check port."""
    if args.engine == "aegra":
        env = dict(os.environ)
        if args.env_file:
            env.update(read_env_file(args.env_file))
        env.update({
            "AEGRA_CONFIG": os.path.join(args.release, "langgraph.json"),
            "REDIS_BROKER_ENABLED": "false",
            "CRON_ENABLED": "false",
            "ENV_MODE": "LOCAL",
        })
        # Aegra behind the role's compatibility shim, as the service runs it.
        command = [
            os.path.join(args.release, "venv", "bin", "python"), "-m", "uvicorn", "--factory", "--app-dir", SHIM_DIR,
            "ai_infra_aegra:create_app", "--host", "127.0.0.1", "--port", str(args.port),
        ]
        return command, env, "/health"
    command = [
        os.path.join(args.release, "venv", "bin", "langgraph"), "dev", "--no-reload", "--no-browser",
        "--host", "127.0.0.1", "--port", str(args.port), "--config", os.path.join(args.release, "langgraph.json"),
    ]
    return command, None, "/ok"


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--release", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--graphs", required=True)
    parser.add_argument("--smoke", default="")
    parser.add_argument("--timeout", type=float, default=120)
    parser.add_argument("--engine", choices=["aegra", "langgraph_dev"], default="langgraph_dev")
    parser.add_argument("--env-file", default="")
    args = parser.parse_args()

    base = "http://127.0.0.1:%d" % args.port
    workdir = tempfile.mkdtemp(prefix="langgraph-check-")
    log_path = os.path.join(workdir, "server.log")
    command, env, health = server_command(args)
    problem = None
    with open(log_path, "w") as log:
        server = subprocess.Popen(command, cwd=workdir, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.time() + args.timeout
        while True:
            if server.poll() is not None:
                problem = "the server exited with status %d before it answered" % server.returncode
                break
            try:
                call(base + health, timeout=5)
                break
            except (OSError, urllib.error.URLError):
                if time.time() > deadline:
                    problem = "the server did not answer %s within %d seconds" % (health, args.timeout)
                    break
                time.sleep(0.5)
        if problem is None:
            try:
                listed = {entry["graph_id"] for entry in call(base + "/assistants/search", {"limit": 100})}
            except urllib.error.HTTPError as exc:
                problem = "/assistants/search answered HTTP %d %s" % (exc.code, exc.read().decode(errors="replace")[:300])
            except (OSError, ValueError, KeyError, TypeError) as exc:
                problem = "/assistants/search failed: %s" % exc
        if problem is None:
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
    print("release %s answered %s, listed %s%s" % (
        os.path.basename(args.release), health, args.graphs, ", and ran %s" % args.smoke if args.smoke else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
