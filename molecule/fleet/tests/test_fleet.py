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

import functools
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
print(thread, file=sys.stderr)
'''
# The model call spans (one per model call, apps/builtin/agent/model_pools.py) since a time,
# read from Phoenix on an agent server with the key and address its env file holds.
MODEL_CALL_SPANS = r'''
import json, sys, urllib.parse, urllib.request
settings = dict(line.split("=", 1) for line in open("/etc/langgraph/langgraph.env").read().splitlines()
                if line.startswith("AI_INFRA_PHOENIX_"))
query = urllib.parse.urlencode({"name": "model call", "start_time": sys.argv[1], "limit": "1000"})
request = urllib.request.Request(settings["AI_INFRA_PHOENIX_ENDPOINT"].rstrip("/") + "/v1/projects/langgraph/spans?" + query,
                                 headers={"Authorization": "Bearer " + settings["AI_INFRA_PHOENIX_API_KEY"]})
print(json.dumps([span["attributes"] for span in json.load(urllib.request.urlopen(request, timeout=30))["data"]]))
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


def agent_runs(state, count) -> list[str]:
    """Agent runs through the edge (the model called by every node); their threads."""
    prober = testinfra.get_host("docker://fleet-prober")
    threads = []
    for number in range(count):
        result = prober.run("python3 -c %s %s %s", AGENT_RUN, f"https://{network_address(state)}", TOKEN)
        assert result.rc == 0, (number, result.stderr[-2000:])
        assert json.loads(result.stdout) == ["human", "ai"], result.stdout
        threads.append(result.stderr.strip().splitlines()[-1])
    return threads


def model_calls(server, since, threads) -> list[dict]:
    """The model call spans of these threads' runs (Phoenix receives them in batches)."""
    deadline = time.time() + 60
    while True:
        spans = [s for s in json.loads(server.check_output("python3 -c %s %s", MODEL_CALL_SPANS, since))
                 if s.get("model_call.thread_id") in threads]
        # Each run: 4 fan-out workers (vllm_fanout) and collect, each at least one call.
        if len({s["model_call.run_id"] for s in spans if s.get("model_call.node") == "collect"}) >= len(threads):
            return spans
        assert time.time() < deadline, spans
        time.sleep(3)


def test_nodes_call_their_model_pool_and_each_call_names_its_worker_and_price(state, servers, workers):
    """fleet-worker-2 is a spot machine (the vllm role put it in pool spot), fleet-worker-1
    on demand: the fan-out workers call the spot pool and collect, which a Studio user
    watches, the ondemand pool; each call's span names the worker that served it and its
    price, and none fell back."""
    since = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 5))
    threads = agent_runs(state, 2)
    spans = model_calls(servers[0], since, threads)
    for span in spans:
        node, pool = span["model_call.node"], span["model_call.pool"]
        assert (node, pool, span["model_call.pool_wanted"]) in (("worker", "spot", "spot"), ("collect", "ondemand", "ondemand")), span
        assert "model_call.fallback_from" not in span, span
        expected = ("fleet-worker-2", 0.8) if pool == "spot" else ("fleet-worker-1", 2.01)
        assert (span["model_call.worker"], span["model_call.hourly_usd"]) == expected, span
        assert span["model_call.run_id"] and span["model_call.worker_address"].endswith(":8000")
    assert sum(1 for s in spans if s["model_call.node"] == "worker") >= 4 * len(threads)


def test_runs_succeed_while_a_worker_is_stopped_and_it_returns_to_the_pool(state, servers, workers):
    """The spot worker's vLLM stopped while agent runs call the model: every run succeeds,
    its fan-out workers falling back to the ondemand pool (each such call's span says so),
    and no router dialled the stopped one (its health check took it out); once it serves
    again, calls reach it again."""
    stopped = f"{network_address(workers[1])}:8000"
    since = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 5))
    workers[1].run_expect([0], "systemctl stop vllm")
    try:
        time.sleep(6)  # three health intervals (2 s)
        threads = agent_runs(state, 3)
        for server in servers:
            assert router_upstreams(server)[stopped]["fails"] == 0
        spans = model_calls(servers[0], since, threads)
        fallen = [s for s in spans if s.get("model_call.fallback_from") == "spot"]
        assert len(fallen) >= 4 * len(threads), spans
        assert all(s["model_call.pool"] == "ondemand" and s["model_call.worker"] == "fleet-worker-1" for s in fallen), fallen
        # The attempt on the empty pool: a span of its own, no worker, nothing billed.
        assert any(s["model_call.pool"] == "spot" and "model_call.worker" not in s for s in spans), spans
    finally:
        workers[1].run_expect([0], "systemctl start vllm")
    deadline = time.time() + 600
    while workers[1].run("curl -sf --max-time 5 http://%s/health", stopped).rc != 0:
        assert time.time() < deadline, "vLLM did not come back"
        time.sleep(5)
    time.sleep(5)
    before = vllm_successes(workers[1])
    agent_runs(state, 3)
    assert vllm_successes(workers[1]) > before


