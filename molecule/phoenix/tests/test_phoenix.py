"""Verifies the phoenix role in the multi-host layout: a real Phoenix on phoenix-debian13
storing in the real PostgreSQL of phoenix-debian12 over TLS, auth on, its retention changed
by a later converge, its ingestion key kept and handed to the agent server (Aegra) on
phoenix-server, whose runs arrive as spans carrying thread, run and GPU price; the
cost-per-run playbook reads them back; Caddy serves Phoenix behind the same gate."""

from __future__ import annotations

import base64
import json
import os
import pathlib
import subprocess
import time

import pytest
import testinfra

from conftest import connect_from, listening_on, network_address

testinfra_hosts = ["ansible://phoenix-debian13"]

ADMIN = "molecule-admin-0123456789abcdefghijklm"
EDGE_TOKEN = "molecule-edge-token-0123456789abcdef"
KEY_FILE = "/etc/phoenix/ingestion.key"
ROOT_CA = "/var/lib/caddy/.local/share/caddy/pki/authorities/local/root.crt"
SCENARIO = pathlib.Path(__file__).resolve().parent.parent
COLLECTION = SCENARIO.parent.parent


@pytest.fixture(scope="module")
def worker():
    """The agent server."""
    return testinfra.get_host("docker://phoenix-server")


@pytest.fixture(scope="module")
def state():
    return testinfra.get_host("docker://phoenix-debian12")


def url(host) -> str:
    return f"http://{network_address(host)}:6006"


def status(host, path, token=None, method="GET"):
    auth = f"-H 'Authorization: Bearer {token}'" if token else ""
    return host.check_output(f"curl -s -o /dev/null -w '%{{http_code}}' -X {method} {auth} {url(host)}{path}")


def api(host, path, token=ADMIN):
    return json.loads(host.check_output(f"curl -sf -H 'Authorization: Bearer {token}' '{url(host)}{path}'"))


