"""Verifies the WireGuard mesh between three hosts: keys kept on their hosts, every peer
linked, Redis reachable over the mesh only, nothing readable on the wire, a host whose key
is rotated taken back into every peer list by its own run, and a replaced host by the next
reprovision.yml."""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys
import time

import testinfra

from conftest import captured, connect_from, mesh_address, network_address, recreate_container, restart_container

testinfra_hosts = ["ansible://molecule_hosts"]

MESH = ["wireguard-state", "wireguard-server", "wireguard-worker"]
PASSWORD = "molecule-wireguard-redis-app"
CONVERGE = pathlib.Path(__file__).parents[1] / "converge.yml"


def node(name):
    return testinfra.get_host(f"docker://{name}")


def public_key(host) -> str:
    return host.check_output("cat /etc/wireguard/wg0.pub").strip()


def peer_keys(host) -> set:
    """The public keys the running interface has as peers."""
    return set(host.check_output("wg show wg0 peers").split())


def wait_for_handshakes(host, count: int, timeout: int = 30) -> dict:
    """Peers' last handshake times (0: never) once `count` peers shook hands."""
    deadline = time.monotonic() + timeout
    while True:
        times = dict(line.split() for line in host.check_output("wg show wg0 latest-handshakes").splitlines())
        if sum(int(t) > 0 for t in times.values()) >= count or time.monotonic() > deadline:
            return times
        time.sleep(1)


REDIS_PING = """
import socket, sys
s = socket.create_connection((sys.argv[1], 6379), timeout=5)
s.sendall(("AUTH langgraph %s\\r\\nPING\\r\\n" % sys.argv[2]).encode())
data = b""
while data.count(b"\\r\\n") < 2:
    chunk = s.recv(1024)
    if not chunk:
        break
    data += chunk
print(data.decode().split())
"""


def redis_over(client, address: str) -> str:
    return client.check_output("python3 -c %s %s %s", REDIS_PING, address, PASSWORD)


def test_each_host_has_its_address_and_keeps_its_private_key(host):
    name = host.backend.get_hostname()
    assert host.service("wg-quick@wg0").is_running and host.service("wg-quick@wg0").is_enabled
    address = mesh_address(host)
    assert address.startswith("10.213.")
    if name == "wireguard-worker":
        assert address == "10.213.7.7"  # set by hand; the others are derived from the name
    key = host.file("/etc/wireguard/wg0.key")
    assert (key.user, key.group, key.mode) == ("root", "root", 0o600)
    assert host.file("/etc/wireguard").mode == 0o700
    config = host.file("/etc/wireguard/wg0.conf")
    assert config.mode == 0o600 and "PrivateKey" not in config.content_string
    assert key.content_string.strip() not in config.content_string
    # The userspace implementation (no kernel module here), as the role decided by itself.
    assert host.process.filter(comm="wireguard-go")


def test_every_host_shook_hands_with_every_other(host):
    others = [node(n) for n in MESH if n != host.backend.get_hostname()]
    assert peer_keys(host) == {public_key(o) for o in others}
    assert all(int(t) > 0 for t in wait_for_handshakes(host, len(others)).values())


def test_the_only_new_public_port_is_wireguard(host, prober):
    ruleset = host.check_output("nft list chain inet ai_infra_base input")
    assert 'udp dport 51820 accept comment "WireGuard mesh"' in ruleset
    if host.backend.get_hostname() == "wireguard-state":
        assert 'iifname "wg0" ip saddr' in ruleset and "tcp dport 6379 accept" in ruleset
        # Redis is bound to the mesh address and loopback only, and the outside machine can
        # reach neither the plain address's port nor (no route) the mesh address.
        assert connect_from(prober, network_address(host), 6379) in ("refused", "timeout")
        # (This network's gateway answers any TCP connection it routes, so the mesh
        # address is checked by what answers: never Redis.)
        reply = prober.run("python3 -c %s %s", REDIS_PING, mesh_address(host))
        assert "PONG" not in reply.stdout and "NOAUTH" not in reply.stdout


def test_redis_answers_its_client_over_the_mesh_only():
    state, server, worker = (node(n) for n in MESH)
    assert redis_over(server, mesh_address(state)) == "['+OK', '+PONG']"
    # Through the interface, as every peer's address is.
    assert "dev wg0" in server.check_output(f"ip route get {mesh_address(state)}")
    # A mesh host the firewall does not list as a client is dropped.
    assert connect_from(worker, mesh_address(state), 6379) == "timeout"