def test_the_runs_of_a_window_add_up_to_the_workers_bill(state):
    """run_costs over the window of the tests above (the model pools' runs, the fallback
    runs): each run's share of each worker's bill, per pool; the runs add up to the bill of
    the workers that served them within 1%, and the seed guide's formula says less here
    (the workers were idle most of the window, which it leaves out)."""
    start = int(time.time()) - 3000
    output = playbook("run_costs.yml", "-e", f"phoenix_run_costs_window_start={time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime(start))}",
                      "-e", "phoenix_run_costs_window_seconds=3060")
    text = " ".join(output.split())  # the callback wraps long lines
    match = re.search(r"runs ([0-9.]+) USD, bill ([0-9.]+) USD; the seed guide's formula \(each call priced alone\) would say ([0-9.]+) USD", text)
    assert match, output[-4000:]
    runs, bill, seed_guide = (float(x) for x in match.groups())
    # Both workers served in the window: 3060 s of 2.01 + 0.80 USD/h.
    assert bill == pytest.approx((2.01 + 0.8) * 3060 / 3600, rel=1e-6)
    assert abs(runs - bill) / bill < 0.01
    assert "pool ondemand" in text and "pool spot" in text
    assert 0 < seed_guide < bill
    print(text[text.index("runs of "):text.index("seed guide's formula")] + "...")


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


# --- the eviction drill: spot workers launched, one reclaimed mid-run, replaced -------------
STANDIN_VARS = {"spheron_fleet_prefix": "fleet", "spheron_ssh_key_id": "standin-key", "spheron_launch_timeout": 300,
                "spheron_max_fleet_hourly_usd": 5, "spheron_pools": {"spot": {"count": 2, "gpu_type": "H100-PCIe", "instance_type": "SPOT"}}}
IN_FLIGHT = "/root/eviction-run-%d"


def vllm_metric(name, metric) -> float:
    """A vLLM metric of a stand-in machine, read on it."""
    text = subprocess.run(["docker", "exec", name, "sh", "-c", "curl -sf --max-time 2 http://$(hostname -I | cut -d' ' -f1):8000/metrics"],
                          capture_output=True, text=True, check=False).stdout
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(metric + "{"))


def model_load_seconds(name) -> float:
    """From the start of the vllm unit to vLLM's own 'Application startup complete'."""
    lines = subprocess.run(["docker", "exec", name, "journalctl", "-u", "vllm", "-o", "short-unix", "--no-pager"],
                           capture_output=True, text=True, check=False).stdout.splitlines()
    stamps = [float(line.split()[0]) for line in lines if line[:1].isdigit()]
    ready = [float(line.split()[0]) for line in lines if "Application startup complete" in line]
    return ready[-1] - stamps[0] if stamps and ready else float("nan")


