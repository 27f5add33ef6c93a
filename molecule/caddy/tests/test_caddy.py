"""Verifies the caddy role: two real Caddys, their gates, one shared Redis and a real
LangGraph server behind them, seen from another machine on the network (the prober),
which trusts each edge's internal CA explicitly."""

from __future__ import annotations

import json
import os
import pathlib
import re
import subprocess
import time

import pytest
import testinfra
from conftest import captured, connect_from, listening_on, mesh_address, network_address, restart_container, scenario_name

testinfra_hosts = ["ansible://edge"]

TOKEN = "molecule-edge-token-0123456789abcdef"
JWT_SECRET = "molecule-jwt-secret-0123456789abcdefghij"
ROOT_CA = "/var/lib/caddy/.local/share/caddy/pki/authorities/local/root.crt"
GATE_PYTHON = "/opt/ai-infra/gate/venv/bin/python"

# Runs on the prober: one HTTPS request, verified against the edge's root certificate;
# prints status, headers and body as JSON.
REQUEST = """
import json, ssl, sys, urllib.request, urllib.error
url, cafile, method, headers, body = sys.argv[1], sys.argv[2], sys.argv[3], json.loads(sys.argv[4]), sys.argv[5]
req = urllib.request.Request(url, method=method, headers=headers, data=body.encode() if body else None)
ctx = ssl.create_default_context(cafile=cafile)
try:
    resp = urllib.request.urlopen(req, context=ctx, timeout=30)
except urllib.error.HTTPError as err:
    resp = err
print(json.dumps({"status": resp.status, "headers": [[k.lower(), v] for k, v in resp.headers.items()],
                  "body": resp.read().decode(errors="replace")}))
"""

# Runs on the prober: a streamed run of the smoke graph whose second node takes 3 s;
# prints each SSE event with the second it arrived at.
STREAM = """
import json, ssl, sys, time, urllib.request
url, cafile, token = sys.argv[1], sys.argv[2], sys.argv[3]
body = json.dumps({"assistant_id": "smoke", "input": {}, "stream_mode": "updates",
                   "config": {"configurable": {"second_seconds": 3}}}).encode()
req = urllib.request.Request(url + "/runs/stream", data=body, method="POST", headers={
    "Authorization": "Bearer " + token, "Content-Type": "application/json", "Accept": "text/event-stream"})
start = time.monotonic()
events = []
with urllib.request.urlopen(req, context=ssl.create_default_context(cafile=cafile), timeout=60) as resp:
    for line in resp:
        if line.startswith(b"data:"):
            events.append([round(time.monotonic() - start, 2), line[5:].decode().strip()])
print(json.dumps(events))
"""


@pytest.fixture(scope="module")
def prober():
    return testinfra.get_host(f"docker://{scenario_name()}-prober")


@pytest.fixture(scope="module")
def state_host():
    return testinfra.get_host(f"docker://{scenario_name()}-debian12")


@pytest.fixture(autouse=True)
def fresh_budgets(state_host):
    """Every test starts with unspent budgets: they are per client IP, and every request
    here comes from the prober."""
    state_host.run_expect(
        [0],
        "export REDISCLI_AUTH=molecule-redis-admin-secret; "
        "redis-cli --user admin --no-auth-warning -n 1 --scan --pattern 'ai-infra-gate:*' "
        "| xargs -r redis-cli --user admin --no-auth-warning -n 1 DEL",
    )


def base_url(host) -> str:
    return f"https://{network_address(host)}"


_COPIED_CAS: set = set()


def trusted_ca(host, prober) -> str:
    """The edge's internal root certificate, copied to the prober (as Studio's machine
    would import it into its trust store)."""
    path = f"/tmp/{host.backend.get_hostname()}-root.crt"
    if path not in _COPIED_CAS:
        prober.run_expect([0], f"cat > {path} << 'EOF'\n{host.file(ROOT_CA).content_string}EOF")
        _COPIED_CAS.add(path)
    return path


