"""Shared testinfra fixtures for every Molecule scenario.

Each scenario has a `<scenario>-prober` container on the same Docker network as the hosts
under test (see .config/molecule/config.yml). Connection checks run from there, so they
see what another machine on the network sees, firewall included.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import time

import pytest
import testinfra

PROBE = """
import socket, sys
try:
    socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=float(sys.argv[3])).close()
except ConnectionRefusedError:
    print("refused")
except OSError:
    print("timeout")
else:
    print("open")
"""


def scenario_name() -> str:
    return os.environ["MOLECULE_SCENARIO_NAME"]


@pytest.fixture(scope="session")
def prober():
    return testinfra.get_host(f"docker://{scenario_name()}-prober")


@pytest.fixture()
def target_name(host) -> str:
    return host.backend.get_hostname()


def listening_on(host, port: int) -> set:
    """The host's listening TCP sockets on a port, as testinfra names them (tcp://ADDR:PORT)."""
    return {s for s in host.socket.get_listening_sockets() if s.endswith(f":{port}")}


def network_address(host) -> str:
    """The host's address on the scenario's Docker network (what the prober connects to)."""
    return host.interface("eth0").addresses[0]


def connect_from(prober, address: str, port: int, timeout: float = 2.0) -> str:
    """'open', 'refused' (port closed) or 'timeout' (dropped), as seen from the prober."""
    result = prober.run("python3 -c %s %s %s %s", PROBE, address, str(port), str(timeout))
    assert result.rc == 0, result.stderr
    return result.stdout.strip()


def wait_until_booted(name: str, timeout: int = 120) -> None:
    """Wait until systemd in a host container finished booting."""
    deadline = time.monotonic() + timeout
    state = "unknown"
    while time.monotonic() < deadline:
        state = subprocess.run(
            ["docker", "exec", name, "systemctl", "is-system-running"],
            capture_output=True, text=True, check=False,
        ).stdout.strip()
        if state in ("running", "degraded"):
            return
        time.sleep(1)
    raise AssertionError(f"{name} did not finish booting within {timeout}s (state: {state})")


def restart_container(name: str, timeout: int = 120) -> None:
    """Reboot a host container (docker restart) and wait until systemd finished booting."""
    subprocess.run(["docker", "restart", name], check=True, capture_output=True)
    wait_until_booted(name, timeout)


def recreate_container(name: str, new_address: bool = False, timeout: int = 120) -> None:
    """Replace a host container by a fresh one from its image: same name, flags, volumes and
    network (a replaced machine), and wait for systemd. Docker gives the freed address to
    the next container; with new_address a placeholder holds it while the new one starts,
    so the replacement gets another address, as a replaced cloud machine does."""
    info = json.loads(subprocess.run(["docker", "inspect", name], check=True, capture_output=True, text=True).stdout)[0]
    config, host_config = info["Config"], info["HostConfig"]
    network = next(iter(info["NetworkSettings"]["Networks"]))
    argv = ["docker", "run", "--detach", "--name", name, "--hostname", config["Hostname"],
            "--cgroupns", host_config["CgroupnsMode"], "--shm-size", str(host_config["ShmSize"]),
            "--network", network]
    if config.get("StopSignal"):
        argv += ["--stop-signal", config["StopSignal"]]
    argv += [f"--cap-add={cap}" for cap in host_config.get("CapAdd") or []]
    argv += [f"--security-opt={opt}" for opt in host_config.get("SecurityOpt") or []]
    argv += [f"--tmpfs={path}" + (f":{opts}" if opts else "") for path, opts in (host_config.get("Tmpfs") or {}).items()]
    argv += [f"--volume={bind}" for bind in host_config.get("Binds") or []]
    argv += [f"--device={device['PathOnHost']}:{device['PathInContainer']}" for device in host_config.get("Devices") or []]
    argv += [f"--sysctl={key}={value}" for key, value in (host_config.get("Sysctls") or {}).items()]
    argv += [f"--label={key}={value}" for key, value in (config.get("Labels") or {}).items()]
    placeholder = f"{name}-placeholder"
    subprocess.run(["docker", "rm", "--force", name], check=True, capture_output=True)
    try:
        if new_address:
            subprocess.run(["docker", "run", "--detach", "--name", placeholder, "--network", network,
                            config["Image"], "sleep", "infinity"], check=True, capture_output=True)
        subprocess.run(argv + [config["Image"], *(config.get("Cmd") or [])], check=True, capture_output=True)
    finally:
        subprocess.run(["docker", "rm", "--force", placeholder], check=False, capture_output=True)
    wait_until_booted(name, timeout)


HTTP_CALL = """
import sys, urllib.request, urllib.error
url, key, body = sys.argv[1], sys.argv[2], sys.argv[3]
req = urllib.request.Request(url, data=body.encode() if body else None,
                             headers={"Content-Type": "application/json", **({"Authorization": "Bearer " + key} if key else {})})
try:
    with urllib.request.urlopen(req, timeout=120) as r:
        print(r.status); print(r.read().decode())
except urllib.error.HTTPError as e:
    print(e.code); print(e.read().decode())
"""


