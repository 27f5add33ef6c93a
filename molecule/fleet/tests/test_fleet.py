"""The fleet playbooks on a real fleet: one state + edge host, two CPU-mode GPU workers.

A client on the prober sends requests through Caddy the whole time the rollouts run (a
health check, a run that waits, and a run whose event stream lasts about 3 s): it must see
no error. The first rollout (a new release on both workers) passes; the second (a model the
workers' vLLM does not serve) fails the readiness gate on the first worker, which must stay
drained while the second keeps its release and keeps serving. Tests run in file order.
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

# Runs on the prober: one new connection per request, every answer recorded.
CLIENT = r'''
import json, os, ssl, sys, time, urllib.error, urllib.request
base, token, log_path = sys.argv[1:4]
context = ssl._create_unverified_context()
headers = {"Authorization": "Bearer " + token, "Content-Type": "application/json"}
wait = json.dumps({"assistant_id": "smoke", "input": {"note": "wait"}}).encode()
stream = json.dumps({"assistant_id": "smoke", "input": {"note": "stream"}, "stream_mode": ["values"],
                     "config": {"configurable": {"second_seconds": 3}}}).encode()
with open(log_path, "a") as log:
    while not os.path.exists(log_path + ".stop"):
        for path, body in (("/ok", None), ("/runs/wait", wait), ("/runs/stream", stream)):
            started = time.time()
            request = urllib.request.Request(base + path, data=body, headers=headers)
            try:
                with urllib.request.urlopen(request, context=context, timeout=120) as answer:
                    text = answer.read().decode()
                    code = answer.status
                    complete = '"second"' in text if path != "/ok" else True
            except urllib.error.HTTPError as error:
                code, complete = error.code, False
            except Exception as error:
                code, complete = "error: %s" % error, False
            log.write(json.dumps({"t": started, "s": time.time() - started, "path": path,
                                  "code": code, "complete": complete}) + "\n")
            log.flush()
        time.sleep(0.2)
'''


@pytest.fixture(scope="module")
def state():
    return testinfra.get_host("docker://fleet-state")


@pytest.fixture(scope="module")
def workers():
    return [testinfra.get_host(f"docker://fleet-worker-{n}") for n in (1, 2)]


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
    answer = json.loads(state.check_output("curl -sf http://localhost:2019/reverse_proxy/upstreams"))
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


def test_both_workers_serve_behind_the_edge(state, workers):
    assert fragment(state) == (["fleet-worker-1", "fleet-worker-2"], [])
    mode = state.file(FRAGMENT)
    assert (mode.user, mode.group, mode.mode) == ("root", "caddy", 0o640)
    assert edge_upstreams(state) == sorted(f"{network_address(w)}:8123" for w in workers)


def test_a_joining_host_converges_alone(state, workers):
    """site.yml --limit one worker: the others' facts are read, nothing runs on them."""
    hosts = recap(playbook("site.yml", "--limit", "fleet-worker-2"))
    assert sorted(hosts) == ["fleet-worker-2"]
    assert hosts["fleet-worker-2"]["changed"] == 0
    assert hosts["fleet-worker-2"]["failed"] == 0


def report_dir():
    return PROJECT / ".cache" / "fleet-reprovision"


def test_reprovision_reports_drift_then_applies_it(state, workers):
    """Drift on one worker (its env file edited, its server stopped): reported, then fixed."""
    workers[1].run(f"echo DRIFT=1 >> {ENV_FILE} && systemctl stop langgraph-server")
    output = playbook("reprovision.yml", "-e", f"reprovision_report_dir={report_dir()}")
    report = json.loads((report_dir() / "last-report.json").read_text())
    drift = report["drift"]
    assert sorted(drift) == ["fleet-state", "fleet-worker-1", "fleet-worker-2"]
    assert drift["fleet-state"]["changed"] == [] and drift["fleet-worker-1"]["changed"] == []
    assert any("environment file" in task for task in drift["fleet-worker-2"]["changed"]), drift["fleet-worker-2"]
    # Applied to the drifted host only.
    assert sorted(report["applied"]) == ["fleet-worker-2"]
    assert report["applied"]["fleet-worker-2"]["changed"]
    assert report["apply_rc"] == 0
    assert "fleet-worker-2: applied; drift:" in output
    assert "DRIFT=1" not in workers[1].file(ENV_FILE).content_string
    assert workers[1].service("langgraph-server").is_running


def test_a_second_reprovision_finds_no_drift(state, workers):
    output = playbook("reprovision.yml", "-e", f"reprovision_report_dir={report_dir()}")
    report = json.loads((report_dir() / "last-report.json").read_text())
    assert all(host["changed"] == [] for host in report["drift"].values()), report["drift"]
    assert report["applied"] == {} and report["apply_rc"] is None
    assert output.count(": no drift; drift: 0 task(s)") == 3
    assert (report_dir() / "previous-report.json").exists()