def call(host, prober, path="/ok", method="GET", headers=None, body="", token=TOKEN):
    headers = dict(headers or {})
    if token:
        headers["Authorization"] = "Bearer " + token
    out = prober.check_output(
        "python3 -c %s %s %s %s %s %s", REQUEST, base_url(host) + path, trusted_ca(host, prober), method,
        json.dumps(headers), body,
    )
    result = json.loads(out)
    result["headers"] = dict(result["headers"]) | {"_all": result["headers"]}
    return result


def hs256(host, **claims) -> str:
    body = {"sub": "studio-user", "aud": "langgraph", "iss": "https://idp.molecule.test", "exp": int(time.time()) + 300,
            **claims}
    return host.check_output(
        f"{GATE_PYTHON} -c %s", f"import jwt; print(jwt.encode({body!r}, {JWT_SECRET!r}, algorithm='HS256'))"
    )


def test_no_token_401_and_a_valid_token_reaches_the_server(host, prober):
    refused = call(host, prober, token=None)
    assert refused["status"] == 401
    assert refused["headers"]["www-authenticate"].startswith("Bearer")
    assert call(host, prober, token="not-a-valid-token-at-all-0123456789")["status"] == 401
    served = call(host, prober, path="/info")
    assert served["status"] == 200 and "version" in json.loads(served["body"])


def test_jwts_valid_expired_for_another_audience_or_issuer_and_too_long(host, prober):
    assert call(host, prober, token=hs256(host))["status"] == 200
    assert call(host, prober, token=hs256(host, exp=int(time.time()) - 30))["status"] == 401
    assert call(host, prober, token=hs256(host, aud="another-service"))["status"] == 401
    assert call(host, prober, token=hs256(host, iss="https://another-idp.example"))["status"] == 401
    # Valid for ten years: longer than caddy_auth_jwt_max_lifetime (a day).
    assert call(host, prober, token=hs256(host, exp=int(time.time()) + 10 * 365 * 86400))["status"] == 401


def test_bad_tokens_from_one_address_do_not_lock_out_a_good_one(host, prober):
    """Failed logins have a budget of their own (10 a minute, 5 a second per address):
    past it the bad ones get 429, and a good token from the same address still passes."""
    statuses = [call(host, prober, token=f"wrong-token-{i:02d}-0123456789abcdef")["status"] for i in range(12)]
    assert statuses[:5] == [401] * 5 and 429 in statuses, statuses
    assert call(host, prober)["status"] == 200


def test_an_encoded_or_dotted_path_meets_its_route_budget(host, prober):
    """The route budget of /info (3 a minute) holds for every spelling of /info the server
    would route there; an encoded slash is refused."""
    assert [call(host, prober, path="/info")["status"] for _attempt in range(3)] == [200, 200, 200]
    for path in ("/%69nfo", "/%69%6E%66%6F", "/./info", "/ok/../info", "//info"):
        assert call(host, prober, path=path)["status"] == 429, path
    assert call(host, prober, path="/threads%2Fsearch")["status"] == 400


# Runs on the prober: a request sent one line (headers) or one byte (body) a second over
# TLS; prints the seconds until the edge answered or closed the connection (30: never).
SLOW_CLIENT = """
import socket, ssl, sys, time
address, cafile, part, token = sys.argv[1:5]
ctx = ssl.create_default_context(cafile=cafile)
sock = ctx.wrap_socket(socket.create_connection((address, 443), timeout=5), server_hostname=address)
head = "POST /threads HTTP/1.1\\r\\nHost: %s\\r\\n" % address
if part == "body":
    head += "Authorization: Bearer %s\\r\\nContent-Type: application/json\\r\\nContent-Length: 100\\r\\n\\r\\n" % token
sock.sendall(head.encode())
start = time.monotonic()
sock.settimeout(1)
while time.monotonic() - start < 30:
    try:
        sock.sendall(b"X-Slow: 1\\r\\n" if part == "headers" else b" ")
        if sock.recv(1024) is not None:
            break
    except socket.timeout:
        continue
    except (OSError, ssl.SSLError):
        break
print(round(time.monotonic() - start, 1))
"""


