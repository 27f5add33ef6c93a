"""Verifies the langgraph_server role on its default engine, Aegra: two replicas on Debian 13
that share one PostgreSQL and one Redis (on the Debian 12 state host, which also serves
the real small model with vLLM), driven through langgraph-sdk (the HTTP API LangGraph
Studio uses). Every replica answers for every thread and run; a run whose replica was
killed, or whose whole host died, finishes by itself on what is left."""

from __future__ import annotations

import json
import os
import pathlib
import re
import subprocess
import time

import pytest
import testinfra
from conftest import connect_from, listening_on, network_address, wait_until_booted

testinfra_hosts = ["ansible://agent_servers"]

HOME = "/opt/ai-infra/langgraph"
PYTHON = f"{HOME}/current/venv/bin/python"
UNIT = "langgraph-server"
REPLICAS = ("langgraph_server-replica-a", "langgraph_server-replica-b")
STATE_HOST = "langgraph_server-debian12"

# Each call runs this prelude, then the test's code, inside the host with the release's
# own Python (langgraph-sdk is in it). `out(x)` prints the JSON the test reads back.
PRELUDE = """
import asyncio, json, sys
from langgraph_sdk import get_client
client = get_client(url=%r)
def out(value):
    print(json.dumps(value, default=str))
async def main():
%s
asyncio.run(main())
"""


def url(host) -> str:
    """The replica's API on its private address (where the edge reaches it)."""
    return f"http://{network_address(host)}:8123"


def script(host, code: str) -> str:
    body = "\n".join("    " + line for line in code.strip().splitlines())
    return PRELUDE % (url(host), body)


def sdk(host, code: str):
    return json.loads(host.check_output("%s -c %s", PYTHON, script(host, code)).splitlines()[-1])


@pytest.fixture(scope="module")
def replicas():
    return [testinfra.get_host(f"docker://{name}") for name in REPLICAS]


@pytest.fixture(scope="module")
def state_host():
    return testinfra.get_host(f"docker://{STATE_HOST}")


def state_of(host, thread_id: str):
    return sdk(host, f"""
state = await client.threads.get_state({thread_id!r})
out({{"next": state["next"], "values": state["values"]}})
""")


def main_pid(host) -> str:
    return host.check_output(f"systemctl show -p MainPID --value {UNIT}")


def wait_until_serving(host, old_pid: str | None = None, timeout: int = 120) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        pid = main_pid(host)
        if pid not in ("0", old_pid) and host.run(f"systemctl is-active {UNIT}").stdout.strip() == "active":
            if host.run(f"curl -sf {url(host)}/health").rc == 0:
                return
        time.sleep(1)
    raise AssertionError(f"{UNIT} did not come back within {timeout} s")


def env_file(host) -> dict[str, str]:
    lines = host.file("/etc/langgraph/langgraph.env").content_string.splitlines()
    return dict(line.split("=", 1) for line in lines if "=" in line and not line.startswith("#"))


def vllm_requests_finished(state_host) -> int:
    """vLLM's own count of finished requests, summed over finish reasons."""
    address = network_address(state_host)
    metrics = state_host.check_output(f"curl -sf http://{address}:8000/metrics")
    return int(sum(float(line.rsplit(" ", 1)[1]) for line in metrics.splitlines() if line.startswith("vllm:request_success_total")))


def start_slow_run(host, seconds: int) -> tuple[str, str]:
    """A background run of the smoke graph whose `second` node sleeps `seconds`; returns
    (thread, run) once `first` has finished, so the run is inside `second`."""
    ids = sdk(host, f"""
thread = await client.threads.create()
run = await client.runs.create(thread["thread_id"], "smoke", input={{}}, config={{"configurable": {{"second_seconds": {seconds}}}}})
out([thread["thread_id"], run["run_id"]])
""")
    deadline = time.time() + 60
    while state_of(host, ids[0])["values"].get("executions") != ["first"]:
        assert time.time() < deadline, "the first node never finished"
        time.sleep(0.5)
    time.sleep(1)
    return ids[0], ids[1]


