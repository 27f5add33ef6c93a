"""Benchmark: the agent server engines side by side, in one run.

  throughput   stateful runs of the smoke graph (a thread created, then a run waited on)
               from this machine through the edge (TLS, the bearer token, the gate) to
               Aegra with two replicas behind it, then with one (the other stopped):
               runs/s, p50 and p99 of a run's latency, errors
  recovery     a run whose second node sleeps, its server SIGKILLed one second into that
               node: seconds until the run is running again (leased by a worker, as the
               engine's journal says) and until it ends `success`, for Aegra and for
               `langgraph dev` (which resumes it only when its 10-second flush of the run
               table happened between the run's start and the kill; otherwise the run is
               unknown after the restart)

Runs against converged Molecule scenarios (kept with `molecule converge`):
  molecule/langgraph_server  Aegra: langgraph_server-replica-a and -b behind the edge on
                             langgraph_server-debian12 (token molecule-edge-token-...)
  molecule/caddy             langgraph dev on caddy-debian12 (recovery only: its edge's
                             budget is the hand-written guide's 20 requests a minute)

usage (from the repository root):
  .venv/bin/python bench/agent_server_engines.py [--runs 200 --concurrency 8]
      [--engines aegra,langgraph_dev] [--quick]
"""

from __future__ import annotations

import argparse
import json
import re
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor

EDGE_ROOT = "/var/lib/caddy/.local/share/caddy/pki/authorities/local/root.crt"
UNIT = "langgraph-server"
DONE = ("success", "error", "interrupted", "timeout")


def sh(container: str, script: str, check: bool = True) -> str:
    result = subprocess.run(["docker", "exec", container, "bash", "-c", script], capture_output=True, text=True, check=False)
    if check and result.returncode != 0:
        sys.exit(f"in {container}: {script[:100]}...\n{result.stdout}{result.stderr}")
    return result.stdout


def address(container: str) -> str:
    return sh(container, "hostname -I").split()[0]


def server_url(container: str) -> str:
    """The server's own address and port, from its unit's command line (--host, --port)."""
    command = sh(container, f"systemctl show -p ExecStart --value {UNIT}")
    host = re.search(r"--host (\S+)", command).group(1)
    port = re.search(r"--port (\d+)", command).group(1)
    return f"http://{host}:{port}"


def api(container: str, method: str, url: str, body=None):
    """A call made inside the server's host (no edge, no budget): (status, JSON or None)."""
    data = f"-d {json.dumps(json.dumps(body))}" if body is not None else ""
    out = sh(container, f"curl -s -m 30 -o /tmp/bench-answer -w '%{{http_code}}' -X {method} "
                        f"-H 'Content-Type: application/json' {data} '{url}'; echo; cat /tmp/bench-answer", check=False)
    status, text = out.split("\n", 1) if "\n" in out else (out, "")
    try:
        return int(status or 0), json.loads(text) if text.strip() else None
    except ValueError:
        return int(status or 0), None


class Edge:
    """The edge from this machine: https with its internal root, the bearer token."""

    def __init__(self, container: str, token: str):
        self.base = f"https://{address(container)}"
        self.headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        with tempfile.NamedTemporaryFile("w", suffix=".crt", delete=False) as root:
            root.write(sh(container, f"cat {EDGE_ROOT}"))
        self.context = ssl.create_default_context(cafile=root.name)

    def post(self, path: str, body) -> dict:
        request = urllib.request.Request(self.base + path, data=json.dumps(body).encode(), headers=self.headers)
        with urllib.request.urlopen(request, context=self.context, timeout=120) as answer:
            return json.loads(answer.read())

    def one_run(self) -> float:
        started = time.monotonic()
        thread = self.post("/threads", {})
        values = self.post(f"/threads/{thread['thread_id']}/runs/wait", {"assistant_id": "smoke", "input": {}})
        if values.get("executions") != ["first", "second"]:
            raise RuntimeError(f"unexpected values {values}")
        return time.monotonic() - started


def throughput(edge: Edge, runs: int, concurrency: int) -> dict:
    latencies, errors = [], 0
    started = time.monotonic()
    with ThreadPoolExecutor(concurrency) as pool:
        futures = [pool.submit(edge.one_run) for _run in range(runs)]
        for future in futures:
            try:
                latencies.append(future.result())
            except (OSError, urllib.error.URLError, RuntimeError, ValueError):
                errors += 1
    seconds = time.monotonic() - started
    latencies.sort()
    p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] if latencies else float("nan")
    return {"runs": runs, "runs/s": len(latencies) / seconds, "p50 ms": statistics.median(latencies) * 1000 if latencies else float("nan"),
            "p99 ms": p99 * 1000, "errors": errors}


def wait_healthy(container: str, url: str, timeout: int = 180) -> None:
    deadline = time.monotonic() + timeout
    probe = f"curl -sf -o /dev/null {url}/health || curl -sf -o /dev/null {url}/ok"
    while time.monotonic() < deadline:
        if subprocess.run(["docker", "exec", container, "bash", "-c", probe], capture_output=True, check=False).returncode == 0:
            return
        time.sleep(1)
    sys.exit(f"{container}: the server did not come back within {timeout} s")


