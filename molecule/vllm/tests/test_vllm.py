"""Verifies the vllm role: the CPU build serving SmolLM2-135M-Instruct for real."""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import time

import pytest
import testinfra

from conftest import connect_from, listening_on, network_address

testinfra_hosts = ["ansible://molecule_hosts"]

KEY = "molecule-vllm-key-0123456789"
# The container runtime's host serves on its private address (the model router on
# vllm-debian12 calls it); the venv host on loopback.
PRIVATE_HOSTS = {"vllm-container-debian12"}
ROUTER_HOST = "vllm-debian12"
ROUTER = "http://127.0.0.1:8010"


def base(host) -> str:
    name = host.backend.get_hostname()
    return f"http://{network_address(host) if name in PRIVATE_HOSTS else '127.0.0.1'}:8000"


HTTP = """
import json, sys, urllib.request, urllib.error
url, key, body = sys.argv[1], sys.argv[2], sys.argv[3]
req = urllib.request.Request(url, data=body.encode() if body else None,
                             headers={"Content-Type": "application/json", **({"Authorization": "Bearer " + key} if key else {})})
try:
    with urllib.request.urlopen(req, timeout=120) as r:
        print(r.status); print(r.read().decode())
except urllib.error.HTTPError as e:
    print(e.code); print(e.read().decode())
"""


def http(host, path, key=KEY, body="", url=None):
    out = host.check_output("python3 -c %s %s %s %s", HTTP, (url or base(host)) + path, key, body).split("\n", 1)
    return int(out[0]), out[1] if len(out) > 1 else ""


def test_completion_through_the_api_key(host):
    body = json.dumps({"model": "smollm2", "messages": [{"role": "user", "content": "What is the capital of France? Answer in one word."}],
                       "max_tokens": 8, "temperature": 0})
    status, text = http(host, "/v1/chat/completions", body=body)
    assert status == 200, text
    answer = json.loads(text)["choices"][0]["message"]["content"]
    assert "paris" in answer.lower()


def test_v1_refused_without_or_with_a_wrong_key(host):
    assert http(host, "/v1/models", key="")[0] == 401
    assert http(host, "/v1/models", key="wrong-key")[0] == 401


def test_bound_to_loopback_or_the_private_address_only(host, prober):
    listening = listening_on(host, 8000)
    if host.backend.get_hostname() in PRIVATE_HOSTS:
        # No firewall in this scenario (the base role's is tested in its own): the private
        # address is what other hosts reach.
        assert listening == {f"tcp://{network_address(host)}:8000"}
        assert connect_from(prober, network_address(host), 8000) == "open"
        return
    assert listening == {"tcp://127.0.0.1:8000"}
    assert connect_from(prober, network_address(host), 8000) in ("refused", "timeout")


def runtime(host):
    return host.ansible.get_variables()["vllm_runtime"]


def test_served_by_the_unit(host):
    service = host.service("vllm")
    assert service.is_running and service.is_enabled
    if runtime(host) == "venv":
        user = host.check_output("ps -o user= -p $(systemctl show -p MainPID --value vllm)")
        assert user == "vllm"
        return
    # The unit runs the CPU image built from our base image, with the host's network and
    # IPC, and the data directory (models, Hugging Face cache) from the host.
    container = json.loads(host.check_output("docker inspect vllm"))[0]
    assert container["State"]["Running"]
    assert container["Config"]["Image"] == "langgraph-stack-vllm-cpu:0.32.0"
    assert container["HostConfig"]["NetworkMode"] == "host"
    assert container["HostConfig"]["IpcMode"] == "host"
    assert container["HostConfig"]["Binds"] == ["/var/lib/vllm:/var/lib/vllm"]
    assert not container["HostConfig"]["DeviceRequests"]


def test_key_only_in_the_root_only_env_file(host):
    env = host.file("/etc/vllm/vllm.env")
    assert env.user == "root" and env.mode == 0o600
    assert f"VLLM_API_KEY={KEY}" in env.content_string
    assert KEY not in host.file("/etc/systemd/system/vllm.service").content_string
    assert KEY not in host.check_output("ps -eo args")


def test_flags_derived_from_the_fan_out(host):
    unit = host.file("/etc/systemd/system/vllm.service").content_string
    # fan-out 6 plus 20% = 7.2, rounded up
    assert '"--max-num-seqs" "8"' in unit
    assert '"--enable-prefix-caching"' in unit


def test_readiness_gate_reports_the_kv_cache(host):
    result = host.ansible(
        "ai_infra.langgraph_stack.model_ready",
        f"url={base(host)} model=smollm2 api_key={KEY} min_concurrency=6 timeout=60",
        check=False,
    )
    # vLLM's own figures for 1 GiB of KV at 2,048 tokens (the planner predicts the same).
    assert result["kv_cache_max_concurrency"] == 22.75
    assert result["kv_cache_size_tokens"] == 46592