def playbook(name, *extra):
    run = subprocess.run(
        ["ansible-playbook", "-i", os.environ["MOLECULE_INVENTORY_FILE"], str(name), *extra],
        capture_output=True, text=True, check=False, timeout=900,
        env=dict(os.environ, ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0"),
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]
    return run.stdout


def test_healthy_and_ready(host):
    assert host.check_output(f"curl -sf {url(host)}/healthz") == "OK"
    assert status(host, "/readyz") == "200"


def test_api_refuses_requests_without_a_key(host):
    assert status(host, "/v1/projects") == "401"
    assert status(host, "/v1/traces", method="POST") == "401"
    assert status(host, "/v1/system/api_keys", token="not-the-admin-secret") == "401"


def test_ingestion_key_kept_root_only_and_accepted(host):
    key_file = host.file(KEY_FILE)
    assert key_file.user == "root" and key_file.mode == 0o600
    key = key_file.content_string.strip()
    assert status(host, "/v1/projects", token=key) == "200"
    names = [k["name"] for k in api(host, "/v1/system/api_keys")["data"]]
    assert names.count("langgraph-servers") == 1


def test_key_handed_to_the_server_in_its_private_env_file_only(host, worker):
    key = host.file(KEY_FILE).content_string.strip()
    env = worker.file("/etc/langgraph/langgraph.env")
    assert env.mode == 0o600 and env.user == "langgraph"
    assert f"AI_INFRA_PHOENIX_API_KEY={key}\n" in env.content_string
    assert f"AI_INFRA_PHOENIX_ENDPOINT={url(host)}\n" in env.content_string
    unit = worker.file("/etc/systemd/system/langgraph-server.service").content_string
    assert key not in unit
    assert "Environment=PYTHONPATH=/opt/ai-infra/langgraph/tracing" in unit


def test_stored_in_the_state_hosts_postgresql_over_tls(host, state):
    env = host.file("/etc/phoenix/phoenix.env")
    assert env.user == "root" and env.mode == 0o600
    ca_file = "/opt/ai-infra/phoenix/postgresql-ca.crt"
    assert f"@{network_address(state)}:5432/phoenix?sslmode=verify-full&sslrootcert={ca_file}\n" in env.content_string
    # The state host's own CA, readable by the phoenix user (it is public).
    assert host.file(ca_file).content_string == state.file("/etc/ai-infra/postgresql-tls/ca.crt").content_string
    assert host.run(f"runuser -u phoenix -- cat {ca_file}").rc == 0
    count = state.check_output("runuser -u postgres -- psql -d phoenix -tAc 'SELECT count(*) FROM projects'")
    assert int(count) >= 1
    # Every connection Phoenix holds comes from its host and is encrypted.
    rows = state.check_output(
        "runuser -u postgres -- psql -tAc \"SELECT host(a.client_addr), s.ssl FROM pg_stat_activity a "
        "JOIN pg_stat_ssl s USING (pid) WHERE a.usename = 'phoenix'\"").splitlines()
    assert rows and set(rows) == {f"{network_address(host)}|t"}


def test_bound_to_its_private_address_open_to_the_worker_only(host, worker, prober):
    address = network_address(host)
    assert listening_on(host, 6006) == {f"tcp://{address}:6006"}
    assert connect_from(worker, address, 6006) == "open"
    # The gRPC listener binds every address; the firewall keeps it closed.
    for port in (6006, 4317):
        assert connect_from(prober, address, port) in ("refused", "timeout")
    # Where the server and the edge read it (filter published_endpoints): what it listens on.
    fact = host.file("/etc/ansible/facts.d/phoenix.fact")
    assert (fact.user, fact.mode) == ("root", 0o644)
    assert json.loads(fact.content_string) == {"bind_address": address, "port": 6006, "unit": "phoenix"}


def test_no_outbound_features(host):
    env = host.file("/etc/phoenix/phoenix.env").content_string
    for setting in ("PHOENIX_ALLOW_EXTERNAL_RESOURCES=false", "PHOENIX_TELEMETRY_ENABLED=false",
                    "PHOENIX_DISABLE_AGENT_ASSISTANT=true", "PHOENIX_ENABLE_MCP_SERVER=false"):
        assert setting in env


def run_smoke_graph(worker) -> tuple[str, str]:
    """A real run of the smoke graph on a new thread, through the server's HTTP API."""
    base = f"http://{network_address(worker)}:8123"
    thread_id = json.loads(worker.check_output(
        f"curl -sf -X POST -H 'Content-Type: application/json' -d '{{}}' {base}/threads"))["thread_id"]
    body = json.dumps({"assistant_id": "smoke", "input": {"note": "traced"}, "config": {"configurable": {"second_seconds": 1}}})
    worker.check_output(f"curl -sf -X POST -H 'Content-Type: application/json' -d '{body}' {base}/threads/{thread_id}/runs/wait")
    runs = json.loads(worker.check_output(f"curl -sf {base}/threads/{thread_id}/runs"))
    return thread_id, runs[0]["run_id"]


def spans_of(host, thread_id, timeout=60):
    """The thread's spans, once the server's batch exporter has sent its run's root span."""
    deadline = time.monotonic() + timeout
    path = f"/v1/projects/langgraph/spans?limit=100&attribute=metadata.thread_id:%22{thread_id}%22"
    while True:
        # The project answers 404 until its first span arrived.
        answer = host.run(f"curl -sf -H 'Authorization: Bearer {ADMIN}' '{url(host)}{path}'")
        spans = json.loads(answer.stdout)["data"] if answer.rc == 0 else []
        if any(span["parent_id"] is None for span in spans) or time.monotonic() > deadline:
            return spans
        time.sleep(2)


@pytest.fixture(scope="module")
def traced_run(host, worker):
    thread_id, run_id = run_smoke_graph(worker)
    return thread_id, run_id, spans_of(host, thread_id)


def test_a_graph_run_arrives_as_spans_with_thread_run_and_gpu_price(traced_run):
    thread_id, run_id, spans = traced_run
    names = {span["name"] for span in spans}
    assert {"first", "second"} <= names, names
    roots = [span for span in spans if span["parent_id"] is None]
    assert len(roots) == 1, spans
    for span in spans:
        attributes = span["attributes"]
        assert attributes["metadata.thread_id"] == thread_id
        assert attributes["metadata.run_id"] == run_id
        assert attributes["gpu.instance_type"] == "molecule-cpu"
        assert attributes["gpu.hourly_usd"] == 2.5


def test_only_graph_runs_are_traced(host, traced_run):
    """The server's HTTP requests (the curls above, health checks) send no spans: every
    root span is a graph run, which run_costs reads as one."""
    newest = json.loads(host.check_output(
        f"curl -sf -H 'Authorization: Bearer {ADMIN}' "
        f"'{url(host)}/v1/projects/langgraph/spans?parent_id=null&sort=start_time&order=desc&limit=20'"))["data"]
    assert newest and all(span["attributes"].get("metadata.run_id") for span in newest), [span["name"] for span in newest]


def test_cost_per_run_playbook(traced_run):
    thread_id, run_id, spans = traced_run
    output = playbook(COLLECTION / "playbooks" / "run_costs.yml", "-e", f"phoenix_run_costs_thread_id={thread_id}")
    root = next(span for span in spans if span["parent_id"] is None)
    assert run_id in output and thread_id in output
    assert "total: " in output and "over 1 runs" in output
    # The smoke graph's second node sleeps 1 s: the run lasted at least that, at 2.5 USD/h.
    line = next(line for line in output.splitlines() if run_id in line)
    assert " smoke " in line, line
    seconds, price, cost = (float(value.strip("'\",")) for value in line.split()[-3:])
    assert seconds >= 1.0 and price == 2.5
    assert cost == pytest.approx(2.5 / 3600 * seconds, abs=1e-6)
    assert root["context"]["trace_id"]


EDGE_PROBE = """
import json, ssl, sys, urllib.error, urllib.request
url, ca, authorization = sys.argv[1:4]
request = urllib.request.Request(url)
if authorization:
    request.add_header("Authorization", authorization)
try:
    answer = urllib.request.urlopen(request, context=ssl.create_default_context(cafile=ca), timeout=10)
except urllib.error.HTTPError as error:
    answer = error
print(json.dumps([answer.status, {k.lower(): v for k, v in answer.headers.items()}, answer.read().decode(errors="replace")[:200]]))
"""


def edge(host, prober, path, authorization=""):
    """Status, headers and body of a request to Phoenix through the edge, from the prober
    (which trusts the edge's internal CA: no -k)."""
    ca = "/tmp/phoenix-edge-root.crt"
    prober.run_expect([0], f"cat > {ca} << 'EOF'\n{host.file(ROOT_CA).content_string}EOF")
    out = prober.check_output("python3 -c %s %s %s %s", EDGE_PROBE,
                              f"https://{network_address(host)}:6443{path}", ca, authorization)
    return json.loads(out)


def test_phoenix_through_the_edge_behind_the_same_gate(host, prober):
    status_code, headers, body = edge(host, prober, "/healthz")
    assert status_code == 401 and headers["www-authenticate"].startswith("Basic ")
    status_code, headers, body = edge(host, prober, "/healthz", "Bearer wrong-token")
    assert status_code == 401
    status_code, headers, body = edge(host, prober, "/healthz", f"Bearer {EDGE_TOKEN}")
    assert (status_code, body) == (200, "OK")
    basic = base64.b64encode(f"operator:{EDGE_TOKEN}".encode()).decode()
    status_code, headers, body = edge(host, prober, "/healthz", f"Basic {basic}")
    assert (status_code, body) == (200, "OK")
    # Past the gate, Phoenix's own auth still holds: the edge credential is not a Phoenix key.
    status_code, headers, body = edge(host, prober, "/v1/projects", f"Bearer {EDGE_TOKEN}")
    assert status_code == 401


def test_retention_changed_on_a_later_converge(host):
    playbook(SCENARIO / "retention.yml", "-e", "phoenix_retention_days=7")
    query = json.dumps({"query": '{ node(id: "UHJvamVjdFRyYWNlUmV0ZW50aW9uUG9saWN5OjA=") '
                                 '{ ... on ProjectTraceRetentionPolicy { rule { ... on TraceRetentionRuleMaxDays { maxDays } } } } }'})
    answer = json.loads(host.check_output(
        f"curl -sf -H 'Authorization: Bearer {ADMIN}' -H 'Content-Type: application/json' -d '{query}' {url(host)}/graphql"))
    assert answer["data"]["node"]["rule"]["maxDays"] == 7.0
    # Not converged back here: the next test's converge (rekey.yml) puts the scenario's
    # retention back, and this test sets its own value whatever it finds.


def test_lost_key_file_is_replaced_and_the_server_gets_the_new_key(host, worker):
    old = host.file(KEY_FILE).content_string.strip()
    host.run_expect([0], f"rm {KEY_FILE}")
    playbook(SCENARIO / "rekey.yml")
    new = host.file(KEY_FILE).content_string.strip()
    assert new != old
    assert status(host, "/v1/projects", token=new) == "200"
    assert status(host, "/v1/projects", token=old) == "401"
    assert f"AI_INFRA_PHOENIX_API_KEY={new}\n" in worker.file("/etc/langgraph/langgraph.env").content_string
    names = [k["name"] for k in api(host, "/v1/system/api_keys")["data"]]
    assert names.count("langgraph-servers") == 1
    # The restarted server traces with the new key.
    thread_id, run_id = run_smoke_graph(worker)
    assert any(span["attributes"].get("metadata.run_id") == run_id for span in spans_of(host, thread_id))


def run_status(worker, thread_id) -> str:
    base = f"http://{network_address(worker)}:8123"
    return json.loads(worker.check_output(f"curl -sf {base}/threads/{thread_id}/runs"))[0]["status"]


def test_runs_succeed_through_a_phoenix_outage(host, worker, capsys):
    """Phoenix stopped for a minute while runs go on: every run succeeds (the exporter works
    beside the run, not in it); the first run after Phoenix is back is traced; how many of
    the outage's runs reached Phoenix is printed (README: the exporter's retries end
    before a minute, so they are dropped)."""
    host.check_output("systemctl stop phoenix")
    during = []
    started = time.monotonic()
    try:
        while time.monotonic() - started < 60:
            thread_id, _run_id = run_smoke_graph(worker)
            assert run_status(worker, thread_id) == "success"
            during.append(thread_id)
    finally:
        host.check_output("systemctl start phoenix")
    outage = time.monotonic() - started
    host.check_output(f"timeout 180 sh -c 'until curl -sf {url(host)}/healthz; do sleep 1; done'")
    back = time.monotonic() - started
    thread_id, _run_id = run_smoke_graph(worker)
    assert run_status(worker, thread_id) == "success"
    assert any(span["parent_id"] is None for span in spans_of(host, thread_id)), "no trace after Phoenix came back"
    traced = [t for t in during if any(span["parent_id"] is None for span in spans_of(host, t, timeout=0))]
    with capsys.disabled():
        print(f"\nPhoenix outage: stopped {outage:.0f} s, healthy again after {back:.0f} s; "
              f"{len(during)} runs during the outage, all succeeded, {len(traced)} of them traced")