def picked_up_since(containers: list[str], run_id: str, since: float) -> bool:
    stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(since))
    return any(subprocess.run(
        ["docker", "exec", c, "bash", "-c", f"journalctl -u {UNIT} -o cat --since '{stamp} UTC' | grep -F 'Worker picked up run' | grep -qF {run_id}"],
        capture_output=True, check=False).returncode == 0 for c in containers)


def recovery(containers: list[str], node_seconds: int, window: int, leases: bool) -> dict:
    """SIGKILL of the server running a run, inside its sleeping node. With leases (Aegra)
    the journal says when a worker picked the run up again."""
    urls = {c: server_url(c) for c in containers}
    first = containers[0]
    thread = api(first, "POST", f"{urls[first]}/threads", {})[1]
    run = api(first, "POST", f"{urls[first]}/threads/{thread['thread_id']}/runs",
              {"assistant_id": "smoke", "input": {}, "config": {"configurable": {"second_seconds": node_seconds}}})[1]
    thread_id, run_id = thread["thread_id"], run["run_id"]
    deadline = time.monotonic() + 60
    while True:
        state = api(first, "GET", f"{urls[first]}/threads/{thread_id}/state")[1]
        if state and state.get("values", {}).get("executions") == ["first"]:
            break
        if time.monotonic() > deadline:
            sys.exit("the bench run never reached its second node")
        time.sleep(0.25)
    time.sleep(1)
    # The replica whose worker runs it (Aegra logs it); langgraph dev has one server.
    running = next((c for c in containers if picked_up_since([c], run_id, time.time() - 120)), first)
    watcher = next((c for c in containers if c != running), running)
    killed_wall, killed = time.time(), time.monotonic()
    sh(running, f"systemctl kill -s SIGKILL {UNIT}")
    again = done = None
    last = ""
    while time.monotonic() - killed < window:
        if again is None and leases and picked_up_since(containers, run_id, killed_wall):
            again = time.monotonic() - killed
        code, answer = api(watcher, "GET", f"{urls[watcher]}/threads/{thread_id}/runs/{run_id}")
        last = f"HTTP {code}" + (f" {answer.get('status')}" if isinstance(answer, dict) and "status" in answer else "")
        if code == 200 and answer.get("status") in DONE:
            done = (time.monotonic() - killed, answer["status"])
            break
        if code == 404:
            break  # the server is back and no longer knows the run: it can never finish
        time.sleep(0.5)
    wait_healthy(running, urls[running])
    final = api(watcher, "GET", f"{urls[watcher]}/threads/{thread_id}/state")[1]
    executions = (final or {}).get("values", {}).get("executions")
    return {"running again (s)": f"{again:.1f}" if again is not None else "never",
            "finished (s)": f"{done[0]:.1f} ({done[1]})" if done else f"never ({last})",
            "executions": executions}


def table(title: str, columns: dict[str, dict]) -> None:
    print(title)
    rows = list(next(iter(columns.values())))
    print(f"{'':28}" + "".join(f"{name:>26}" for name in columns))
    for row in rows:
        cells = "".join(f"{(f'{v:.2f}' if isinstance(v, float) else str(v)):>26}" for v in (c[row] for c in columns.values()))
        print(f"{row:28}{cells}")
    print()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--engines", default="aegra,langgraph_dev")
    parser.add_argument("--edge", default="langgraph_server-debian12", help="Aegra's edge host")
    parser.add_argument("--replicas", default="langgraph_server-replica-a,langgraph_server-replica-b")
    parser.add_argument("--old-server", default="caddy-debian12", help="the langgraph dev host")
    parser.add_argument("--token", default="molecule-edge-token-0123456789abcdef")
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--node-seconds", type=int, default=20, help="how long the killed run's node sleeps")
    parser.add_argument("--window", type=int, default=120, help="seconds to wait for a killed run to finish")
    parser.add_argument("--quick", action="store_true", help="tiny sizes, so the script cannot rot (no figures)")
    args = parser.parse_args()
    if args.quick:
        args.runs, args.concurrency, args.node_seconds, args.window = 6, 2, 4, 75
    engines = args.engines.split(",")
    replicas = args.replicas.split(",")
    results = {}

    if "aegra" in engines:
        edge = Edge(args.edge, args.token)
        two = throughput(edge, args.runs, args.concurrency)
        url = server_url(replicas[-1])
        sh(replicas[-1], f"systemctl stop {UNIT}")
        time.sleep(12)  # past the edge's health check interval (10 s): the stopped one is out
        try:
            one = throughput(edge, args.runs, args.concurrency)
        finally:
            sh(replicas[-1], f"systemctl start {UNIT}")
            wait_healthy(replicas[-1], url)
        table(f"Stateful smoke runs through the edge ({args.runs} runs, {args.concurrency} at once)",
              {"aegra, 2 replicas": two, "aegra, 1 replica": one})
        print(f"ratio 2 replicas / 1: runs/s {two['runs/s'] / one['runs/s']:.2f}, p50 {two['p50 ms'] / one['p50 ms']:.2f}\n")
        results["aegra"] = recovery(replicas, args.node_seconds, args.window, leases=True)
        results["aegra"]["errors (throughput)"] = two["errors"] + one["errors"]
    if "langgraph_dev" in engines:
        results["langgraph dev"] = recovery([args.old_server], args.node_seconds, args.window, leases=False)
        results["langgraph dev"]["errors (throughput)"] = "n/a"
    if results:
        table(f"SIGKILL of the server running a run, 1 s into a node of {args.node_seconds} s", results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