def test_capacity_refusal_fails_the_play_before_any_change(host):
    pid = host.check_output("systemctl show -p MainPID --value vllm")
    scenario = pathlib.Path(__file__).resolve().parent.parent
    run = subprocess.run(
        ["ansible-playbook", "-i", os.environ["MOLECULE_INVENTORY_FILE"], str(scenario / "refuse.yml"), "-e", "vllm_fanout=30"],
        capture_output=True, text=True, check=False, timeout=600,
    )
    output = run.stdout + run.stderr
    assert run.returncode != 0
    assert "This vLLM configuration does not fit" in output
    assert "fewer than the 30 required" in output
    assert "changed=0" in output
    assert host.check_output("systemctl show -p MainPID --value vllm") == pid


# --- the model router (roles/model_router) on vllm-debian12, over both hosts' vLLM --------

ADMIN = """
import http.client, json, socket, sys
class Unix(http.client.HTTPConnection):
    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX)
        self.sock.connect(sys.argv[1])
c = Unix("localhost")
c.putrequest("GET", "/reverse_proxy/upstreams", skip_host=True)
c.putheader("Host", "")  # Caddy's admin API on a unix socket accepts only an empty Host
c.endheaders()
print(c.getresponse().read().decode())
"""
SOCKET = "/run/model-router/admin.sock"
COMPLETION = json.dumps({"model": "smollm2", "messages": [{"role": "user", "content": "Say hi."}], "max_tokens": 2})


def router_host(host):
    if host.backend.get_hostname() != ROUTER_HOST:
        pytest.skip(f"the model router runs on {ROUTER_HOST} only")
    return host


def worker_hosts():
    return {name: testinfra.get_host(f"docker://{name}") for name in ("vllm-debian12", "vllm-container-debian12")}


def successes(router, worker) -> float:
    """vLLM's own count of finished requests on one worker (its /metrics needs no key)."""
    status, text = http(router, "/metrics", key="", url=base(worker))
    assert status == 200, text
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith("vllm:request_success_total{"))


def upstreams(router) -> dict:
    return {u["address"]: u for u in json.loads(router.check_output("python3 -c %s %s", ADMIN, SOCKET))}


def test_router_on_loopback_passes_the_key_and_keeps_its_admin_api_private(host):
    router = router_host(host)
    assert listening_on(router, 8010) == {"tcp://127.0.0.1:8010"}
    status, text = http(router, "/v1/chat/completions", body=COMPLETION, url=ROUTER)
    assert status == 200, text
    # The key is vLLM's to check; the router adds none.
    assert http(router, "/v1/models", key="", url=ROUTER)[0] == 401
    # Its admin API is a socket in a directory only the router's user can enter.
    assert router.run("runuser -u nobody -- python3 -c %s %s", ADMIN, SOCKET).rc != 0
    assert set(upstreams(router)) == {"127.0.0.1:8000", f"{network_address(worker_hosts()['vllm-container-debian12'])}:8000"}
    # This host is not an edge: the packaged Caddy (a default site on port 80) is off.
    assert not router.service("caddy").is_running and not router.service("caddy").is_enabled
    assert router.service("model-router").is_enabled


def test_the_unit_owns_the_container_and_the_router_drops_it_while_stopped(host):
    """Stopping the unit removes the container; starting it serves the model again. Around
    that (one restart of the slow part for both checks): the model router on vllm-debian12
    spreads calls over both workers, sends none to this one while it is stopped, and sends
    calls to it again once it serves."""
    if runtime(host) != "container":
        pytest.skip("the container runtime's host only")
    workers = worker_hosts()
    router = workers[ROUTER_HOST]
    address = f"{network_address(host)}:8000"

    def calls(count):
        for call in range(count):
            status, text = http(router, "/v1/chat/completions", body=COMPLETION, url=ROUTER)
            assert status == 200, (call, text)

    before = {name: successes(router, w) for name, w in workers.items()}
    calls(12)
    spread = {name: successes(router, w) - before[name] for name, w in workers.items()}
    assert sum(spread.values()) == 12 and all(spread.values()), spread

    first = host.check_output("docker inspect --format '{{.Id}}' vllm")
    host.run_expect([0], "systemctl stop vllm")
    try:
        # `docker run --rm` removes the stopped container in the background: wait for it.
        gone = "timeout 30 sh -c 'while docker inspect vllm >/dev/null 2>&1; do sleep 0.5; done'"
        assert host.run(gone).rc == 0, "the stopped container was not removed within 30 s"
        time.sleep(6)  # three health intervals (2 s)
        calls(6)
        # The active health check took it out before any call tried it: no failed dial.
        assert upstreams(router)[address]["fails"] == 0
        log = router.check_output("journalctl -u model-router -o cat --since '-60s'")
        assert address in log and "health_checker" in log
    finally:
        host.run_expect([0], "systemctl start vllm")
    result = host.ansible(
        "ai_infra.langgraph_stack.model_ready",
        f"url={base(host)} model=smollm2 api_key={KEY} min_concurrency=6 timeout=300",
        check=False,
    )
    assert result.get("kv_cache_max_concurrency") == 22.75, result
    assert host.check_output("docker inspect --format '{{.Id}}' vllm") != first
    time.sleep(5)
    back = successes(router, host)
    calls(12)
    assert successes(router, host) > back