@pytest.mark.parametrize("part", ["headers", "body"])
def test_a_slow_client_is_cut_at_the_deadline(host, prober, part):
    """caddy_timeouts here: 3 s for the headers, 5 s for the whole request. A client that
    sends a header line (with no credentials) or a body byte a second is answered or cut
    by then; without the deadlines it would hold the connection for the test's 30 s."""
    seconds = float(prober.check_output("python3 -c %s %s %s %s %s", SLOW_CLIENT, network_address(host),
                                        trusted_ca(host, prober), part, TOKEN))
    assert seconds < 12, f"the edge held a slow client's connection for {seconds} s"


def test_over_budget_429_with_retry_after(host, prober):
    statuses = [call(host, prober)["status"] for _attempt in range(10)]
    # The burst (10 in a second) may already be spent by the time the 11th goes out, or
    # not, when the 10 took more than a second: spend until refused, within the budget.
    refused = None
    for _attempt in range(11):
        answer = call(host, prober)
        if answer["status"] == 429:
            refused = answer
            break
        statuses.append(answer["status"])
    assert set(statuses) == {200}
    assert refused is not None, "20 requests per minute were all served past the budget"
    assert 1 <= int(refused["headers"]["retry-after"]) <= 60


def test_budget_is_shared_by_both_edges(host, prober):
    edges = [testinfra.get_host(f"docker://{scenario_name()}-{suite}") for suite in ("debian12", "debian13")]
    served = 0
    for i in range(20):
        answer = call(edges[i % 2], prober)
        if answer["status"] == 200:
            served += 1
        else:
            assert answer["status"] == 429
            time.sleep(1.1)  # the burst window
            assert call(edges[i % 2], prober)["status"] == 200
            served += 1
    assert served == 20
    # 20 served in all, 10 by each edge: the 21st is refused by either.
    for edge in edges:
        answer = call(edge, prober)
        assert answer["status"] == 429 and int(answer["headers"]["retry-after"]) > 1


def test_route_budget_override(host, prober):
    assert [call(host, prober, path="/info")["status"] for _attempt in range(4)] == [200, 200, 200, 429]
    assert call(host, prober, path="/ok")["status"] == 200


def test_studio_preflight_and_cors(host, prober):
    preflight = {"Origin": "https://smith.langchain.com", "Access-Control-Request-Method": "POST",
                 "Access-Control-Request-Headers": "authorization, content-type"}
    allowed = call(host, prober, path="/threads", method="OPTIONS", headers=preflight, token=None)
    assert allowed["status"] == 204
    assert allowed["headers"]["access-control-allow-origin"] == "https://smith.langchain.com"
    assert "POST" in allowed["headers"]["access-control-allow-methods"]
    assert "Authorization" in allowed["headers"]["access-control-allow-headers"]
    other = call(host, prober, path="/threads", method="OPTIONS", token=None,
                 headers={**preflight, "Origin": "https://evil.example"})
    assert other["status"] == 403 and "access-control-allow-origin" not in other["headers"]
    # A real request from Studio's origin: one Allow-Origin header, not the server's too.
    answer = call(host, prober, path="/ok", headers={"Origin": "https://smith.langchain.com"})
    assert answer["status"] == 200
    assert [v for k, v in answer["headers"]["_all"] if k == "access-control-allow-origin"] == ["https://smith.langchain.com"]


def test_server_sent_events_pass_unbuffered(host, prober):
    events = json.loads(prober.check_output(
        "python3 -c %s %s %s %s", STREAM, base_url(host), trusted_ca(host, prober), TOKEN))
    updates = [(t, json.loads(data)) for t, data in events if data.startswith("{")]
    first = next(t for t, data in updates if "first" in data)
    second = next(t for t, data in updates if "second" in data)
    # `first` arrives while `second` still sleeps its 3 s: nothing held it back.
    assert second - first >= 2.5, events


