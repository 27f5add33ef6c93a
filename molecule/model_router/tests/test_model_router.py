"""Verifies the model_router role: Caddy on the agent server over two real vLLM workers
(the CPU build serving SmolLM2), one on loopback and one on another host's private address."""

from __future__ import annotations

import json
import os
import pathlib
import re
import subprocess
import time

import pytest
import testinfra

from conftest import connect_from, http_call, listening_on, network_address

# Every test runs once, on the router's host; the workers are reached by name.
testinfra_hosts = ["ansible://agent_servers"]

KEY = "molecule-vllm-key-0123456789"
ROUTER = "http://127.0.0.1:8010"
WORKER = "model-router-worker-debian12"
SOCKET = "/run/model-router/admin.sock"
COMPLETION = json.dumps({"model": "smollm2", "messages": [{"role": "user", "content": "Say hi."}], "max_tokens": 2})
SCENARIO = pathlib.Path(__file__).resolve().parent.parent

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


def http(host, url, key=KEY, body=""):
    return http_call(host, url, key, body)


@pytest.fixture(scope="module")
def worker():
    return testinfra.get_host(f"docker://{WORKER}")


def worker_urls(router, worker) -> dict:
    """Each worker's vLLM as the router's host reaches it."""
    return {router.backend.get_hostname(): "http://127.0.0.1:8000", WORKER: f"http://{network_address(worker)}:8000"}


def successes(router, url) -> float:
    """vLLM's own count of finished requests on one worker (its /metrics needs no key)."""
    status, text = http(router, url + "/metrics", key="")
    assert status == 200, text
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith("vllm:request_success_total{"))


def upstreams(router) -> dict:
    return {u["address"]: u for u in json.loads(router.check_output("python3 -c %s %s", ADMIN, SOCKET))}


def calls(router, count):
    for call in range(count):
        status, text = http(router, ROUTER + "/v1/chat/completions", body=COMPLETION)
        assert status == 200, (call, text)


def main_pid(router) -> str:
    return router.check_output("systemctl show -p MainPID --value model-router")


def converge_router(*extra_vars: str) -> tuple[int, str]:
    """The router's play alone (router.yml), with extra vars."""
    args = ["ansible-playbook", "-i", os.environ["MOLECULE_INVENTORY_FILE"], str(SCENARIO / "router.yml")]
    for extra in extra_vars:
        args += ["-e", extra]
    run = subprocess.run(args, capture_output=True, text=True, check=False, timeout=600)
    return run.returncode, run.stdout + run.stderr


def test_on_loopback_passes_the_key_and_keeps_its_admin_api_private(host, worker, prober):
    assert listening_on(host, 8010) == {"tcp://127.0.0.1:8010"}
    assert connect_from(prober, network_address(host), 8010) in ("refused", "timeout")
    status, text = http(host, ROUTER + "/v1/chat/completions", body=COMPLETION)
    assert status == 200, text
    assert json.loads(text)["model"] == "smollm2"
    # The key is vLLM's to check; the router adds none.
    assert http(host, ROUTER + "/v1/models", key="")[0] == 401
    # Its admin API is a socket in a directory only the router's user can enter.
    assert host.run("runuser -u nobody -- python3 -c %s %s", ADMIN, SOCKET).rc != 0
    # This host's vLLM on loopback, the other's on its private address.
    assert set(upstreams(host)) == {"127.0.0.1:8000", f"{network_address(worker)}:8000"}
    # This host is not an edge: the packaged Caddy (a default site on port 80) is off.
    assert not host.service("caddy").is_running and not host.service("caddy").is_enabled
    assert host.service("model-router").is_enabled


def test_runs_sandboxed_with_a_root_owned_config_and_no_secret(host):
    user = host.check_output(f"ps -o user= -p {main_pid(host)}")
    assert user not in ("root", "caddy")  # DynamicUser: a user of its own, made at start
    config = host.file("/etc/model-router/Caddyfile")
    assert config.user == "root" and config.mode == 0o644
    assert KEY not in config.content_string
    assert "lb_policy least_conn" in config.content_string