def replica_running(replicas, run_id: str):
    """The replica whose worker picked the run up (Aegra logs it with the run's id)."""
    for replica in replicas:
        if replica.run(f"journalctl -u {UNIT} -o cat --since=-10min | grep -F 'Worker picked up run' | grep -qF {run_id}").rc == 0:
            return replica
    raise AssertionError(f"no replica logged picking up run {run_id}")


def join_in_background(host, thread_id: str, run_id: str) -> str:
    """A client joined to the run on `host` (python runs.join), writing its result to a file."""
    path = f"/tmp/join-{run_id}.json"
    code = script(host, f'out(await client.runs.join({thread_id!r}, {run_id!r}))')
    host.run_expect([0], "printf %s %s > /tmp/join-%s.py", code, "", run_id)
    host.run_expect([0], f"nohup {PYTHON} /tmp/join-{run_id}.py > {path} 2>&1 &")
    return path


def wait_for_status(host, thread_id: str, run_id: str, timeout: int) -> tuple[str, float]:
    start = time.time()
    status = ""
    while time.time() - start < timeout:
        status = sdk(host, f'out((await client.runs.get({thread_id!r}, {run_id!r}))["status"])')
        if status in ("success", "error", "interrupted", "timeout"):
            break
        time.sleep(1)
    return status, time.time() - start


def test_server_answers_health_info_and_lists_the_graphs(host):
    health = json.loads(host.check_output(f"curl -sf {url(host)}/health"))
    assert health["status"] == "healthy" and health["database"] == "connected"
    assert json.loads(host.check_output(f"curl -sf {url(host)}/info"))["name"] == "Aegra"
    graphs = sdk(host, 'out(sorted(a["graph_id"] for a in await client.assistants.search()))')
    assert graphs == ["agent", "smoke"]


def test_queue_and_leases_are_on(host):
    env = env_file(host)
    assert env["REDIS_BROKER_ENABLED"] == "true"
    assert int(env["LEASE_DURATION_SECONDS"]) > 2 * int(env["HEARTBEAT_INTERVAL_SECONDS"])
    # Within the minute the role promises: lease expiry plus one reaper pass.
    assert int(env["LEASE_DURATION_SECONDS"]) + int(env["REAPER_INTERVAL_SECONDS"]) <= 60


def test_agent_graph_answers_with_the_real_model(host, state_host):
    """The default app end to end from a replica: supervisor -> AGENT_FANOUT workers ->
    collect -> trim, every model call served by vLLM on the worker host, the answer kept
    in the Postgres store, the tool's result cached in Redis with a TTL. The calls go
    through the replica's model router (loopback), which the model name came from too."""
    env = env_file(host)
    assert env["VLLM_MODEL"] == "smollm2"
    assert env["VLLM_BASE_URL"] == "http://127.0.0.1:8010"
    # The fan-out and max-num-seqs the worker was sized for (6, and 6 plus 20% rounded up),
    # as the replica's router published them: this host runs no vLLM of its own.
    assert (env["AGENT_FANOUT"], env["AGENT_MAX_CONCURRENCY"]) == ("6", "8")
    assert listening_on(host, 8010) == {"tcp://127.0.0.1:8010"}
    # The model pools the router published, for the app (no spot pool here: every node's
    # calls go to ondemand), in a file the app reads again when it changes.
    pools = host.file("/etc/langgraph/model-pools.json")
    assert (pools.user, pools.group, pools.mode) == ("root", "langgraph", 0o640)
    pools = json.loads(pools.content_string)
    assert pools["pools"] == {"ondemand": "http://127.0.0.1:8010/pool/ondemand"}
    assert [(w["name"], w["pool"]) for w in pools["workers"].values()] == [("langgraph_server-debian12", "ondemand")]
    before = vllm_requests_finished(state_host)
    result = sdk(host, """
thread = await client.threads.create()
values = await client.runs.wait(thread["thread_id"], "agent",
    input={"messages": [{"role": "user", "content": "What is the capital of France?"}]})
out({"values": values})
""")
    messages = result["values"]["messages"]
    assert [m["type"] for m in messages] == ["human", "ai"], messages
    assert messages[-1]["content"].strip()
    # One request per worker, one for collect: the fan-out really reached vLLM.
    assert vllm_requests_finished(state_host) - before == int(env["AGENT_FANOUT"]) + 1

    # The note is in PostgreSQL's `store` table on the state host. (Aegra's /store API
    # scopes what a client reads to ["users", <identity>, ...]: the graph's own `notes`
    # namespace is not visible there.)
    stored = state_host.check_output(
        "runuser -u postgres -- psql -d langgraph -tAc \"SELECT value->>'question', value->>'answer' FROM store WHERE prefix = 'notes'\"")
    assert f"What is the capital of France?|{messages[-1]['content']}" in stored

    cached = json.loads(host.check_output(
        f"set -a; . /etc/langgraph/langgraph.env; {PYTHON} -c %s",
        "import json, os, redis; r = redis.from_url(os.environ['LANGGRAPH_APP_REDIS_URI']); "
        "print(json.dumps([r.ttl(k) for k in r.scan_iter('tool:recall_notes:*')]))",
    ))
    assert cached and all(0 < ttl <= 900 for ttl in cached), cached


