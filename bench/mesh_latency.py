"""Benchmark: what the WireGuard mesh adds to host-to-host calls, against the same calls
over the hosts' plain addresses, in one run.

Runs from the machine that drives two hosts the wireguard role converged (the containers
of `molecule converge -s wireguard`, reached with `docker exec`). On the server host it
starts a small TCP responder on one port of both addresses (the mesh address and the
plain one) and opens that port in the firewall for the run only (one rule, removed
after); on the client host, one persistent connection per path (as a connection pool or
an HTTP keep-alive holds one) sends, in turns so that both paths see the same moment:

  query        a 120-byte request, a 300-byte answer: one PostgreSQL or Redis round trip
               of the size the agent servers make (a checkpoint read, a lease renewal)
  model call   a 2 KiB request (a prompt), an answer streamed as 256 writes of 64 bytes
               (tokens as server-sent events), timed to the last byte

Both paths cross the same Docker bridge here; on Spheron the plain path is the Internet,
whose own latency adds to both. The mesh's cost is what this measures: encryption and
encapsulation (wireguard-go, userspace, in these containers; the kernel module on real
hosts is cheaper).

usage (from the repository root, with the wireguard scenario converged):
  .venv/bin/python bench/mesh_latency.py --client wireguard-server --server wireguard-state \
      [--rounds 2000] [--quick]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

PORT = 9431
RULE_COMMENT = "ai-infra mesh bench"
TABLE = "inet ai_infra_base"

# Runs on the server host: answers each request on every address given.
RESPONDER = r"""
import socket, sys, threading
def serve(conn):
    conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    reader = conn.makefile("rb")
    while True:
        header = reader.readline()
        if not header:
            return
        kind, size = header.split()
        reader.read(int(size))
        if kind == b"query":
            conn.sendall(b"q" * 300)
        else:
            for _token in range(256):
                conn.sendall(b"t" * 64)
def listen(address):
    server = socket.socket()
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind((address, int(sys.argv[1])))
    server.listen()
    while True:
        conn, _peer = server.accept()
        threading.Thread(target=serve, args=(conn,), daemon=True).start()
for address in sys.argv[2:]:
    threading.Thread(target=listen, args=(address,), daemon=True).start()
print("ready", flush=True)
threading.Event().wait()
"""

# Runs on the client host: rounds of both shapes on both paths, alternating; prints JSON.
CLIENT = r"""
import json, socket, sys, time
port, rounds = int(sys.argv[1]), int(sys.argv[2])
paths = dict(zip(("plain", "mesh"), sys.argv[3:5]))
SHAPES = {"query": (120, 300), "model call": (2048, 256 * 64)}
def connect(address):
    sock = socket.create_connection((address, port), timeout=10)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock
def call(sock, shape):
    size, answer = SHAPES[shape]
    start = time.perf_counter()
    sock.sendall(("%s %d\n" % (shape.split()[0], size)).encode() + b"p" * size)
    got = 0
    while got < answer:
        chunk = sock.recv(65536)
        if not chunk:
            raise SystemExit("the responder closed the connection")
        got += len(chunk)
    return (time.perf_counter() - start) * 1000
socks = {name: connect(address) for name, address in paths.items()}
samples = {(path, shape): [] for path in paths for shape in SHAPES}
for round_ in range(rounds + 20):
    for shape in SHAPES:
        for path, sock in socks.items():
            took = call(sock, shape)
            if round_ >= 20:
                samples[(path, shape)].append(took)
def pct(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, int(p / 100 * len(values)))]
print(json.dumps([{"path": path, "shape": shape, "p50": pct(v, 50), "p99": pct(v, 99), "n": len(v)}
                  for (path, shape), v in samples.items()]))
"""


def docker(container: str, *argv: str, check: bool = True) -> str:
    result = subprocess.run(["docker", "exec", container, *argv], capture_output=True, text=True, check=False)
    if check and result.returncode != 0:
        sys.exit(f"in {container}: {' '.join(argv)[:80]}: {result.stderr.strip() or result.stdout.strip()}")
    return result.stdout


def address_of(container: str, interface: str) -> str:
    words = docker(container, "ip", "-4", "-o", "addr", "show", "dev", interface).split()
    if "inet" not in words:
        sys.exit(f"{container} has no IPv4 address on {interface}: is the wireguard role converged there?")
    return words[words.index("inet") + 1].split("/")[0]


def close_port(server: str) -> None:
    listing = docker(server, "nft", "-a", "list", "chain", *TABLE.split(), "input", check=False)
    for line in listing.splitlines():
        if RULE_COMMENT in line and "# handle " in line:
            docker(server, "nft", "delete", "rule", *TABLE.split(), "input", "handle", line.rsplit("# handle ", 1)[1].strip())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("--client", required=True, help="container of the calling host (an agent server)")
    parser.add_argument("--server", required=True, help="container of the called host (the state host)")
    parser.add_argument("--interface", default="wg0", help="the mesh interface (wireguard_interface)")
    parser.add_argument("--rounds", type=int, default=2000, help="round trips per path and shape")
    parser.add_argument("--quick", action="store_true", help="50 rounds: checks that the bench runs")
    args = parser.parse_args()
    rounds = 50 if args.quick else args.rounds

    plain, mesh = address_of(args.server, "eth0"), address_of(args.server, args.interface)
    close_port(args.server)
    docker(args.server, "nft", "insert", "rule", *TABLE.split(), "input", "tcp", "dport", str(PORT), "accept",
           "comment", f'"{RULE_COMMENT}"')
    responder = subprocess.Popen(
        ["docker", "exec", args.server, "python3", "-c", RESPONDER, str(PORT), plain, mesh],
        stdout=subprocess.PIPE, text=True)
    try:
        if responder.stdout.readline().strip() != "ready":
            sys.exit("the responder did not start on the server host")
        rows = json.loads(docker(args.client, "python3", "-c", CLIENT, str(PORT), str(rounds), plain, mesh))
    finally:
        responder.terminate()
        docker(args.server, "pkill", "-f", f"{PORT} {plain} {mesh}", check=False)
        close_port(args.server)

    figures = {(row["path"], row["shape"]): row for row in rows}
    print(f"{args.client} -> {args.server}: plain {plain}, mesh {mesh} ({args.interface}); "
          f"{rounds} round trips per path and shape, one persistent connection per path")
    print(f"{'shape':<12} {'plain p50':>10} {'mesh p50':>10} {'ratio':>6}   {'plain p99':>10} {'mesh p99':>10} {'ratio':>6}")
    for shape in ("query", "model call"):
        p, m = figures[("plain", shape)], figures[("mesh", shape)]
        print(f"{shape:<12} {p['p50']:>8.3f}ms {m['p50']:>8.3f}ms {m['p50'] / p['p50']:>5.2f}x"
              f"   {p['p99']:>8.3f}ms {m['p99']:>8.3f}ms {m['p99'] / p['p99']:>5.2f}x")


if __name__ == "__main__":
    main()