def test_no_secret_crosses_the_wire_in_clear():
    """The same capture sees the password when it is sent outside the mesh (so it can fail),
    and does not see it while the agent server authenticates to Redis over the mesh."""
    state, server = node("wireguard-state"), node("wireguard-server")
    plain = network_address(state)
    frames, found = captured(state, [PASSWORD], lambda: server.run(
        "python3 -c %s", f"import socket; socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(b'AUTH langgraph {PASSWORD}', ('{plain}', 9))"))
    assert found == {PASSWORD} and frames > 0
    frames, found = captured(state, [PASSWORD], lambda: [redis_over(server, mesh_address(state)) for _login in range(3)])
    assert found == set() and frames > 0


def test_mesh_latency_benchmark_quick_mode():
    """bench/mesh_latency.py --quick between the agent server and the state host: the bench
    does not rot, it prints both shapes on both paths, and its firewall opening and its
    responder are gone afterwards."""
    collection = pathlib.Path(__file__).resolve().parents[3]
    run = subprocess.run(
        [sys.executable, str(collection / "bench" / "mesh_latency.py"), "--client", "wireguard-server",
         "--server", "wireguard-state", "--quick"],
        capture_output=True, text=True, check=False, timeout=300,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    rows = [line for line in run.stdout.splitlines() if line.startswith(("query", "model call"))]
    assert len(rows) == 2 and all(line.count("ms") == 4 for line in rows), run.stdout
    state = node("wireguard-state")
    assert "mesh bench" not in state.check_output("nft list ruleset")
    assert state.run("pgrep -f '[9]431 '").rc == 1


def converge(*extra) -> None:
    run = subprocess.run(
        ["ansible-playbook", "-i", os.environ["MOLECULE_INVENTORY_FILE"], str(CONVERGE), *extra],
        capture_output=True, text=True, check=False,
        env={**os.environ, "ANSIBLE_NOCOLOR": "1", "ANSIBLE_FORCE_COLOR": "0"},
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]


def test_a_rotated_key_replaces_the_old_one_in_every_peer_list():
    state, server, worker = (node(n) for n in MESH)
    old = public_key(server)
    before = server.check_output("cat /etc/wireguard/wg0.key")
    # Only the server's run, yet every peer takes its new key.
    converge("--limit", "wireguard-server", "-e", "wireguard_key_serial=2")
    new = public_key(server)
    assert new != old and server.check_output("cat /etc/wireguard/wg0.key") != before
    for peer in (state, worker):
        assert new in peer_keys(peer) and old not in peer_keys(peer)
    assert server.check_output("wg show wg0 public-key").strip() == new
    assert redis_over(server, mesh_address(state)) == "['+OK', '+PONG']"


def reprovision(tmp_path, *extra_args) -> dict:
    """playbooks/reprovision.yml over the whole mesh, as the schedule runs it, with this
    scenario's converge.yml as the site playbook; its report."""
    collection = pathlib.Path(__file__).resolve().parents[3]
    run = subprocess.run(
        ["ansible-playbook", "-i", os.environ["MOLECULE_INVENTORY_FILE"], str(collection / "playbooks" / "reprovision.yml"),
         "-e", json.dumps({"reprovision_site_playbook": str(CONVERGE), "reprovision_report_dir": str(tmp_path),
                           "reprovision_extra_args": list(extra_args)})],
        capture_output=True, text=True, check=False,
        env={**os.environ, "ANSIBLE_NOCOLOR": "1", "ANSIBLE_FORCE_COLOR": "0"},
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]
    return json.loads((tmp_path / "last-report.json").read_text())


def test_a_replaced_host_is_taken_in_by_reprovision(tmp_path):
    """A new machine under the old name: new key, new public address. The next
    reprovision.yml (no limit, as the schedule runs it) finds it drifted, provisions it,
    puts it in every peer list and removes the old key everywhere."""
    state, server, worker = (node(n) for n in MESH)
    old_key, old_address = public_key(worker), network_address(worker)
    recreate_container("wireguard-worker", new_address=True)
    worker = node("wireguard-worker")
    assert network_address(worker) != old_address
    report = reprovision(tmp_path, "-e", "wireguard_key_serial=2")
    assert report["drift"]["wireguard-worker"]["changed"] and report["applied"]["wireguard-worker"]["changed"]
    new_key = public_key(worker)
    assert new_key != old_key
    for peer in (state, server):
        assert new_key in peer_keys(peer) and old_key not in peer_keys(peer)
    assert all(int(t) > 0 for t in wait_for_handshakes(worker, 2).values())
    assert mesh_address(worker) == "10.213.7.7"
    # And the mesh still carries the server's Redis traffic.
    assert redis_over(server, mesh_address(state)) == "['+OK', '+PONG']"


# An ICMP echo over raw sockets (the hosts have no ping binary; the base firewall accepts
# echo requests): "reply" when the address answered within two seconds.
PING = """
import os, socket, struct, sys, time
def checksum(data):
    total = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    total = (total >> 16) + (total & 0xFFFF)
    return ~(total + (total >> 16)) & 0xFFFF
ident = os.getpid() & 0xFFFF
header = struct.pack("!BBHHH", 8, 0, 0, ident, 1)
packet = struct.pack("!BBHHH", 8, 0, checksum(header + b"mesh"), ident, 1) + b"mesh"
s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
s.settimeout(2)
s.sendto(packet, (sys.argv[1], 0))
end = time.monotonic() + 2
try:
    while time.monotonic() < end:
        data, source = s.recvfrom(2048)
        if source[0] == sys.argv[1] and data[20] == 0:
            print("reply")
            break
    else:
        print("none")
except socket.timeout:
    print("none")
"""


def pings(source, address: str, timeout: int = 30) -> bool:
    """Whether the address answers within the timeout. After an interface restart the
    first handshake can be lost (the key is set just after the peers, by PostUp); WireGuard
    tries again 5 s later, so a client that retries, as this one does, gets through."""
    deadline = time.monotonic() + timeout
    while source.check_output("python3 -c %s %s", PING, address) != "reply":
        if time.monotonic() > deadline:
            return False
    return True


def test_a_host_given_a_new_mesh_address_is_routed_there_by_every_peer():
    """The worker's address changed by hand (a run limited to it): every peer's reload
    routes the new address through the mesh and drops the old route."""
    state, server, worker = (node(n) for n in MESH)
    assert pings(state, "10.213.7.7")
    converge("--limit", "wireguard-worker", "-e", "molecule_worker_address=10.213.8.8", "-e", "wireguard_key_serial=2")
    assert mesh_address(worker) == "10.213.8.8"
    for peer in (state, server):
        routes = peer.check_output("ip -o route show dev wg0")
        assert "10.213.8.8" in routes and "10.213.7.7" not in routes
        assert pings(peer, "10.213.8.8")


def test_after_a_reboot_the_mesh_and_the_service_on_it_come_back():
    """Redis binds the mesh address even if it starts before the interface has it (non-local
    binds); the firewall, the interface and Redis are back, and the server reaches it."""
    restart_container("wireguard-state")
    state, server = node("wireguard-state"), node("wireguard-server")
    assert state.service("wg-quick@wg0").is_running
    deadline = time.monotonic() + 60
    while "PONG" not in server.run("python3 -c %s %s %s", REDIS_PING, mesh_address(state), PASSWORD).stdout:
        assert time.monotonic() < deadline, "Redis did not answer over the mesh within 60 s of the reboot"
        time.sleep(2)
    assert 'udp dport 51820 accept' in state.check_output("nft list chain inet ai_infra_base input")


def test_a_host_set_absent_leaves_and_the_others_drop_it():
    """wireguard_state: absent for the worker, in a run over every host: its interface and
    its port are gone, and no peer lists it (none brings its interface back)."""
    state, server, worker = (node(n) for n in MESH)
    gone = public_key(worker)
    converge("-e", "molecule_worker_state=absent", "-e", "wireguard_key_serial=2")
    assert not worker.service("wg-quick@wg0").is_running and not worker.service("wg-quick@wg0").is_enabled
    assert not worker.file("/etc/wireguard/wg0.conf").exists
    assert "51820" not in worker.check_output("nft list chain inet ai_infra_base input")
    for peer in (state, server):
        assert gone not in peer_keys(peer) and "wireguard-worker" not in peer.file("/etc/wireguard/wg0.conf").content_string
    assert redis_over(server, mesh_address(state)) == "['+OK', '+PONG']"