def test_a_run_streams_per_node_updates(host):
    chunks = sdk(host, """
thread = await client.threads.create()
seen = []
async for chunk in client.runs.stream(thread["thread_id"], "smoke", input={}, stream_mode="updates"):
    if chunk.event == "updates":
        seen.extend(chunk.data)
out(seen)
""")
    assert chunks == ["first", "second"]


def test_every_replica_answers_for_every_thread_and_run(replicas):
    """A thread made on A, run on B (stopped at a static breakpoint), joined on A, read on
    both, continued on A with `input: null` as Studio's Continue does, streamed on B."""
    a, b = replicas
    thread_id = sdk(a, 'out((await client.threads.create(metadata={"made_on": "a"}))["thread_id"])')
    run_id = sdk(b, f"""
run = await client.runs.create({thread_id!r}, "smoke", input={{}}, interrupt_before=["second"])
out(run["run_id"])
""")
    joined = sdk(a, f"out(await client.runs.join({thread_id!r}, {run_id!r}))")
    assert joined["executions"] == ["first"]
    assert sdk(b, f'out((await client.threads.get({thread_id!r}))["metadata"]["made_on"])') == "a"
    for replica in (a, b):
        assert state_of(replica, thread_id) == {"next": ["second"], "values": {"executions": ["first"]}}
    history = [sdk(r, f"out([s['next'] for s in await client.threads.get_history({thread_id!r})])") for r in (a, b)]
    assert history[0] == history[1] and history[0][0] == ["second"]
    runs = [sdk(r, f"out(sorted(x['run_id'] for x in await client.runs.list({thread_id!r})))") for r in (a, b)]
    assert runs[0] == runs[1] == [run_id]

    # Continue from the breakpoint on A; follow the new run's stream on B.
    resumed = sdk(a, f'out((await client.runs.create({thread_id!r}, "smoke", input=None))["run_id"])')
    events = sdk(b, f"""
seen = []
async for chunk in client.runs.join_stream({thread_id!r}, {resumed!r}):
    seen.append(chunk.event)
out(seen)
""")
    assert events, "the stream on B sent nothing"
    final = sdk(b, f"out(await client.runs.join({thread_id!r}, {resumed!r}))")
    assert final["executions"] == ["first", "second"]
    statuses = sdk(a, f"out(sorted(x['status'] for x in await client.runs.list({thread_id!r})))")
    assert statuses == ["success", "success"]