def test_security_headers_and_json_access_log(host, prober):
    answer = call(host, prober, path="/ok")
    headers = answer["headers"]
    assert headers["strict-transport-security"].startswith("max-age=")
    assert headers["x-content-type-options"] == "nosniff"
    assert "server" not in headers
    entries = [json.loads(line) for line in host.file("/var/log/caddy/access.log").content_string.splitlines()]
    assert any(entry["request"]["uri"] == "/ok" for entry in entries)
    # Caddy logs the Authorization header as REDACTED.
    assert TOKEN not in host.file("/var/log/caddy/access.log").content_string


def test_request_body_limit(host):
    """A body over caddy_max_body_size (10MB) gets 413. Caddy answers before the upload
    ends and closes the connection: curl (on the edge host itself) reads that answer,
    where a client that insists on sending the rest sees a reset. Whether curl still
    finishes its upload first is a race, so its exit status (0, or 18 for a partial
    transfer: CI saw both) is not the check; the status curl read is."""
    result = host.run(
        f"head -c {11 * 1024 * 1024} /dev/zero | curl -s -o /dev/null -w '%{{http_code}}' --cacert {ROOT_CA} "
        f"-H 'Authorization: Bearer {TOKEN}' -H 'Content-Type: application/json' --data-binary @- {base_url(host)}/threads"
    )
    assert result.rc in (0, 18, 55, 56), result  # 55/56: send/receive cut after the answer
    assert result.stdout == "413", result


GATE_HEALTHY = ("for i in $(seq 30); do curl -sf --unix-socket /run/ai-infra-gate/gate.sock http://localhost/healthz "
                "&& break; sleep 1; done")
ADMIN = "curl -s -o /dev/null -w '%{http_code}' --unix-socket /run/caddy/admin.sock -H 'Host;'"


def test_https_reachable_metrics_on_loopback_and_admin_api_and_gate_on_sockets(host, prober):
    address = network_address(host)
    assert connect_from(prober, address, 443) == "open"
    assert connect_from(prober, address, 2019) in ("refused", "timeout")
    # Metrics only, on loopback; no admin API and no gate on any TCP port.
    assert listening_on(host, 2019) == {"tcp://127.0.0.1:2019"}
    assert "caddy_http_requests_total" in host.check_output("curl -sf http://localhost:2019/metrics")
    # The admin API's /config/ there answers nothing (Caddy's empty answer to an unhandled path).
    assert host.check_output("curl -s http://localhost:2019/config/") == ""
    assert not listening_on(host, 9180)
    # Root (Ansible, systemctl reload) reaches the admin API; the gate answers on its socket.
    assert host.check_output(ADMIN + " http://localhost/config/") == "200"
    host.run_expect([0], GATE_HEALTHY)


def test_other_local_users_reach_neither_the_admin_api_nor_the_gate(host):
    """The review's attack: a local user (nobody) POSTed a configuration without
    forward_auth to the admin API, or spent any address's budget at the gate. Both sockets
    are in directories nobody may enter."""
    config = host.check_output("curl -sf --unix-socket /run/caddy/admin.sock -H 'Host;' http://localhost/config/")
    assert "unix//run/ai-infra-gate/gate.sock" in config  # the live configuration asks the gate
    as_nobody = "runuser -u nobody -- "
    load = host.run(as_nobody + ADMIN + " -X POST -H 'Content-Type: application/json' -d '{}' http://localhost/load")
    assert load.rc == 7 and load.stdout == "000", load  # 7: could not connect
    gate = host.run(as_nobody + "curl -s -o /dev/null -w '%{http_code}' --unix-socket /run/ai-infra-gate/gate.sock "
                    "-H 'X-Forwarded-For: 203.0.113.9' http://localhost/check")
    assert gate.rc == 7 and gate.stdout == "000", gate
    assert host.file("/run/caddy").mode == 0o700 and host.file("/run/caddy").user == "caddy"
    assert host.file("/run/ai-infra-gate").mode == 0o750 and host.file("/run/ai-infra-gate").group == "ai-infra-gate"