def test_records_the_url_model_pools_and_sizes_for_the_agent_server(host, worker):
    fact = json.loads(host.file("/etc/ansible/facts.d/model_router.fact").content_string)
    address = f"{network_address(worker)}:8000"
    # Both workers sized for a fan-out of 6 (max-num-seqs: 6 plus 20%, rounded up); each
    # pool's address; each worker by the address the router dials, with its price.
    assert fact == {"url": ROUTER, "served_model": "smollm2", "fanout": 6, "max_num_seqs": 8,
                    "pools": {"ondemand": ROUTER + "/pool/ondemand", "spot": ROUTER + "/pool/spot"},
                    "workers": {"127.0.0.1:8000": {"name": host.backend.get_hostname(), "pool": "ondemand", "hourly_usd": 2.01},
                                address: {"name": WORKER, "pool": "spot", "hourly_usd": 0.8}}}
    # This host's own worker (vLLM on loopback): where a server without a router would dial it.
    worker_fact = json.loads(host.file("/etc/ansible/facts.d/vllm.fact").content_string)
    assert worker_fact == {"url": "http://127.0.0.1:8000", "served_model": "smollm2", "fanout": 6, "max_num_seqs": 8,
                           "pool": "ondemand", "hourly_usd": 2.01}


def pool_call(router, pool):
    """(status, the worker address the answer names, seconds) of one call to a pool's address."""
    script = (
        "import json, sys, time, urllib.error, urllib.request\n"
        "request = urllib.request.Request(sys.argv[1], data=sys.argv[2].encode(), headers={"
        "'Authorization': 'Bearer ' + sys.argv[3], 'Content-Type': 'application/json'})\n"
        "start = time.monotonic()\n"
        "try:\n"
        "    answer = urllib.request.urlopen(request, timeout=60)\n"
        "    status, upstream = answer.status, answer.headers.get('X-Model-Upstream', '')\n"
        "except urllib.error.HTTPError as exc:\n"
        "    status, upstream = exc.code, exc.headers.get('X-Model-Upstream', '')\n"
        "print(json.dumps([status, upstream, time.monotonic() - start]))\n"
    )
    return json.loads(router.check_output("python3 -c %s %s %s %s", script, f"{ROUTER}/pool/{pool}/v1/chat/completions",
                                          COMPLETION, KEY))


def test_each_model_pool_has_its_address_and_answers_name_the_worker(host, worker):
    """/pool/spot/ reaches only the spot worker, /pool/ondemand/ only this host's, and every
    answer names the worker that served it (X-Model-Upstream), which the agent servers'
    model call spans record."""
    address = f"{network_address(worker)}:8000"
    for _round in range(4):
        assert pool_call(host, "spot")[:2] == [200, address]
        assert pool_call(host, "ondemand")[:2] == [200, "127.0.0.1:8000"]
    status, _text = http(host, ROUTER + "/pool/nosuch/v1/models")
    assert status == 404


def test_spreads_calls_drops_a_stopped_worker_and_takes_it_back(host, worker):
    """Twelve calls reach both workers; with the remote worker's vLLM stopped, calls all
    succeed and none dialled it (the active health check took it out first); once it
    serves again, calls reach it again."""
    urls = worker_urls(host, worker)
    address = f"{network_address(worker)}:8000"
    before = {name: successes(host, url) for name, url in urls.items()}
    calls(host, 12)
    spread = {name: successes(host, url) - before[name] for name, url in urls.items()}
    assert sum(spread.values()) == 12 and all(spread.values()), spread

    worker.run_expect([0], "systemctl stop vllm")
    try:
        time.sleep(6)  # three health intervals (2 s)
        calls(host, 6)
        # The active health check took it out before any call tried it: no failed dial.
        assert upstreams(host)[address]["fails"] == 0
        log = host.check_output("journalctl -u model-router -o cat --since '-60s'")
        assert address in log and "health_checker" in log
        # Its pool has no worker now: the pool's address says so within its short try
        # duration (3 s), so a node falls back to another pool in seconds, not after 15.
        status, upstream, seconds = pool_call(host, "spot")
        assert status in (502, 503) and upstream == "" and seconds < 6, (status, upstream, seconds)
    finally:
        worker.run_expect([0], "systemctl start vllm")
    # The readiness gate, from the router's host: the worker's model serves the fan-out again.
    result = host.ansible(
        "ai_infra.langgraph_stack.model_ready",
        f"url={urls[WORKER]} model=smollm2 api_key={KEY} min_concurrency=6 timeout=300",
        check=False,
    )
    assert result.get("kv_cache_max_concurrency") == 22.75, result
    time.sleep(5)  # two health intervals: back in the pool
    back = successes(host, urls[WORKER])
    calls(host, 12)
    assert successes(host, urls[WORKER]) > back