def test_dynamic_interrupt_resumed_with_a_command_on_the_other_replica(replicas):
    a, b = replicas
    thread_id = sdk(a, """
thread = await client.threads.create()
await client.runs.wait(thread["thread_id"], "smoke", input={}, config={"configurable": {"ask": True}})
out(thread["thread_id"])
""")
    pending = sdk(b, f'out((await client.threads.get_state({thread_id!r}))["tasks"][0]["interrupts"])')
    assert pending and pending[0]["value"] == "note?"
    final = sdk(b, f"""
out(await client.runs.wait({thread_id!r}, "smoke", command={{"resume": "from b"}}, config={{"configurable": {{"ask": True}}}}))
""")
    assert final["note"] == "from b" and final["executions"] == ["first", "second"]


def test_a_run_whose_replica_was_killed_finishes_on_its_own(replicas):
    """SIGKILL of the replica running a run, inside its second node: the run is leased again
    (on either replica, once the lease expired) and ends `success` without running `first`
    again, and the client joined to it on the other replica gets the final values."""
    thread_id, run_id = start_slow_run(replicas[0], 8)
    running = replica_running(replicas, run_id)
    other = replicas[1] if running is replicas[0] else replicas[0]
    joined = join_in_background(other, thread_id, run_id)
    pid = main_pid(running)
    killed = time.time()
    running.run_expect([0], f"systemctl kill -s SIGKILL {UNIT}")
    status = wait_for_status(other, thread_id, run_id, timeout=150)[0]
    took = time.time() - killed
    print(f"SIGKILL -> success: {took:.0f} s")
    assert status == "success", status
    assert state_of(other, thread_id)["values"]["executions"] == ["first", "second"]
    deadline = time.time() + 30
    while not other.file(joined).content_string.strip() and time.time() < deadline:
        time.sleep(1)
    assert json.loads(other.file(joined).content_string.strip().splitlines()[-1])["executions"] == ["first", "second"]
    wait_until_serving(running, old_pid=pid)


def test_a_run_whose_host_died_finishes_on_the_other_one(replicas):
    """The whole replica host killed (docker kill: no shutdown, no drain)."""
    thread_id, run_id = start_slow_run(replicas[0], 8)
    running = replica_running(replicas, run_id)
    other = replicas[1] if running is replicas[0] else replicas[0]
    name = REPLICAS[replicas.index(running)]
    subprocess.run(["docker", "kill", name], check=True, capture_output=True)
    try:
        status, took = wait_for_status(other, thread_id, run_id, timeout=150)
        print(f"host killed -> success: {took:.0f} s")
        assert status == "success", status
        assert state_of(other, thread_id)["values"]["executions"] == ["first", "second"]
    finally:
        subprocess.run(["docker", "start", name], check=True, capture_output=True)
        wait_until_booted(name)
        wait_until_serving(running)


def test_a_restart_drains_instead_of_killing_runs(replicas):
    """systemctl restart (what a rollout or a changed setting does) lets the replica's run
    finish before it stops: the run ends `success` with each node run once."""
    thread_id, run_id = start_slow_run(replicas[0], 4)
    running = replica_running(replicas, run_id)
    other = replicas[1] if running is replicas[0] else replicas[0]
    pid = main_pid(running)
    running.run_expect([0], f"systemctl restart {UNIT}")
    status = wait_for_status(other, thread_id, run_id, timeout=90)[0]
    assert status == "success", status
    assert state_of(other, thread_id)["values"]["executions"] == ["first", "second"]
    log = running.check_output(f"journalctl -u {UNIT} -o cat --since=-3min")
    assert "Draining in-flight jobs" in log
    wait_until_serving(running, old_pid=pid)


def pickups(replicas, run_id: str) -> int:
    """How many times any replica's worker picked the run up."""
    return sum(int(replica.run(
        f"journalctl -u {UNIT} -o cat --since=-10min | grep -F 'Worker picked up run' | grep -cF {run_id}").stdout.strip() or 0)
        for replica in replicas)