def test_upstream_port_closed_to_other_machines(host, prober, state_host):
    """The server listens on the state host's mesh address, for the edges only. (The prober
    is outside the mesh: this network's gateway would answer its connection to a mesh
    address itself, so only the plain address is tried from there.)"""
    assert connect_from(prober, network_address(state_host), 8123) in ("refused", "timeout")
    assert host.run(f"curl -s -o /dev/null -w '%{{http_code}}' http://{mesh_address(state_host)}:8123/ok").stdout == "200"
    assert listening_on(state_host, 8123) == {f"tcp://{mesh_address(state_host)}:8123"}


def test_between_the_hosts_only_the_mesh_sees_the_prompt_and_nobody_the_token(prober, state_host):
    """Requests through the Debian 13 edge reach the server on the Debian 12 host over the
    mesh, and its gate authenticates to Redis there (restarted, so it logs in anew). On the
    state host's wg0 (the mesh after decryption) the prompt and Redis's password are seen,
    so the capture can find them; on its eth0 (the wire) neither is. The client's token is
    on neither: the edge drops it before the servers."""
    edge = testinfra.get_host(f"docker://{scenario_name()}-debian13")
    prompt = f"molecule-prompt-{int(time.time())}-tell-me-a-secret"
    needles = [prompt, TOKEN, "molecule-redis-gate-secret"]
    statuses = []

    def traffic():
        edge.run_expect([0], "systemctl restart ai-infra-gate")
        edge.run_expect([0], GATE_HEALTHY)
        for _request in range(2):
            statuses.append(call(edge, prober, path="/threads", method="POST",
                                 headers={"Content-Type": "application/json"},
                                 body=json.dumps({"metadata": {"prompt": prompt}}))["status"])

    frames, found = captured(state_host, needles, traffic, seconds=12, interface="wg0")
    assert statuses == [200, 200] and frames > 0
    assert found == {prompt, "molecule-redis-gate-secret"}, found
    statuses.clear()
    frames, found = captured(state_host, needles, traffic, seconds=12, interface="eth0")
    assert statuses == [200, 200] and frames > 0
    assert found == set(), found


def redis_as(state_host, user: str, password: str, *command: str) -> str:
    return state_host.run("REDISCLI_AUTH=%s redis-cli --user %s --no-auth-warning " + " ".join(["%s"] * len(command)),
                          password, user, *command).stdout.strip()


def test_the_gates_count_apart_from_the_app_in_redis(host, prober, state_host):
    """The gates log in as their own Redis user and count in their own database: the app's
    user cannot select it (so app code cannot reset the counters), and the gates' user
    cannot touch the app's keys."""
    assert call(host, prober)["status"] == 200
    counters = state_host.check_output(
        "REDISCLI_AUTH=molecule-redis-admin-secret redis-cli --user admin --no-auth-warning -n 1 --scan --pattern 'ai-infra-gate:*'")
    assert counters.strip(), "no rate-limit counter in the gates' database"
    app = ("langgraph", "molecule-redis-app-secret")
    gate = ("ai-infra-gate", "molecule-redis-gate-secret")
    assert "NOPERM" in redis_as(state_host, *app, "SELECT", "1")
    assert redis_as(state_host, *app, "SET", "app:key", "v") == "OK"
    assert "NOPERM" in redis_as(state_host, *gate, "GET", "app:key")
    assert "NOPERM" in redis_as(state_host, *gate, "FLUSHDB")
    # Its own counters it may read and grow (what its script does) but not delete.
    newest = redis_as(state_host, *gate, "-n", "1", "LINDEX", counters.split()[0], "0")
    assert float(newest) > 0, newest  # a request time, not a NOPERM answer
    assert "NOPERM" in redis_as(state_host, *gate, "-n", "1", "DEL", counters.split()[0])


def test_gate_down_fails_closed(host, prober):
    host.run_expect([0], "systemctl stop ai-infra-gate")
    try:
        answer = call(host, prober)
        assert answer["status"] == 503
        assert "gate unavailable" in answer["body"]
    finally:
        host.run_expect([0], "systemctl start ai-infra-gate")
        host.run_expect([0], GATE_HEALTHY)
    assert call(host, prober)["status"] == 200


