"""Benchmark: what the edge (Caddy + the gate, budgets counted in Redis) adds to a request,
against the LangGraph server directly, and how many decisions per second the gate holds.

Runs inside a host the caddy role converged, with a LangGraph server behind it (the
`make stack` host, or a Molecule caddy host kept with `molecule converge -s caddy`), with
wrk (installed there from apt if missing). Side by side, in one run, the same wrk load
(threads, duration; one connection, then many) against:

  direct      GET /ok on the LangGraph server (http, its bind address)
  caddy       GET /ok through Caddy (https) without the gate: what Caddy itself adds
  edge        GET /ok through Caddy (https) -> forward_auth to the gate (N processes on a
              unix socket, as the role runs it) -> the server
  gate x1     GET /check on one gate process alone, over TCP (wrk speaks no unix
              socket): a token digest and one Redis script call that tests and records
              the address's and the token's moving windows
  gate xN     the same on N gate processes (N = the host's cores, as the role runs it)

The caddy, edge and gate rows use Caddys and gates started for the run from the
host's own files (the role's Caddyfile and gate.json, other ports, a budget too large to
refuse anything, under keys of their own that expire a minute after the run), so the
host's real budgets are neither spent nor changed; the counting in Redis is the same code on
the same Redis.

usage (from the repository root):
  .venv/bin/python bench/edge_latency.py --container langgraph-local \
      --token "$(cat .cache/local-secrets/caddy_token)" [--duration 15 --connections 16]
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import time

BENCH_GATE_SOCKET = "/tmp/bench-gate.sock"  # N processes; the bench Caddy asks this one
MANY_GATE_PORT = 9181  # N processes
SINGLE_GATE_PORT = 9182
BENCH_HTTPS_PORT = 8443
CADDY_ONLY_HTTPS_PORT = 8444  # the same site without the gate
LATENCY = re.compile(r"^\s+(50|99)(?:\.000)?%\s+([\d.]+)(us|ms|s)\s*$", re.MULTILINE)
RPS = re.compile(r"^Requests/sec:\s+([\d.]+)", re.MULTILINE)
NON_2XX = re.compile(r"Non-2xx or 3xx responses:\s+(\d+)")
TOTAL = re.compile(r"(\d+) requests in")
UNIT_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def sh(container: str, script: str, check: bool = True) -> str:
    result = subprocess.run(["docker", "exec", container, "bash", "-c", script], capture_output=True, text=True, check=False)
    if check and result.returncode != 0:
        sys.exit(f"in {container}: {script[:80]}...\n{result.stdout}{result.stderr}")
    return result.stdout


def wrk(container: str, url: str, headers: dict[str, str], args, connections: int) -> dict:
    flags = " ".join(f"-H {json.dumps(f'{k}: {v}')}" for k, v in headers.items())
    threads = min(args.threads, connections)
    out = sh(container, f"wrk -t{threads} -c{connections} -d{args.duration}s --latency {flags} '{url}'")
    latencies = {pct: float(value) * UNIT_MS[unit] for pct, value, unit in LATENCY.findall(out)}
    errors = NON_2XX.search(out)
    return {
        "p50": latencies.get("50"),
        "p99": latencies.get("99"),
        "rps": float(RPS.search(out).group(1)),
        "requests": int(TOTAL.search(out).group(1)),
        "non_2xx": int(errors.group(1)) if errors else 0,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--container", required=True)
    parser.add_argument("--token", required=True, help="a token from caddy_auth_tokens")
    parser.add_argument("--duration", type=int, default=15)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--gate-program", default="/opt/ai-infra/gate/ai_infra_gate.py",
                        help="the gate to measure, a path in the container (another version: before/after)")
    parser.add_argument("--quick", action="store_true",
                        help="1 s per row, 2 connections: proves the script runs (molecule/caddy); no figures")
    args = parser.parse_args()
    if args.quick:
        args.duration, args.connections = 1, 2
    c = args.container

    sh(c, "command -v wrk >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -q wrk >/dev/null")
    caddyfile = sh(c, "cat /etc/caddy/Caddyfile")
    # The servers are `to` lines in a fragment the site imports (the caddy_upstreams module).
    fragment = re.search(r"reverse_proxy \{\s*(?:#[^\n]*\s*)*import (\S+)", caddyfile).group(1)
    upstream = re.search(r"^\s*to (\S+)", sh(c, f"cat {fragment}"), re.MULTILINE).group(1)
    # The first site block (snippets are "(name) {"); the bench keeps only that one.
    site_match = re.search(r"^([^\s(#{][^\s]*) \{$", caddyfile, re.MULTILINE)
    site = site_match.group(1)
    site_end = caddyfile.index("\n}\n", site_match.end()) + 3
    caddyfile = caddyfile[:site_end]
    address = site.split("://")[-1].rsplit(":", 1)[0] if ":" in site.split("://")[-1] else site.split("://")[-1]
    gate = re.search(r"forward_auth (\S+)", caddyfile).group(1)

    # A gate with the host's configuration and a budget that refuses nothing.
    config = json.loads(sh(c, "cat /etc/ai-infra-gate/gate.json"))
    config["limits"] = {"default": {"requests": 10**9, "period": 60, "burst": 0}, "routes": []}
    # Under the gates' prefix: their Redis user may write no other key.
    config["key_prefix"] = "ai-infra-gate:bench"
    sh(c, f"cat > /tmp/bench-gate.json << 'EOF'\n{json.dumps(config)}\nEOF")

    def bench_caddy(https_port: int, with_gate: bool) -> str:
        text = caddyfile.replace(f"\n{site} {{", f"\nhttps://{address}:{https_port} {{")
        if with_gate:
            text = text.replace(f"forward_auth {gate}", f"forward_auth unix/{BENCH_GATE_SOCKET}")
        else:
            # The same site without the gate: what Caddy itself costs.
            start = text.index(f"forward_auth {gate}")
            text = text[:start] + text[text.index("}", start) + 1:]
        text = re.sub(r"\tadmin \S+", "\tadmin off", text)
        text = re.sub(r"output file \S+", f"output file /tmp/bench-access-{https_port}.log", text)
        text = re.sub(r"\thttp_port \d+", f"\thttp_port {https_port - 363}", text)
        return re.sub(r"\thttps_port \d+", f"\thttps_port {https_port}", text)

    for port, with_gate in ((BENCH_HTTPS_PORT, True), (CADDY_ONLY_HTTPS_PORT, False)):
        sh(c, f"cat > /tmp/bench-{port}.Caddyfile << 'EOF'\n{bench_caddy(port, with_gate)}\nEOF")
    cores = int(sh(c, "nproc").strip())
    gates = {"socket": (f"--uds {BENCH_GATE_SOCKET}", cores), "many": (f"--port {MANY_GATE_PORT}", cores),
             "single": (f"--port {SINGLE_GATE_PORT}", 1)}
    for name, (listen, workers) in gates.items():
        sh(c, f"set -a; . /etc/ai-infra-gate/gate.env; set +a; "
              f"nohup /opt/ai-infra/gate/venv/bin/python {args.gate_program} --config /tmp/bench-gate.json "
              f"{listen} --workers {workers} > /tmp/bench-gate-{name}.log 2>&1 &")
    for port in (BENCH_HTTPS_PORT, CADDY_ONLY_HTTPS_PORT):
        sh(c, f"mkdir -p /tmp/bench-caddy-{port} && XDG_DATA_HOME=/tmp/bench-caddy-{port} XDG_CONFIG_HOME=/tmp/bench-caddy-{port} "
              f"nohup caddy run --config /tmp/bench-{port}.Caddyfile --adapter caddyfile > /tmp/bench-caddy-{port}.log 2>&1 &")
    try:
        sh(c, f"for i in $(seq 60); do curl -sf -o /dev/null http://127.0.0.1:{SINGLE_GATE_PORT}/healthz "
              f"&& curl -sf -o /dev/null http://127.0.0.1:{MANY_GATE_PORT}/healthz && exit 0; sleep 0.5; done; exit 1")
        for port in (BENCH_HTTPS_PORT, CADDY_ONLY_HTTPS_PORT):
            sh(c, f"for i in $(seq 60); do curl -skf -o /dev/null -H 'Authorization: Bearer {args.token}' "
                  f"https://{address}:{port}/ok && exit 0; sleep 0.5; done; exit 1")
        auth = {"Authorization": "Bearer " + args.token}
        targets = {
            "direct": (f"http://{upstream}/ok", {}),
            "caddy": (f"https://{address}:{CADDY_ONLY_HTTPS_PORT}/ok", auth),
            "edge": (f"https://{address}:{BENCH_HTTPS_PORT}/ok", auth),
            "gate x1": (f"http://127.0.0.1:{SINGLE_GATE_PORT}/check", {**auth, "X-Forwarded-For": "192.0.2.10"}),
            f"gate x{cores}": (f"http://127.0.0.1:{MANY_GATE_PORT}/check", {**auth, "X-Forwarded-For": "192.0.2.10"}),
        }
        # One connection: what each request pays. Many: what the path holds.
        rows = {(name, n): wrk(c, url, headers, args, n)
                for n in (1, args.connections) for name, (url, headers) in targets.items()}
    finally:
        # [b]: the patterns must not match this shell's own command line (pkill would end it).
        # The bench's counters expire by themselves (the gate's user may not delete keys).
        sh(c, "pkill -f '[b]ench-[0-9]*.Caddyfile'; pkill -f '[b]ench-gate.json'; rm -f " + BENCH_GATE_SOCKET, check=False)

    print(f"wrk -d{args.duration}s per row, {cores} cores (wrk on the same host), {time.strftime('%Y-%m-%d')}, "
          f"container {c}, gate {args.gate_program}")
    print(f"{'':10}{'conns':>6}{'p50 ms':>10}{'p99 ms':>10}{'req/s':>12}{'requests':>10}{'non-2xx':>9}")
    for (name, n), row in rows.items():
        print(f"{name:10}{n:>6}{row['p50']:>10.2f}{row['p99']:>10.2f}{row['rps']:>12.1f}{row['requests']:>10}{row['non_2xx']:>9}")
    for n in (1, args.connections):
        d, k, e = rows[("direct", n)], rows[("caddy", n)], rows[("edge", n)]
        print(f"edge/direct at {n} connection(s): p50 x{e['p50'] / d['p50']:.2f} (+{e['p50'] - d['p50']:.2f} ms: "
              f"Caddy +{k['p50'] - d['p50']:.2f}, the gate +{e['p50'] - k['p50']:.2f}), "
              f"p99 x{e['p99'] / d['p99']:.2f} (+{e['p99'] - d['p99']:.2f} ms), req/s x{e['rps'] / d['rps']:.2f}")
    one, many = rows[("gate x1", args.connections)], rows[(f"gate x{cores}", args.connections)]
    print(f"the gate alone at {args.connections} connections: {one['rps']:.0f} decisions/s with 1 process, "
          f"{many['rps']:.0f} with {cores} (x{many['rps'] / one['rps']:.2f})")
    print("targets (issue 19): the edge adds at most 1 ms at p50 and 3 ms at p99 at one connection; "
          "the gate makes at least 3,000 decisions/s at 16 connections")


if __name__ == "__main__":
    main()