@pytest.mark.parametrize("service", ["postgresql", "redis-server"])
def test_runs_in_flight_survive_a_restart_of_the_state_service(replicas, state_host, service):
    """PostgreSQL (threads, runs, checkpoints) or Redis (the job queue, the leases' pub/sub)
    restarted on the state host while four runs, two per replica, are inside their second
    node: every run ends `success` (late is fine), each node ran once, and no run was
    picked up twice."""
    runs = [sdk(replicas[i % 2], """
thread = await client.threads.create()
run = await client.runs.create(thread["thread_id"], "smoke", input={}, config={"configurable": {"second_seconds": 6}})
out([thread["thread_id"], run["run_id"]])
""") for i in range(4)]
    deadline = time.time() + 60
    threads = [thread_id for thread_id, run_id in runs]
    while any(state_of(replicas[0], thread_id)["values"].get("executions") != ["first"] for thread_id in threads):
        assert time.time() < deadline, "the runs' first nodes never finished"
        time.sleep(0.5)
    # Forty state reads at once on each replica: their checkpoint pools grow to hold many
    # idle connections, as after a busy hour, for the restart to break.
    for replica in replicas:
        sdk(replica, f"""
await asyncio.gather(*[client.threads.get_state(t) for t in {threads * 10!r}])
out(True)
""")
    state_host.run_expect([0], f"systemctl restart {service}")
    for thread_id, run_id in runs:
        status = ""
        deadline = time.time() + 180
        while time.time() < deadline:
            # A replica may answer 5xx for the seconds its pool takes to reconnect.
            answer = replicas[0].run("%s -c %s", PYTHON, script(replicas[0], f'out((await client.runs.get({thread_id!r}, {run_id!r}))["status"])'))
            status = json.loads(answer.stdout.splitlines()[-1]) if answer.rc == 0 else f"(rc {answer.rc})"
            if status in ("success", "error", "interrupted", "timeout"):
                break
            time.sleep(1)
        assert status == "success", (run_id, status)
        assert state_of(replicas[0], thread_id)["values"]["executions"] == ["first", "second"]
        assert pickups(replicas, run_id) == 1, run_id


def test_bound_to_its_private_address_open_to_the_edge_only(host, state_host, prober):
    address = network_address(host)
    assert listening_on(host, 8123) == {f"tcp://{address}:8123"}
    assert connect_from(state_host, address, 8123) == "open"
    assert connect_from(prober, address, 8123) in ("refused", "timeout")
    # Where the edge reads that address (roles/caddy: published_endpoints).
    fact = host.file("/etc/ansible/facts.d/langgraph_server.fact")
    assert fact.mode == 0o644 and fact.user == "root"
    assert json.loads(fact.content_string) == {"bind_address": address, "port": 8123, "engine": "aegra", "unit": "langgraph-server"}


def test_studio_cors_preflight(host):
    def preflight(origin):
        return host.check_output(
            f"curl -s -o /dev/null -w '%{{http_code}}' -X OPTIONS {url(host)}/threads -H 'Origin: {origin}' "
            "-H 'Access-Control-Request-Method: POST' -H 'Access-Control-Request-Headers: content-type'"
        )

    assert preflight("https://smith.langchain.com") == "200"
    assert preflight("https://evil.example") == "400"


def test_secrets_only_in_the_env_file(host):
    env = host.file("/etc/langgraph/langgraph.env")
    assert env.user == "langgraph" and env.mode == 0o600
    for secret in ("molecule-langgraph-secret", "molecule-redis-app-secret", "molecule-vllm-key-0123456789"):
        assert secret in env.content_string
        assert secret not in host.file(f"/etc/systemd/system/{UNIT}.service").content_string
        assert secret not in host.file(f"{HOME}/current/langgraph.json").content_string
        assert secret not in host.check_output("ps -eo args")
        assert secret not in host.check_output(f"journalctl -u {UNIT} -o cat")
    state = host.check_output(f"curl -s -X POST {url(host)}/threads/search -H 'Content-Type: application/json' -d '{{\"limit\": 100}}'")
    assert "molecule-" not in state