def test_secrets_stay_out_of_readable_files(host):
    env = host.file("/etc/ai-infra-gate/gate.env")
    assert env.user == "root" and env.mode == 0o600
    assert JWT_SECRET in env.content_string and "molecule-redis-gate-secret" in env.content_string
    config = host.file("/etc/ai-infra-gate/gate.json").content_string
    assert TOKEN not in config and JWT_SECRET not in config
    for path in ("/etc/caddy/Caddyfile", "/etc/systemd/system/ai-infra-gate.service"):
        assert TOKEN not in host.file(path).content_string
    assert host.check_output("ps -o user= -C caddy") == "caddy"


def converge_with(host, **extra_vars) -> str:
    """Runs the role on the edge hosts with extra settings; returns the output (it must fail).

    Not with --limit: the state host's facts (its address) must be gathered in the play."""
    scenario = pathlib.Path(__file__).resolve().parent.parent
    run = subprocess.run(
        ["ansible-playbook", "-i", os.environ["MOLECULE_INVENTORY_FILE"], str(scenario / "bad_input.yml"),
         "-e", json.dumps(extra_vars)],
        capture_output=True, text=True, check=False, timeout=600,
    )
    assert run.returncode != 0, run.stdout[-2000:]
    return run.stdout + run.stderr


def test_invalid_caddyfile_never_replaces_the_running_one(host, prober):
    if not host.backend.get_hostname().endswith("debian13"):
        pytest.skip("runs once, for both edge hosts")
    before = host.file("/etc/caddy/Caddyfile").sha256sum
    pid = host.check_output("systemctl show -p MainPID --value caddy")
    output = converge_with(host, caddy_max_body_size="a-lot")
    assert "failed to validate" in output
    assert host.file("/etc/caddy/Caddyfile").sha256sum == before
    assert host.check_output("systemctl show -p MainPID --value caddy") == pid
    assert call(host, prober)["status"] == 200


def test_plugin_backend_refused_on_a_standard_caddy(host):
    if not host.backend.get_hostname().endswith("debian13"):
        pytest.skip("runs once, for both edge hosts")
    output = converge_with(host, caddy_rate_limit_backend="plugin")
    assert "has no http.handlers.rate_limit module" in output
    assert "limits" in host.file("/etc/ai-infra-gate/gate.json").content_string


