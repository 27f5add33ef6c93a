"""The fleet playbooks on a real fleet: a state + edge host, two agent servers (Aegra), two
CPU-mode GPU workers.

A client on the prober works with threads through Caddy the whole time the rollouts run
(the health check; a thread created, a run waited on, its state read, a run whose event
stream lasts about 3 s), so consecutive calls of one thread land on either server: it must
see no error. The first rollout (a new release on every host) passes; the second (a model
the workers' vLLM does not serve) fails the readiness gate on the first server, which must
stay drained while the second keeps its release and keeps serving. Tests run in file order.
"""

from __future__ import annotations

import json
import os
import pathlib
import re
import subprocess
import time

import pytest
import testinfra

from conftest import network_address, recreate_container

TOKEN = "molecule-edge-token-0123456789abcdef"
PROJECT = pathlib.Path(os.environ["MOLECULE_PROJECT_DIRECTORY"])
FRAGMENT = "/etc/caddy/upstreams.caddy"
ENV_FILE = "/etc/langgraph/langgraph.env"
CLIENT_LOG = "/root/fleet-client.log"

# Runs on the prober: one new connection per request, every answer recorded. Each round
# is one thread's life, each call a new connection the edge may send to either server.
CLIENT = r'''
import json, os, ssl, sys, time, urllib.error, urllib.request
base, token, log_path = sys.argv[1:4]
context = ssl._create_unverified_context()
headers = {"Authorization": "Bearer " + token, "Content-Type": "application/json"}


def call(log, path, body=None, method=None, check=lambda text: True):
    started = time.time()
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(base + path, data=data, headers=headers, method=method)
    text = ""
    try:
        with urllib.request.urlopen(request, context=context, timeout=120) as answer:
            text = answer.read().decode()
            code, complete = answer.status, check(text)
    except urllib.error.HTTPError as error:
        code, complete = error.code, False
    except Exception as error:
        code, complete = "error: %s" % error, False
    log.write(json.dumps({"t": started, "s": time.time() - started, "path": path.split("/")[-1] or path,
                          "code": code, "complete": complete}) + "\n")
    log.flush()
    return text if code == 200 else None


with open(log_path, "a") as log:
    while not os.path.exists(log_path + ".stop"):
        call(log, "/health")
        thread = call(log, "/threads", {}, check=lambda text: "thread_id" in text)
        if thread:
            thread_id = json.loads(thread)["thread_id"]
            call(log, "/threads/%s/runs/wait" % thread_id, {"assistant_id": "smoke", "input": {"note": "wait"}},
                 check=lambda text: '"second"' in text)
            call(log, "/threads/%s/state" % thread_id, method="GET",
                 check=lambda text: json.loads(text)["values"].get("executions") == ["first", "second"])
            call(log, "/threads/%s/runs/stream" % thread_id,
                 {"assistant_id": "smoke", "input": {"note": "stream"}, "stream_mode": ["values"],
                  "config": {"configurable": {"second_seconds": 3}}},
                 check=lambda text: '"second"' in text)
        time.sleep(0.2)
'''
AGENT_RUN = r'''
import json, ssl, sys, urllib.request
base, token = sys.argv[1:3]
context = ssl._create_unverified_context()
headers = {"Authorization": "Bearer " + token, "Content-Type": "application/json"}
def post(path, body):
    request = urllib.request.Request(base + path, data=json.dumps(body).encode(), headers=headers)
    with urllib.request.urlopen(request, context=context, timeout=300) as answer:
        return json.loads(answer.read().decode())
thread = post("/threads", {})["thread_id"]
values = post("/threads/%s/runs/wait" % thread, {"assistant_id": "agent",
              "input": {"messages": [{"role": "user", "content": "What is the capital of France?"}]}})
print(json.dumps([m["type"] for m in values["messages"]]))
'''
ROUTER_UPSTREAMS = r'''
import http.client, socket
class Unix(http.client.HTTPConnection):
    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX)
        self.sock.connect("/run/model-router/admin.sock")
c = Unix("localhost")
c.putrequest("GET", "/reverse_proxy/upstreams", skip_host=True)
c.putheader("Host", "")
c.endheaders()
print(c.getresponse().read().decode())
'''


@pytest.fixture(scope="module")
def state():
    return testinfra.get_host("docker://fleet-state")