def test_runs_sandboxed_as_the_langgraph_user(host):
    assert host.check_output(f"ps -o user= -p {main_pid(host)}") == "langgraph"
    props = host.check_output(f"systemctl show {UNIT} -p NoNewPrivileges -p ProtectSystem -p Restart")
    assert "NoNewPrivileges=yes" in props and "ProtectSystem=strict" in props and "Restart=on-failure" in props


# Runs on a replica with the release's Python: one connection by each driver the server
# uses (psycopg: libpq; asyncpg: Aegra's own tables), as the unit's environment has them,
# with PGSSLROOTCERT taken from argv; prints what each got.
BOTH_DRIVERS = """
import asyncio, os, sys
import asyncpg, psycopg
os.environ["PGSSLROOTCERT"] = sys.argv[2]
def psycopg_says():
    try:
        with psycopg.connect(sys.argv[1]) as conn:
            return "ok" if conn.execute("select ssl from pg_stat_ssl where pid = pg_backend_pid()").fetchone()[0] else "plain"
    except psycopg.OperationalError as err:
        return "refused: " + str(err).strip().splitlines()[-1]
async def asyncpg_says():
    try:
        # As Aegra hands it over (SQLAlchemy's asyncpg dialect): the mode as the ssl argument.
        dsn, _sep, query = sys.argv[1].partition("?")
        conn = await asyncpg.connect(dsn, ssl=query.removeprefix("sslmode="))
    except Exception as err:
        return "refused: " + type(err).__name__ + " " + str(err)
    await conn.close()
    return "ok"
print(psycopg_says())
print(asyncio.run(asyncpg_says()))
"""


def test_state_on_the_state_host(host, state_host):
    """The replicas keep everything on the state host, over TLS that checks the server's
    certificate against the state host's own CA: both drivers refuse any other CA."""
    env = env_file(host)
    assert env["DATABASE_URL"].endswith("sslmode=verify-full") and "@127.0.0.1:" not in env["DATABASE_URL"]
    assert env["PGSSLROOTCERT"] == "/etc/langgraph/postgresql-ca.crt"
    assert host.file(env["PGSSLROOTCERT"]).content_string == state_host.file("/etc/ai-infra/postgresql-tls/ca.crt").content_string
    assert not host.service("postgresql").is_running
    assert not host.service("redis-server").is_running
    trusted = host.check_output("%s -c %s %s %s", PYTHON, BOTH_DRIVERS, env["DATABASE_URL"], env["PGSSLROOTCERT"])
    assert trusted.splitlines() == ["ok", "ok"]
    # The system's CAs (the other choice a client has) do not vouch for this server.
    other = host.check_output("%s -c %s %s %s", PYTHON, BOTH_DRIVERS, env["DATABASE_URL"], "/etc/ssl/certs/ca-certificates.crt")
    assert [line.startswith("refused") and "certificate verify failed" in line for line in other.splitlines()] == [True, True], other
    # Every connection this replica holds to PostgreSQL is encrypted.
    rows = state_host.check_output(
        "runuser -u postgres -- psql -tAc \"SELECT s.ssl FROM pg_stat_activity a JOIN pg_stat_ssl s USING (pid) "
        "WHERE a.usename = 'langgraph' AND host(a.client_addr) = '%s'\"", network_address(host)).split()
    assert rows and set(rows) == {"t"}