def test_eviction_drill_spot_workers_reclaimed_mid_run_and_replaced(state, servers, tmp_path):
    """Against a stand-in for Spheron's API that makes and removes containers as Spheron makes
    and reclaims machines (spheron_standin.py): pools want 2 spot workers; reprovision.yml
    launches them (pools.yml) and provisions them (site.yml), and the routers send them calls.
    Runs in flight on them when the stand-in reclaims one (its container removed) all finish,
    their calls retried on another worker or pool; nothing in PostgreSQL is lost. The next
    reprovision.yml launches a replacement, provisions it, and the routers send it calls. The
    spend ceiling refuses a launch that would pass it, and nothing is launched."""
    from spheron_standin import KEY, StandIn, run_argv

    standin = StandIn(functools.partial(run_argv, "fleet-worker-1"), str(PROJECT / ".cache" / "apt-archives"))
    url = standin.serve()
    (tmp_path / "spheron.yml").write_text(json.dumps({
        "plugin": "ai_infra.langgraph_stack.spheron",
        # Ansible reaches the stand-in's machines through Docker; they take the scenario's
        # container settings (group molecule_hosts), as the fleet's own hosts do.
        "compose": {"ansible_connection": "'community.docker.docker'", "ansible_host": "spheron_name"},
        "groups": {"molecule_hosts": "true"}}))
    (tmp_path / "pools.yml").write_text(json.dumps({"all": {"vars": STANDIN_VARS}}))
    inventory = ["-i", str(tmp_path / "spheron.yml"), "-i", str(tmp_path / "pools.yml")]
    environ = dict(os.environ, SPHERON_API_KEY=KEY, SPHERON_API_URL=url)

    def run(name, *extra, expect_ok=True):
        done = subprocess.run(["ansible-playbook", "-i", os.environ["MOLECULE_INVENTORY_FILE"], *inventory,
                               str(PROJECT / "playbooks" / name), *extra], capture_output=True, text=True, check=False,
                              timeout=2400, env=dict(environ, ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0"))
        output = done.stdout + done.stderr
        assert (done.returncode == 0) == expect_ok, output[-6000:]
        return output

    reports = tmp_path / "reports"
    prober = testinfra.get_host("docker://fleet-prober")
    base = f"https://{network_address(state)}"
    try:
        started = time.monotonic()
        run("reprovision.yml", "-e", f"reprovision_report_dir={reports}")
        report = json.loads((reports / "last-report.json").read_text())
        assert report["pools_rc"] == 0 and report["apply_rc"] == 0, report
        assert standin.live() == ["fleet-gpu-spot-1", "fleet-gpu-spot-2"]
        print(f"two spot workers launched and provisioned: {time.monotonic() - started:.0f} s")
        for server in servers:
            assert len(router_upstreams(server)) == 4  # fleet-worker-1, fleet-worker-2 and the two launched

        # Runs in flight; a launched spot worker with calls running is reclaimed.
        prober.run(f"cat > /root/agent_run.py <<'EOF'\n{AGENT_RUN}\nEOF")
        for number in range(3):
            prober.run(f"nohup python3 /root/agent_run.py {base} {TOKEN} > {IN_FLIGHT % number}.out 2> {IN_FLIGHT % number}.err &")
        victim, deadline = None, time.time() + 120
        while victim is None:
            assert time.time() < deadline, "no call ran on a launched spot worker"
            victim = next((name for name in standin.live() if vllm_metric(name, "vllm:num_requests_running") > 0), None)
        standin.reclaim(victim)
        evicted = time.monotonic()
        deadline = time.time() + 300
        for number in range(3):
            while not prober.file(f"{IN_FLIGHT % number}.out").content_string.strip():
                assert time.time() < deadline, prober.file(f"{IN_FLIGHT % number}.err").content_string[-2000:]
                time.sleep(2)
            assert json.loads(prober.file(f"{IN_FLIGHT % number}.out").content_string) == ["human", "ai"]
            thread = prober.file(f"{IN_FLIGHT % number}.err").content_string.strip().splitlines()[-1]
            # Nothing lost: the thread's state and history are in PostgreSQL.
            values = api(state, "GET", f"/threads/{thread}/state")["values"]
            assert [m["type"] for m in values["messages"]] == ["human", "ai"]
            assert api(state, "POST", f"/threads/{thread}/history", {"limit": 20})
        assert standin.live() == sorted({"fleet-gpu-spot-1", "fleet-gpu-spot-2"} - {victim})

        # The scheduled run: a replacement launched, provisioned, and in the routers' pools.
        rerun = time.monotonic()
        run("reprovision.yml", "-e", f"reprovision_report_dir={reports}")
        report = json.loads((reports / "last-report.json").read_text())
        assert report["pools_rc"] == 0 and report["apply_rc"] == 0, report
        assert standin.live() == ["fleet-gpu-spot-1", "fleet-gpu-spot-2"]
        provisioned = time.monotonic()
        before = vllm_metric(victim, "vllm:request_success_total")
        deadline = time.time() + 300
        while vllm_metric(victim, "vllm:request_success_total") <= before:
            assert time.time() < deadline, "the replacement got no call"
            agent_runs(state, 1)
        serving = time.monotonic()
        launch = standin.timings[victim]["boot_s"]
        load = model_load_seconds(victim)
        print(f"eviction -> replacement serving: {serving - evicted:.0f} s (waiting for the scheduled run "
              f"{rerun - evicted:.0f} s; reprovision.yml {provisioned - rerun:.0f} s: launch (stand-in) {launch:.0f} s, "
              f"provisioning and model load {provisioned - rerun - launch:.0f} s, of it vLLM's model load {load:.0f} s; "
              f"first call {serving - provisioned:.0f} s)")

        # The ceiling: a third spot worker would bring the account to 2.40 USD/h, over 2.00.
        output = run("pools.yml", "-e", json.dumps({"spheron_max_fleet_hourly_usd": 2.0, "spheron_pools": {
            "spot": dict(STANDIN_VARS["spheron_pools"]["spot"], count=3)}}), expect_ok=False)
        assert "would bring the account's live deployments to 2.40 USD/h, over max_fleet_hourly_usd 2.00" in " ".join(output.split())
        assert standin.live() == ["fleet-gpu-spot-1", "fleet-gpu-spot-2"]
    finally:
        standin.close()