@pytest.fixture(scope="module")
def servers():
    return [testinfra.get_host(f"docker://fleet-server-{n}") for n in (1, 2)]


@pytest.fixture(scope="module")
def workers():
    return [testinfra.get_host(f"docker://fleet-worker-{n}") for n in (1, 2)]


def router_upstreams(server) -> dict:
    """The model router's pool on an agent server: {address: {num_requests, fails}}."""
    return {u["address"]: u for u in json.loads(server.check_output("python3 -c %s", ROUTER_UPSTREAMS))}


def vllm_successes(worker) -> float:
    metrics = worker.check_output("curl -sf http://%s:8000/metrics", network_address(worker))
    return sum(float(line.rsplit(" ", 1)[1]) for line in metrics.splitlines() if line.startswith("vllm:request_success_total{"))


def playbook(name, *extra, expect_ok=True):
    run = subprocess.run(
        ["ansible-playbook", "-i", os.environ["MOLECULE_INVENTORY_FILE"], str(PROJECT / "playbooks" / name), *extra],
        capture_output=True, text=True, check=False, timeout=1500,
        env=dict(os.environ, ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0"),
    )
    output = run.stdout + run.stderr
    assert (run.returncode == 0) == expect_ok, output[-6000:]
    return output


def recap(output):
    """{host: {ok: n, changed: n, ...}} from the PLAY RECAP."""
    hosts = {}
    for line in output.split("PLAY RECAP")[-1].splitlines()[1:]:
        parts = line.split()
        # Only "host : ok=n changed=n ...": profile_tasks' "role : task --- 1.2s" lines follow.
        if len(parts) > 2 and parts[1] == ":" and parts[2].startswith("ok="):
            hosts[parts[0]] = {k: int(v) for k, v in (p.split("=") for p in parts[2:])}
    return hosts


def fragment(state):
    lines = state.file(FRAGMENT).content_string.splitlines()
    serving = sorted(line.rsplit(" ", 1)[1] for line in lines if line.startswith("to "))
    drained = sorted(line.rsplit(" ", 1)[1] for line in lines if line.startswith("# drained: "))
    return serving, drained


def edge_upstreams(state):
    """The LangGraph servers Caddy proxies to now (the gate, a proxy too, left out)."""
    answer = json.loads(state.check_output(
        "curl -sf --unix-socket /run/caddy/admin.sock -H 'Host;' http://localhost/reverse_proxy/upstreams"))
    return sorted(item["address"] for item in answer if item["address"].endswith(":8123"))


def release(worker):
    return [line for line in worker.file(ENV_FILE).content_string.splitlines() if line.startswith("FLEET_RELEASE=")]


@pytest.fixture(scope="module")
def client(state):
    prober = testinfra.get_host("docker://fleet-prober")
    prober.run(f"rm -f {CLIENT_LOG} {CLIENT_LOG}.stop")
    prober.run(f"cat > /root/fleet_client.py <<'EOF'\n{CLIENT}\nEOF")
    prober.run(f"nohup python3 /root/fleet_client.py https://{network_address(state)} {TOKEN} {CLIENT_LOG} >/root/fleet-client.err 2>&1 &")
    time.sleep(5)
    return prober


def client_records(prober):
    return [json.loads(line) for line in prober.file(CLIENT_LOG).content_string.splitlines() if line.strip()]


def test_both_servers_serve_behind_the_edge_and_route_to_both_workers(state, servers, workers):
    assert fragment(state) == (["fleet-server-1", "fleet-server-2"], [])
    mode = state.file(FRAGMENT)
    assert (mode.user, mode.group, mode.mode) == ("root", "caddy", 0o640)
    assert edge_upstreams(state) == sorted(f"{network_address(s)}:8123" for s in servers)
    for server in servers:
        assert sorted(router_upstreams(server)) == sorted(f"{network_address(w)}:8000" for w in workers)


def test_a_joining_host_converges_alone(state, workers):
    """site.yml --limit one worker: the others' facts are read, nothing runs on them."""
    hosts = recap(playbook("site.yml", "--limit", "fleet-worker-2"))
    assert sorted(hosts) == ["fleet-worker-2"]
    assert hosts["fleet-worker-2"]["changed"] == 0
    assert hosts["fleet-worker-2"]["failed"] == 0


def report_dir():
    return PROJECT / ".cache" / "fleet-reprovision"


ALL_HOSTS = ["fleet-server-1", "fleet-server-2", "fleet-state", "fleet-worker-1", "fleet-worker-2"]


def test_reprovision_reports_drift_then_applies_it(state, servers):
    """Drift on one server (its env file edited, its server stopped): reported, then fixed."""
    servers[1].run(f"echo DRIFT=1 >> {ENV_FILE} && systemctl stop langgraph-server")
    output = playbook("reprovision.yml", "-e", f"reprovision_report_dir={report_dir()}")
    report = json.loads((report_dir() / "last-report.json").read_text())
    drift = report["drift"]
    assert sorted(drift) == ALL_HOSTS
    assert all(drift[h]["changed"] == [] for h in ALL_HOSTS if h != "fleet-server-2"), drift
    assert any("environment file" in task for task in drift["fleet-server-2"]["changed"]), drift["fleet-server-2"]
    # Applied to the drifted host only.
    assert sorted(report["applied"]) == ["fleet-server-2"]
    assert report["applied"]["fleet-server-2"]["changed"]
    assert report["apply_rc"] == 0
    assert "fleet-server-2: applied; drift:" in output
    assert "DRIFT=1" not in servers[1].file(ENV_FILE).content_string
    assert servers[1].service("langgraph-server").is_running


def test_a_second_reprovision_finds_no_drift(state):
    output = playbook("reprovision.yml", "-e", f"reprovision_report_dir={report_dir()}")
    report = json.loads((report_dir() / "last-report.json").read_text())
    assert all(host["changed"] == [] for host in report["drift"].values()), report["drift"]
    assert report["applied"] == {} and report["apply_rc"] is None
    assert output.count(": no drift; drift: 0 task(s)") == len(ALL_HOSTS)
    assert (report_dir() / "previous-report.json").exists()


def test_a_replaced_worker_is_provisioned_by_reprovision(state, servers, workers):
    """A spot worker lost and replaced: a fresh machine under the same name at another
    address. reprovision.yml provisions it fully, and every server's model router follows
    its address. (The rollouts below then run with it.)"""
    old_address = network_address(workers[1])
    recreate_container("fleet-worker-2", new_address=True)
    assert not workers[1].file("/etc/vllm/vllm.env").exists
    assert network_address(workers[1]) != old_address
    output = playbook("reprovision.yml", "-e", f"reprovision_report_dir={report_dir()}")
    report = json.loads((report_dir() / "last-report.json").read_text())
    assert report["drift_rc"] == 0 and report["apply_rc"] == 0, output[-4000:]
    assert len(report["drift"]["fleet-worker-2"]["changed"]) >= 15
    # The servers' routers held the old address; nothing else did (no host lets the
    # workers in: they are nobody's clients).
    for name in ("fleet-server-1", "fleet-server-2"):
        assert any("router's Caddyfile" in task for task in report["drift"][name]["changed"]), report["drift"][name]
    assert report["drift"]["fleet-state"]["changed"] == [] and report["drift"]["fleet-worker-1"]["changed"] == []
    assert sorted(report["applied"]) == ["fleet-server-1", "fleet-server-2", "fleet-worker-2"]
    assert workers[1].service("vllm").is_running
    new = f"{network_address(workers[1])}:8000"
    for server in servers:
        assert new in router_upstreams(server)


def test_runs_succeed_while_a_worker_is_stopped_and_it_returns_to_the_pool(state, servers, workers):
    """A worker's vLLM stopped while agent runs call the model: every run succeeds on the
    other worker, and no router dialled the stopped one (its health check took it out);
    once it serves again, calls reach it again."""
    prober = testinfra.get_host("docker://fleet-prober")
    base = f"https://{network_address(state)}"

    def agent_runs(count):
        for number in range(count):
            result = prober.run("python3 -c %s %s %s", AGENT_RUN, base, TOKEN)
            assert result.rc == 0, (number, result.stderr[-2000:])
            assert json.loads(result.stdout) == ["human", "ai"], result.stdout

    stopped = f"{network_address(workers[1])}:8000"
    workers[1].run_expect([0], "systemctl stop vllm")
    try:
        time.sleep(6)  # three health intervals (2 s)
        agent_runs(3)
        for server in servers:
            assert router_upstreams(server)[stopped]["fails"] == 0
    finally:
        workers[1].run_expect([0], "systemctl start vllm")
    deadline = time.time() + 600
    while workers[1].run("curl -sf --max-time 5 http://%s/health", stopped).rc != 0:
        assert time.time() < deadline, "vLLM did not come back"
        time.sleep(5)
    time.sleep(5)
    before = vllm_successes(workers[1])
    agent_runs(3)
    assert vllm_successes(workers[1]) > before


def test_a_rollout_dry_run_changes_nothing(state, servers):
    output = playbook("rollout.yml", "--check", "--diff", "--limit", "fleet-server-1",
                      "-e", json.dumps({"langgraph_server_env": {"FLEET_RELEASE": "2"}}))
    # The diff of the drain the rollout would make, and nothing made.
    assert "+# drained: to " in output, output[-4000:]
    assert fragment(state) == (["fleet-server-1", "fleet-server-2"], [])
    assert all(release(s) == [] for s in servers)


def test_a_new_release_rolls_out_host_by_host(client, state, servers):
    output = playbook("rollout.yml", "-e", json.dumps({"langgraph_server_env": {"FLEET_RELEASE": "2"}}))
    assert output.count("TASK [Take this batch out of the edge]") == 4
    assert [release(s) for s in servers] == [["FLEET_RELEASE=2"], ["FLEET_RELEASE=2"]]
    assert fragment(state) == (["fleet-server-1", "fleet-server-2"], [])
    assert len(edge_upstreams(state)) == 2


def test_a_rollout_stops_at_a_host_that_fails_its_gate(client, state, servers):
    output = playbook(
        "rollout.yml",
        "-e", json.dumps({"langgraph_server_env": {"FLEET_RELEASE": "3"}, "langgraph_server_vllm_model": "not-served"}),
        expect_ok=False,
    )
    assert "fleet-server-1 failed during the rollout" in output
    assert "not-served" in output
    assert "It stays drained at the edge (fleet-state)" in output
    # Stopped there: the second server was not touched and still serves.
    assert release(servers[0]) == ["FLEET_RELEASE=3"]
    assert release(servers[1]) == ["FLEET_RELEASE=2"]
    assert fragment(state) == (["fleet-server-2"], ["fleet-server-1"])
    assert edge_upstreams(state) == [f"{network_address(servers[1])}:8123"]


def test_clients_saw_no_error_through_the_rollouts(client):
    client.run(f"touch {CLIENT_LOG}.stop")
    time.sleep(8)
    records = client_records(client)
    failures = [r for r in records if r["code"] != 200 or not r["complete"]]
    assert failures == [], failures[:10]
    streams = [r for r in records if r["path"] == "stream"]
    assert len(streams) >= 10, len(streams)
    assert len([r for r in records if r["path"] == "state"]) >= 10
    assert max(r["t"] for r in records) - min(r["t"] for r in records) > 60


def test_the_failed_host_returns_with_a_limited_rollout(state, servers):
    playbook("rollout.yml", "--limit", "fleet-server-1", "-e", json.dumps({"langgraph_server_env": {"FLEET_RELEASE": "3"}}))
    assert fragment(state) == (["fleet-server-1", "fleet-server-2"], [])
    assert release(servers[0]) == ["FLEET_RELEASE=3"]


def test_verify_prints_one_table(state):
    output = playbook("verify.yml")
    rows = [line for line in output.splitlines() if re.search(r"fleet-(state|server-\d|worker-\d)\s+\|", line)]
    assert len(rows) == len(ALL_HOSTS), output[-3000:]
    for row in rows:
        assert "FAIL" not in row and "not run" not in row, row
    assert sum("ok (smollm2)" in row for row in rows) == 2


def test_prune_dry_run(state):
    output = playbook("prune.yml", "--check")
    assert "Would remove 0 thread(s)" in output


def test_the_example_inventory_backs_up_every_database(state):
    """The Spheron example turns the nightly dump on: one run of its service writes a
    readable dump of each application database on the state host."""
    assert state.service("ai-infra-pg-backup.timer").is_enabled
    state.check_output("systemctl start ai-infra-pg-backup.service")
    dumps = state.check_output("ls /var/backups/postgresql").split()
    for database in ("langgraph", "phoenix"):
        newest = sorted(name for name in dumps if name.startswith(database + "-") and name.endswith(".dump"))
        assert newest, dumps
        assert "TABLE" in state.check_output(f"pg_restore --list /var/backups/postgresql/{newest[-1]}")


# Runs on the prober: one call of the LangGraph API through the edge; prints the answer's JSON.
API_CALL = r'''
import json, ssl, sys, urllib.request
base, token, method, path, body = sys.argv[1:6]
request = urllib.request.Request(base + path, data=body.encode() if body else None, method=method,
                                 headers={"Authorization": "Bearer " + token, "Content-Type": "application/json"})
with urllib.request.urlopen(request, context=ssl._create_unverified_context(), timeout=300) as answer:
    print(answer.read().decode() or "null")
'''


def api(state, method, path, body=None):
    prober = testinfra.get_host("docker://fleet-prober")
    out = prober.check_output("python3 -c %s %s %s %s %s %s", API_CALL, f"https://{network_address(state)}", TOKEN,
                              method, path, json.dumps(body) if body is not None else "")
    return json.loads(out)


def test_restore_drill_the_state_host_replaced_and_its_dumps_restored(state, servers, tmp_path):
    """The state host (PostgreSQL, Redis, Phoenix, the edge) lost and replaced by a fresh
    machine at another address. backup.yml had copied its dumps to the control host;
    reprovision.yml provisions the new machine and points every other host at it;
    restore.yml brings the databases back. Through the new edge: a thread stopped at a
    breakpoint resumes to the end, a finished thread's history and a store item are as
    they were, and an agent run with the model succeeds."""
    waiting = api(state, "POST", "/threads", {})["thread_id"]
    api(state, "POST", f"/threads/{waiting}/runs/wait", {"assistant_id": "smoke", "input": {}, "interrupt_before": ["second"]})
    finished = api(state, "POST", "/threads", {})["thread_id"]
    api(state, "POST", f"/threads/{finished}/runs/wait", {"assistant_id": "smoke", "input": {}})
    api(state, "PUT", "/store/items", {"namespace": ["drill"], "key": "preferences", "value": {"language": "fr"}})
    history = [c["checkpoint"]["checkpoint_id"] for c in api(state, "POST", f"/threads/{finished}/history", {"limit": 10})]
    assert len(history) >= 3

    store = tmp_path / "store"
    playbook("backup.yml", "-e", f"postgresql_backup_store_dir={store}", "-e", "postgresql_backup_now=true")
    assert {p.name.split("-")[0] for p in (store / "fleet-state").glob("*.dump")} == {"langgraph", "phoenix"}

    old_address = network_address(state)
    lost = time.monotonic()
    recreate_container("fleet-state", new_address=True)
    assert network_address(state) != old_address and not state.file("/var/backups/postgresql").exists
    output = playbook("reprovision.yml", "-e", f"reprovision_report_dir={report_dir()}")
    report = json.loads((report_dir() / "last-report.json").read_text())
    assert report["drift_rc"] == 0 and report["apply_rc"] == 0, output[-4000:]
    provisioned = time.monotonic()
    # The new machine serves, with empty databases: the threads are not there yet.
    prober = testinfra.get_host("docker://fleet-prober")
    missing = prober.run("python3 -c %s %s %s %s %s %s", API_CALL, f"https://{network_address(state)}", TOKEN,
                         "GET", f"/threads/{waiting}/state", "")
    assert missing.rc != 0 and "404" in missing.stderr, missing

    output = playbook("restore.yml", "-e", f"postgresql_backup_store_dir={store}")
    assert "Restored on fleet-state the dumps of fleet-state: langgraph-" in " ".join(output.split())
    restored = time.monotonic()

    state_now = api(state, "GET", f"/threads/{waiting}/state")
    assert state_now["next"] == ["second"] and state_now["values"]["executions"] == ["first"], state_now
    final = api(state, "POST", f"/threads/{waiting}/runs/wait", {"assistant_id": "smoke", "input": None})
    assert final["executions"] == ["first", "second"], final
    assert [c["checkpoint"]["checkpoint_id"] for c in api(state, "POST", f"/threads/{finished}/history", {"limit": 10})] == history
    item = api(state, "GET", "/store/items?namespace=drill&key=preferences")
    assert item["value"] == {"language": "fr"}, item
    result = prober.run("python3 -c %s %s %s", AGENT_RUN, f"https://{network_address(state)}", TOKEN)
    assert result.rc == 0 and json.loads(result.stdout) == ["human", "ai"], result.stderr[-2000:]
    print(f"state host lost -> provisioned: {provisioned - lost:.0f} s; restore.yml: {restored - provisioned:.0f} s")