def test_a_replaced_worker_is_provisioned_by_reprovision(state, workers):
    """A spot worker lost and replaced: a fresh machine under the same name at another
    address. reprovision.yml provisions it fully, and the firewalls, PostgreSQL's client
    list and the edge follow its address. (The rollouts below then run with it.)"""
    old_address = network_address(workers[1])
    recreate_container("fleet-worker-2", new_address=True)
    assert not workers[1].file(ENV_FILE).exists
    assert network_address(workers[1]) != old_address
    output = playbook("reprovision.yml", "-e", f"reprovision_report_dir={report_dir()}")
    report = json.loads((report_dir() / "last-report.json").read_text())
    assert report["drift_rc"] == 0 and report["apply_rc"] == 0, output[-4000:]
    assert len(report["drift"]["fleet-worker-2"]["changed"]) > 20
    # The state and edge host held the old address: firewall, pg_hba and Caddy's upstreams.
    state_drift = " ".join(report["drift"]["fleet-state"]["changed"])
    assert "firewall" in state_drift and "client authentication" in state_drift
    assert "LangGraph servers the edge" in state_drift
    # The other worker only in its firewall (the scenario's rules name every worker).
    assert report["drift"]["fleet-worker-1"]["changed"]
    assert all("firewall" in task or "nftables" in task for task in report["drift"]["fleet-worker-1"]["changed"])
    assert sorted(report["applied"]) == ["fleet-state", "fleet-worker-1", "fleet-worker-2"]
    assert workers[1].service("vllm").is_running and workers[1].service("langgraph-server").is_running
    assert fragment(state) == (["fleet-worker-1", "fleet-worker-2"], [])
    assert edge_upstreams(state) == sorted(f"{network_address(w)}:8123" for w in workers)
    # The edge reaches the new worker through the worker's firewall.
    state.run_expect([0], "curl -sf --max-time 10 http://%s:8123/ok", network_address(workers[1]))


def test_a_rollout_dry_run_changes_nothing(state, workers):
    output = playbook("rollout.yml", "--check", "--diff", "--limit", "fleet-worker-1",
                      "-e", json.dumps({"langgraph_server_env": {"FLEET_RELEASE": "2"}}))
    # The diff of the drain the rollout would make, and nothing made.
    assert "+# drained: to " in output, output[-4000:]
    assert fragment(state) == (["fleet-worker-1", "fleet-worker-2"], [])
    assert all(release(w) == [] for w in workers)


def test_a_new_release_rolls_out_host_by_host(client, state, workers):
    output = playbook("rollout.yml", "-e", json.dumps({"langgraph_server_env": {"FLEET_RELEASE": "2"}}))
    assert output.count("TASK [Take this batch out of the edge]") == 2
    assert [release(w) for w in workers] == [["FLEET_RELEASE=2"], ["FLEET_RELEASE=2"]]
    assert fragment(state) == (["fleet-worker-1", "fleet-worker-2"], [])
    assert len(edge_upstreams(state)) == 2


def test_a_rollout_stops_at_a_host_that_fails_its_gate(client, state, workers):
    output = playbook(
        "rollout.yml",
        "-e", json.dumps({"langgraph_server_env": {"FLEET_RELEASE": "3"}, "langgraph_server_vllm_model": "not-served"}),
        expect_ok=False,
    )
    assert "fleet-worker-1 failed during the rollout" in output
    assert "not-served" in output
    assert "It stays drained at the edge (fleet-state)" in output
    # Stopped there: the second worker was not touched and still serves.
    assert release(workers[0]) == ["FLEET_RELEASE=3"]
    assert release(workers[1]) == ["FLEET_RELEASE=2"]
    assert fragment(state) == (["fleet-worker-2"], ["fleet-worker-1"])
    assert edge_upstreams(state) == [f"{network_address(workers[1])}:8123"]


def test_clients_saw_no_error_through_the_rollouts(client):
    client.run(f"touch {CLIENT_LOG}.stop")
    time.sleep(8)
    records = client_records(client)
    failures = [r for r in records if r["code"] != 200 or not r["complete"]]
    assert failures == [], failures[:10]
    streams = [r for r in records if r["path"] == "/runs/stream"]
    assert len(streams) >= 10, len(streams)
    assert max(r["t"] for r in records) - min(r["t"] for r in records) > 60


def test_the_failed_host_returns_with_a_limited_rollout(state, workers):
    playbook("rollout.yml", "--limit", "fleet-worker-1", "-e", json.dumps({"langgraph_server_env": {"FLEET_RELEASE": "3"}}))
    assert fragment(state) == (["fleet-worker-1", "fleet-worker-2"], [])
    assert release(workers[0]) == ["FLEET_RELEASE=3"]


def test_verify_prints_one_table(state, workers):
    output = playbook("verify.yml")
    rows = [line for line in output.splitlines() if re.search(r"fleet-(state|worker-\d)\s+\|", line)]
    assert len(rows) == 3, output[-3000:]
    for row in rows:
        assert "FAIL" not in row and "not run" not in row, row
    assert sum("ok (smollm2)" in row for row in rows) == 2


def test_prune_dry_run(state):
    output = playbook("prune.yml", "--check")
    assert "Would remove 0 thread(s)" in output