def test_broken_release_fails_and_the_live_one_keeps_serving(replicas):
    """One deploy of a broken release to both replicas at once (a rollout's second host sees
    the same failure as its first): the play fails with the import error on each, and each
    keeps its live release, process and environment."""
    before = [(r.file(f"{HOME}/current").linked_to, main_pid(r), r.file("/etc/langgraph/langgraph.env").sha256sum)
              for r in replicas]
    scenario = pathlib.Path(__file__).resolve().parent.parent
    run = subprocess.run(
        ["ansible-playbook", "-i", os.environ["MOLECULE_INVENTORY_FILE"], "--limit", ",".join([*REPLICAS, "gpu_workers"]),
         str(scenario / "broken_release.yml")],
        capture_output=True, text=True, check=False, timeout=600,
    )
    output = run.stdout + run.stderr
    assert run.returncode != 0
    assert output.count("failed its check") >= len(replicas), output
    for name in REPLICAS:  # each replica failed on its own check, not only the first
        assert f"fatal: [{name}]" in output, output
    assert "module_that_is_not_installed" in output
    for replica, (current, pid, env) in zip(replicas, before):
        assert replica.file(f"{HOME}/current").linked_to == current
        assert main_pid(replica) == pid
        assert replica.file("/etc/langgraph/langgraph.env").sha256sum == env
        assert replica.run(f"curl -sf {url(replica)}/health").rc == 0


def psql(state_host, sql: str) -> str:
    return state_host.check_output("runuser -u postgres -- psql -d langgraph -tAc %s", sql)


def rows_of(state_host, thread_id: str) -> dict[str, int]:
    tables = ("thread", "runs", "checkpoints", "checkpoint_blobs", "checkpoint_writes")
    counts = psql(state_host, " UNION ALL ".join(
        f"SELECT '{t}', count(*) FROM {t} WHERE thread_id = '{thread_id}'" for t in tables))
    return {line.split("|")[0]: int(line.split("|")[1]) for line in counts.splitlines()}


def test_pruning_removes_the_engines_rows_too_and_never_a_busy_thread(replicas, state_host):
    """The state host's prune timer on Aegra's database: an old finished thread and an old
    thread that never ran go from every table (thread, its runs, its checkpoints); an old
    thread whose run is still running stays, and its run still finishes."""
    a = replicas[0]
    finished = sdk(a, """
thread = await client.threads.create()
await client.runs.wait(thread["thread_id"], "smoke", input={})
out(thread["thread_id"])
""")
    never_ran = sdk(a, 'out((await client.threads.create())["thread_id"])')
    busy, busy_run = start_slow_run(a, 20)
    assert rows_of(state_host, finished)["runs"] == 1 and rows_of(state_host, finished)["checkpoints"] > 0
    old = ", ".join(f"'{t}'" for t in (finished, never_ran, busy))
    psql(state_host, f"UPDATE checkpoints SET checkpoint = jsonb_set(checkpoint, '{{ts}}', "
                     f"'\"2000-01-01T00:00:00+00:00\"') WHERE thread_id IN ({old})")
    psql(state_host, f"UPDATE thread SET updated_at = '2000-01-01' WHERE thread_id IN ({old})")

    state_host.check_output("systemctl start ai-infra-checkpoint-prune.service")
    journal = state_host.check_output("journalctl -u ai-infra-checkpoint-prune.service --no-pager -o cat")
    removed = [line for line in journal.splitlines() if line.startswith("removed")][-1]
    assert re.search(r", thread [1-9]\d* rows", removed), removed

    for gone in (finished, never_ran):
        assert rows_of(state_host, gone) == dict.fromkeys(rows_of(state_host, gone), 0), gone
    kept = rows_of(state_host, busy)
    assert kept["thread"] == 1 and kept["runs"] == 1 and kept["checkpoints"] > 0, kept
    status = wait_for_status(a, busy, busy_run, timeout=90)[0]
    assert status == "success"
    assert state_of(a, busy)["values"]["executions"] == ["first", "second"]
    # Nothing left pointing at a thread that is gone.
    for table in ("runs", "crons", "thread_ttl"):
        assert psql(state_host, f"SELECT count(*) FROM {table} x WHERE x.thread_id IS NOT NULL AND NOT EXISTS "
                                f"(SELECT 1 FROM thread t WHERE t.thread_id = x.thread_id)") == "0", table