FACT = "/etc/ansible/facts.d/vllm.fact"


@pytest.mark.parametrize(
    ("extra_vars", "other_model", "message"),
    [
        (["vllm_bind_address=127.0.0.1"], None,
         f"vLLM on {WORKER} listens on loopback, which this host cannot reach: set vllm_bind_address there"),
        (["model_router_port=8000"], None, "model_router_port 8000 is the port vLLM listens on here: choose another."),
        ([], "another-model", "serve different models"),
    ],
    ids=["remote-worker-on-loopback", "port-of-vllm", "different-models"],
)
def test_refuses_what_cannot_work_before_any_change(host, worker, extra_vars, other_model, message):
    pid = main_pid(host)
    fact = worker.file(FACT).content_string
    if other_model:
        # What the worker's vllm role recorded, as if it served another model.
        changed = json.dumps({**json.loads(fact), "served_model": other_model})
        worker.run_expect([0], "printf %s %s > " + FACT, "%s", changed)
    try:
        rc, output = converge_router(*extra_vars)
    finally:
        if other_model:
            worker.run_expect([0], "printf %s %s > " + FACT, "%s", fact)
    assert rc != 0
    assert message in output
    assert not re.search(r"changed=[1-9]", output), output
    assert main_pid(host) == pid


LISTENER = "import socket, time; s = socket.socket(); s.bind(('127.0.0.1', 8011)); s.listen(); time.sleep(600)"


def test_a_failed_reload_fails_the_play_and_keeps_the_old_config_serving(host):
    """A Caddyfile that validates but cannot load (its port is taken): the reload fails
    the play at once, the router goes on serving the old config, and the unit is not left
    stuck reloading (the next test reloads it)."""
    pid = main_pid(host)
    host.run_expect([0], "systemd-run --unit port-8011-taken python3 -c %s", LISTENER)
    try:
        rc, output = converge_router("model_router_port=8011")
    finally:
        host.run("systemctl stop port-8011-taken")
    assert rc != 0
    assert "Unable to reload service model-router" in output, output
    log = host.check_output("journalctl -u model-router -o cat --since '-120s'")
    assert "127.0.0.1:8011: bind: address already in use" in log
    assert main_pid(host) == pid
    assert host.check_output("systemctl show -p ActiveState --value model-router") == "active"
    calls(host, 1)


def test_a_new_policy_is_a_reload(host):
    """Run last: it leaves the round-robin policy in place."""
    pid = main_pid(host)
    rc, output = converge_router("model_router_lb_policy=round_robin")
    assert rc == 0, output
    assert "lb_policy round_robin" in host.file("/etc/model-router/Caddyfile").content_string
    # Same process: Caddy swapped its config, calls in flight went on.
    assert main_pid(host) == pid
    calls(host, 2)