def test_edge_latency_benchmark_quick_mode(state_host):
    """bench/edge_latency.py --quick against this edge: the bench does not rot, and every
    request of its direct and edge rows (a second Caddy and gate from the host's own files)
    got a 2xx."""
    host = state_host  # once, on the Debian 12 edge (the server runs beside it)
    collection = pathlib.Path(__file__).resolve().parents[3]
    run = subprocess.run(
        ["python", str(collection / "bench" / "edge_latency.py"), "--container", host.backend.get_hostname(),
         "--token", TOKEN, "--quick"],
        capture_output=True, text=True, check=False, timeout=300,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    rows = [line.split() for line in run.stdout.splitlines() if line.split()[:1] in (["direct"], ["edge"])]
    assert len(rows) == 4, run.stdout
    for name, _conns, _p50, _p99, _rps, requests, non_2xx in rows:
        assert int(requests) > 0 and int(non_2xx) == 0, (name, run.stdout)
    # The bench's own Caddy and gates are gone (given a few seconds to exit); the host's are
    # untouched. ([b]: the pattern must not match the shell running pgrep.)
    gone = host.run("for i in $(seq 20); do pgrep -af '[b]ench.Caddyfile|[b]ench-gate.json' || exit 0; sleep 0.5; done; exit 1")
    assert gone.rc == 0, gone.stdout
    assert host.service("caddy").is_running


def test_engine_benchmark_quick_mode_on_langgraph_dev(state_host):
    """bench/agent_server_engines.py --quick, the old engine's side, against this scenario's
    `langgraph dev` server: the bench does not rot and reports both figures. Whether the killed
    run finishes depends on whether `langgraph dev`'s 10-second flush of its run table happened
    between the run's start and the kill (CI saw both), so only the shape is checked here."""
    host = state_host  # once, on the Debian 12 edge (the server runs beside it)
    collection = pathlib.Path(__file__).resolve().parents[3]
    run = subprocess.run(
        ["python", str(collection / "bench" / "agent_server_engines.py"), "--engines", "langgraph_dev",
         "--old-server", host.backend.get_hostname(), "--quick"],
        capture_output=True, text=True, check=False, timeout=600,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    finished = next(line for line in run.stdout.splitlines() if line.startswith("finished (s)"))
    assert re.search(r"finished \(s\)\s+(never \(|\d+\.\d \()", finished), run.stdout
    # The bench leaves the host's server running (systemd restarted it after the kill; under
    # load it may still be starting when the bench's last request answered).
    running = host.run("for i in $(seq 90); do systemctl is-active -q langgraph-server && exit 0; sleep 1; done; exit 1")
    assert running.rc == 0, host.run("systemctl status langgraph-server --no-pager").stdout
    # The server is this scenario's only upstream, and both edges' health checks (every
    # 10 s) marked it down while it was killed: the next tests call through them at once
    # (a CI run got 503 from caddy-debian13). Polling through the edges would spend the
    # budget those tests count on, so wait out two check intervals after it is back.
    time.sleep(25)


# On the Debian 12 host, in the order a boot must start them: the firewall, then the mesh,
# the state services, the server, the gate and the edge.
BOOT_UNITS = ("wg-quick@wg0", "postgresql@15-main", "redis-server", "langgraph-server", "ai-infra-gate", "caddy")


def test_reboot_drill_the_single_host_layout_comes_back_firewall_first(state_host, prober):
    """The Debian 12 host holds the state services, the server and an edge (the single-host
    layout, less the GPU). Rebooted (its container restarted: systemd boots anew): every
    service is back, each began starting only after the firewall's rules were loaded, and a
    streamed run through its edge succeeds."""
    name = f"{scenario_name()}-debian12"
    restart_container(name)
    started = time.monotonic()

    def monotonic(unit: str, prop: str) -> int:
        return int(state_host.check_output(f"systemctl show -p {prop} --value {unit}") or 0)

    up = state_host.run("for i in $(seq 120); do curl -sf http://%s:8123/ok >/dev/null && exit 0; sleep 1; done; exit 1",
                        mesh_address(state_host))
    assert up.rc == 0, state_host.run("systemctl --failed --no-pager").stdout
    firewall = monotonic("nftables", "ActiveEnterTimestampMonotonic")
    assert firewall > 0 and "ai_infra_base" in state_host.check_output("nft list tables")
    for unit in BOOT_UNITS:
        assert state_host.service(unit).is_running, unit
        # When the unit left "inactive" on this boot: after the rules were in.
        assert monotonic(unit, "InactiveExitTimestampMonotonic") > firewall, unit
    # The edges' health checks (every 10 s) marked the server down while the host was
    # away: both edges send requests to it again (the other edge's tests may run next),
    # then a run through this one.
    for edge in (state_host, testinfra.get_host(f"docker://{scenario_name()}-debian13")):
        deadline = time.monotonic() + 60
        while call(edge, prober, path="/ok")["status"] != 200:
            assert time.monotonic() < deadline, f"{edge.backend.get_hostname()} did not send requests to the server within 60 s"
            time.sleep(2)
    events = json.loads(prober.check_output(
        "python3 -c %s %s %s %s", STREAM, base_url(state_host), trusted_ca(state_host, prober), TOKEN))
    updates = [json.loads(data) for _arrived, data in events if data.startswith("{")]
    assert any("first" in update for update in updates) and any("second" in update for update in updates), events
    print(f"reboot -> a run through the edge: {time.monotonic() - started:.0f} s")