def http_call(host, url: str, key: str = "", body: str = "") -> tuple[int, str]:
    """An HTTP call made on the host (a POST of the JSON body if any, else a GET, with a
    bearer key if any): the status and the answer's text, errors included."""
    out = host.check_output("python3 -c %s %s %s %s", HTTP_CALL, url, key, body).split("\n", 1)
    return int(out[0]), out[1] if len(out) > 1 else ""


EXCHANGE = """
import socket, sys, time
s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=5)
s.sendall(sys.argv[3].encode().decode("unicode_escape").encode())
time.sleep(0.5)
s.settimeout(2)
data = b""
try:
    while True:
        chunk = s.recv(65536)
        if not chunk:
            break
        data += chunk
except socket.timeout:
    pass
sys.stdout.write(data.decode(errors="replace"))
"""


def exchange_from(prober, address: str, port: int, payload: str) -> str:
    """Send payload (backslash escapes allowed, e.g. \\r\\n) over TCP from the prober;
    return what the server answered within a short wait."""
    result = prober.run("python3 -c %s %s %s %s", EXCHANGE, address, str(port), payload)
    assert result.rc == 0, result.stderr
    return result.stdout


def apt_update_with(host, sources: str):
    """apt-get update from one sources file only, into a throwaway lists directory.

    Returns the command result: rc 0 and no W: lines when the repository's signature
    checks out against the keyring its Signed-By names."""
    return host.run(
        "d=$(mktemp -d) && mkdir $d/partial && chown _apt $d $d/partial && "
        "apt-get update -o Dir::Etc::sourcelist=%s -o Dir::Etc::sourceparts=- "
        "-o Dir::State::lists=$d -o APT::Get::List-Cleanup=0; rc=$?; rm -rf $d; exit $rc",
        sources,
    )


def signature_refused_with_other_key(host, sources: str) -> bool:
    """True when apt refuses the repository once Signed-By names Debian's keyring instead."""
    copy = "/tmp/other-key.sources"
    host.run(
        "sed 's#^Signed-By: .*#Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg#' %s > %s",
        sources,
        copy,
    )
    result = apt_update_with(host, copy)
    output = result.stdout + result.stderr
    # apt 2.6 (bookworm) says NO_PUBKEY; apt 3 (trixie, sqv) says "Missing key"; both then
    # refuse the repository as not signed.
    return result.rc != 0 and "is not signed" in output and ("NO_PUBKEY" in output or "Missing key" in output)


# Captures one interface (eth0: the one to the Internet on a Spheron host; wg0: the mesh,
# after decryption) with a raw socket for a few seconds and says which secrets appeared in
# any frame: tcpdump's view, no package.
CAPTURE = """
import json, socket, sys, time
interface, seconds, needles = sys.argv[1], float(sys.argv[2]), sys.argv[3:]
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(3))
s.bind((interface, 0))
s.settimeout(0.5)
frames, found, end = 0, set(), time.monotonic() + seconds
open("/tmp/capture.started", "w").close()
while time.monotonic() < end:
    try:
        frame = s.recv(65535)
    except socket.timeout:
        continue
    frames += 1
    found.update(n for n in needles if n.encode() in frame)
print(json.dumps({"frames": frames, "found": sorted(found)}))
"""


def captured(host, needles: list[str], action, seconds: float = 6, interface: str = "eth0") -> tuple[int, set]:
    """Capture an interface of host while action() runs: (frames seen, the needles found)."""
    host.run("rm -f /tmp/capture.started /tmp/capture.out")
    host.run("sh -c %s", "python3 -c %s %s %s %s > /tmp/capture.out 2>&1 &" % (
        shlex.quote(CAPTURE), interface, seconds, " ".join(shlex.quote(n) for n in needles)))
    for _attempt in range(50):
        if host.file("/tmp/capture.started").exists:
            break
        time.sleep(0.1)
    action()
    time.sleep(seconds + 1)
    result = json.loads(host.check_output("cat /tmp/capture.out"))
    return result["frames"], set(result["found"])


def mesh_address(host, interface: str = "wg0") -> str:
    """The host's address on the WireGuard mesh."""
    return host.check_output(f"ip -4 -o addr show dev {interface}").split()[3].split("/")[0]


def run_playbook(playbook, *extra: str, timeout: int = 600) -> subprocess.CompletedProcess:
    """ansible-playbook on the scenario's own inventory, plain output; the caller asserts on
    its return code and output."""
    return subprocess.run(
        ["ansible-playbook", "-i", os.environ["MOLECULE_INVENTORY_FILE"], str(playbook), *extra],
        capture_output=True, text=True, check=False, timeout=timeout,
        env=dict(os.environ, ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0"),
    )


def module_result(host, module: str, args: str) -> dict:
    """A module's result on the host, failed or not. testinfra raises on a result marked
    "failed", but the ad-hoc `--tree` output it reads carries only the module's own keys
    (ansible-core 2.19): both shapes come back as the result itself."""
    try:
        return host.ansible(module, args, check=False)
    except testinfra.modules.ansible.AnsibleException as exc:
        return exc.result