def test_verify_tells_a_failed_server_from_the_model_that_answered(host):
    """playbooks/verify.yml on this agent server, whose model answers through the router but
    whose LangGraph server this scenario does not install: the table says the model is ok
    and the server failed, and the run fails."""
    # JSON on stdout, and only that: naming the stdout callback as the only enabled one
    # leaves out the scenario's profile_tasks, which would print between its lines.
    env = {**os.environ, "ANSIBLE_STDOUT_CALLBACK": "ansible.posix.json", "ANSIBLE_CALLBACKS_ENABLED": "ansible.posix.json"}
    run = subprocess.run(
        ["ansible-playbook", "-i", os.environ["MOLECULE_INVENTORY_FILE"], "ai_infra.langgraph_stack.verify",
         # The server's health check gives up after two tries instead of the role's 5 minutes.
         "-e", "langgraph_server_start_timeout=4"],
        capture_output=True, text=True, env=env, check=False, timeout=600,
    )
    assert run.returncode != 0 and run.stdout.startswith("{"), run.stdout[-2000:] + run.stderr[-2000:]
    tasks = [task for play in json.loads(run.stdout)["plays"] for task in play["tasks"]]
    rows = next(t for t in tasks if t["task"]["name"] == "Show every check of every host")["hosts"]["localhost"]["msg"]
    header = [cell.strip() for cell in rows[0].split("|")]
    mine = next(row for row in rows if row.startswith(host.backend.get_hostname() + " "))
    cells = dict(zip(header, (cell.strip() for cell in mine.split("|"))))
    assert cells["model"] == "ok (smollm2)", rows
    assert cells["server"].startswith("FAIL: "), rows


LONG_CALL = (
    "import json, sys, urllib.request\n"
    "body = {'model': 'smollm2', 'messages': [{'role': 'user', 'content': 'Count.'}], 'max_tokens': 600, 'ignore_eos': True}\n"
    "request = urllib.request.Request(sys.argv[1], data=json.dumps(body).encode(), headers={"
    "'Authorization': 'Bearer ' + sys.argv[2], 'Content-Type': 'application/json'})\n"
    "answer = json.load(urllib.request.urlopen(request, timeout=300))\n"
    "print(json.dumps([answer['choices'][0]['finish_reason'], answer['usage']['completion_tokens']]))\n"
)


def running(worker, url) -> float:
    """vLLM's own count of the calls it runs now, read on the worker."""
    text = worker.check_output("python3 -c %s %s", "import sys, urllib.request; "
                               "print(urllib.request.urlopen(sys.argv[1], timeout=2).read().decode())", url + "/metrics")
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith("vllm:num_requests_running{"))


def test_the_drain_lets_the_call_in_flight_finish_then_stops_vllm(host, worker):
    """Run last: it stops the spot worker's vLLM. The vllm role's drain (what pools.yml runs
    before removing a worker), with a 600-token call in flight on the worker: it waits for
    the call, which ends whole, then stops vLLM. (The firewall part, refusing new
    connections, needs the base role's firewall, which this scenario does not install:
    molecule/base tests it, and bench/eviction_to_serving.py runs it with the fleet's settings.)"""
    url = f"http://{network_address(worker)}:8000"
    host.run_expect([0], "rm -f /root/long-call.json")
    host.run_expect([0], "python3 -c %s", f"open('/root/long_call.py', 'w').write({LONG_CALL!r})")
    host.run_expect([0], "systemd-run --unit long-call sh -c %s",
                    f"python3 /root/long_call.py {ROUTER}/pool/spot/v1/chat/completions {KEY} > /root/long-call.json")
    # Read on the worker itself (a docker exec: the router's host is reached through
    # Ansible, too slow a poll for a call of seconds).
    deadline = time.time() + 60
    while running(worker, url) < 1:
        assert time.time() < deadline, host.run("journalctl -u long-call --no-pager").stdout
        time.sleep(0.2)
    run = subprocess.run(["ansible-playbook", "-i", os.environ["MOLECULE_INVENTORY_FILE"], str(SCENARIO / "drain.yml")],
                         capture_output=True, text=True, check=False, timeout=600)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]
    assert worker.run("systemctl is-active vllm").stdout.strip() == "inactive"
    assert json.loads(host.file("/root/long-call.json").content_string) == ["length", 600]
    # Once more: vLLM is not running, so the drain does nothing.
    run = subprocess.run(["ansible-playbook", "-i", os.environ["MOLECULE_INVENTORY_FILE"], str(SCENARIO / "drain.yml")],
                         capture_output=True, text=True, check=False, timeout=600)
    assert run.returncode == 0 and re.search(r"changed=0 .*skipped=", run.stdout), run.stdout[-3000:]