JS_SDK = "@langchain/langgraph-sdk@1.15.0"
EDGE_TOKEN = "molecule-edge-token-0123456789abcdef"
EDGE_ROOT = "/var/lib/caddy/.local/share/caddy/pki/authorities/local/root.crt"


@pytest.fixture(scope="module")
def js_sdk():
    """The pinned JS SDK from npm, installed once per version under .cache (npm's own
    download cache makes a reinstall cheap)."""
    project = pathlib.Path(os.environ.get("MOLECULE_PROJECT_DIRECTORY", pathlib.Path(__file__).resolve().parents[3]))
    folder = project / ".cache" / "js-sdk" / JS_SDK.replace("/", "_").replace("@", "")
    if not (folder / "node_modules" / "@langchain" / "langgraph-sdk").is_dir():
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "package.json").write_text('{"private": true}\n')
        subprocess.run(["npm", "install", "--no-audit", "--no-fund", "--silent", JS_SDK],
                       cwd=folder, check=True, capture_output=True, timeout=300)
    (folder / "studio_flow.mjs").write_text((pathlib.Path(__file__).parent / "studio_flow.mjs").read_text())
    return folder


def test_studio_flow_through_the_edge_with_the_js_sdk(js_sdk, state_host, tmp_path):
    """The official JS SDK, as Studio uses the API, from outside through the edge (TLS with
    its internal CA, the bearer token) to both replicas behind it."""
    root = tmp_path / "edge-root.crt"
    root.write_text(state_host.file(EDGE_ROOT).content_string)
    run = subprocess.run(
        ["node", "studio_flow.mjs"], cwd=js_sdk, capture_output=True, text=True, check=False, timeout=600,
        env=dict(os.environ, EDGE_URL=f"https://{network_address(state_host)}", EDGE_TOKEN=EDGE_TOKEN,
                 NODE_EXTRA_CA_CERTS=str(root)),
    )
    assert run.returncode == 0, run.stderr[-3000:]
    seen = json.loads(run.stdout.strip().splitlines()[-1])
    assert seen["info"]["name"] == "Aegra"
    assert seen["graphs"] == ["agent", "smoke"]
    assert {"first", "second"} <= set(seen["graphNodes"])
    assert {"input_schema", "output_schema", "state_schema"} <= set(seen["schemaKeys"])
    assert {"values", "updates", "debug"} <= set(seen["streamEvents"]), seen["streamEvents"]
    assert seen["threadId"] in seen["search"]
    assert seen["state"]["executions"] == ["first", "second"] and seen["historyLength"] >= 3
    assert any(kind.startswith("messages") for kind in seen["messageEvents"]), seen["messageEvents"]
    assert seen["pausedNext"] == ["second"]
    assert seen["continued"]["executions"] == ["first", "second"]
    assert seen["interrupts"] == ["note?"]
    assert seen["resumed"]["note"] == "from js" and seen["resumed"]["executions"] == ["first", "second"]


def test_engine_benchmark_quick_mode(replicas):
    """bench/agent_server_engines.py --quick against these replicas and their edge: the bench
    does not rot; every run through the edge succeeded (two replicas, then one) and the
    killed run finished by itself with each node once."""
    collection = pathlib.Path(__file__).resolve().parents[3]
    run = subprocess.run(
        ["python", str(collection / "bench" / "agent_server_engines.py"), "--engines", "aegra", "--quick"],
        capture_output=True, text=True, check=False, timeout=600,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    lines = run.stdout.splitlines()
    errors = next(line for line in lines if line.startswith("errors "))
    assert errors.split()[1:] == ["0", "0"], run.stdout
    finished = next(line for line in lines if line.startswith("finished (s)"))
    assert "(success)" in finished, run.stdout
    assert "['first', 'second']" in next(line for line in lines if line.startswith("executions")), run.stdout
    for replica in replicas:
        assert replica.run(f"curl -sf {url(replica)}/health").rc == 0
