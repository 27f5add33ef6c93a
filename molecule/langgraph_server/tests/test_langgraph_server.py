"""Verifies the langgraph_server role: a real server on a real Postgres, driven through
langgraph-sdk (the HTTP API LangGraph Studio uses), killed, wiped and resumed."""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import time

import pytest
from conftest import connect_from, listening_on, network_address

testinfra_hosts = ["ansible://molecule_hosts"]

HOME = "/opt/ai-infra/langgraph"
PYTHON = f"{HOME}/current/venv/bin/python"
UNIT = "langgraph-server"
URL = "http://127.0.0.1:8123"

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


def sdk(host, code: str):
    body = "\n".join("    " + line for line in code.strip().splitlines())
    return json.loads(host.check_output("%s -c %s", PYTHON, PRELUDE % (URL, body)).splitlines()[-1])


def new_interrupted_thread(host) -> str:
    """A thread of the smoke graph that stopped before its second node."""
    return sdk(host, """
thread = await client.threads.create()
await client.runs.wait(thread["thread_id"], "smoke", input={}, interrupt_before=["second"])
out(thread["thread_id"])
""")


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
            if host.run(f"curl -sf {URL}/ok").rc == 0:
                return
        time.sleep(1)
    raise AssertionError(f"{UNIT} did not come back within {timeout} s")


def env_file(host) -> dict[str, str]:
    lines = host.file("/etc/langgraph/langgraph.env").content_string.splitlines()
    return dict(line.split("=", 1) for line in lines if "=" in line and not line.startswith("#"))


def needs_vllm(host) -> None:
    if not host.backend.get_hostname().endswith("debian12"):
        pytest.skip("vLLM runs on the Debian 12 host only (its CPU wheels need Python 3.11)")


def vllm_requests_finished(host) -> int:
    """vLLM's own count of finished requests, summed over finish reasons."""
    metrics = host.check_output("curl -sf http://127.0.0.1:8000/metrics")
    return int(sum(float(line.rsplit(" ", 1)[1]) for line in metrics.splitlines() if line.startswith("vllm:request_success_total")))


def sigkill(host) -> None:
    pid = main_pid(host)
    host.run_expect([0], f"systemctl kill -s SIGKILL {UNIT}")
    wait_until_serving(host, old_pid=pid)


def test_server_answers_ok_info_and_lists_the_graphs(host):
    assert json.loads(host.check_output(f"curl -sf {URL}/ok"))["ok"] is True
    assert "version" in json.loads(host.check_output(f"curl -sf {URL}/info"))
    graphs = sdk(host, 'out(sorted(a["graph_id"] for a in await client.assistants.search()))')
    assert graphs == ["agent", "smoke"]


def test_agent_graph_answers_with_the_real_model(host):
    """The default app end to end: supervisor -> AGENT_FANOUT workers -> collect -> trim,
    every model call served by vLLM, the answer kept in the Postgres store, the tool's
    result cached in Redis with a TTL."""
    needs_vllm(host)
    env = env_file(host)
    # The server's settings are vLLM's own, as the vllm role recorded them.
    recorded = json.loads(host.file("/etc/ansible/facts.d/vllm.fact").content_string)
    assert env["VLLM_MODEL"] == recorded["served_model"] == "smollm2"
    assert env["AGENT_MAX_CONCURRENCY"] == str(recorded["max_num_seqs"])
    assert f'"--max-num-seqs" "{recorded["max_num_seqs"]}"' in host.file("/etc/systemd/system/vllm.service").content_string
    before = vllm_requests_finished(host)
    result = sdk(host, """
thread = await client.threads.create()
values = await client.runs.wait(thread["thread_id"], "agent",
    input={"messages": [{"role": "user", "content": "What is the capital of France?"}]})
notes = await client.store.search_items(["notes"])
out({"values": values, "notes": [item["value"] for item in notes["items"]]})
""")
    messages = result["values"]["messages"]
    assert [m["type"] for m in messages] == ["human", "ai"], messages
    assert messages[-1]["content"].strip()
    assert result["values"]["results"] == []
    # One request per worker, one for collect: the fan-out really reached vLLM.
    assert vllm_requests_finished(host) - before == int(env["AGENT_FANOUT"]) + 1
    assert {"question": "What is the capital of France?", "answer": messages[-1]["content"]} in result["notes"]

    # The store is PostgreSQL's `store` table, not the server's in-memory one.
    stored = host.check_output(
        "runuser -u postgres -- psql -d langgraph -tAc \"SELECT value->>'answer' FROM store WHERE prefix = 'notes'\"")
    assert messages[-1]["content"].strip() in stored

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


def test_interrupted_thread_survives_sigkill_and_resumes_without_rerunning(host):
    thread_id = new_interrupted_thread(host)
    assert state_of(host, thread_id) == {"next": ["second"], "values": {"executions": ["first"]}}
    time.sleep(11)  # past the server's 10-second flush of its own files
    sigkill(host)
    assert state_of(host, thread_id) == {"next": ["second"], "values": {"executions": ["first"]}}
    final = sdk(host, f'out(await client.runs.wait({thread_id!r}, "smoke", input=None))')
    assert final["executions"] == ["first", "second"]


def test_thread_killed_within_the_flush_window_comes_back(host):
    """Killed at once: the server's files do not have the thread yet; the re-registration
    brings it back from Postgres. Measured: the server may also replay the run it had not
    recorded as finished, from its last checkpoint; either way `first` ran once."""
    thread_id = new_interrupted_thread(host)
    sigkill(host)
    state = state_of(host, thread_id)
    assert state in (
        {"next": ["second"], "values": {"executions": ["first"]}},
        {"next": [], "values": {"executions": ["first", "second"]}},
    ), state


def test_run_killed_in_the_middle_of_a_node_reruns_only_that_node(host):
    thread_id = sdk(host, """
thread = await client.threads.create()
await client.runs.create(thread["thread_id"], "smoke", input={}, config={"configurable": {"second_seconds": 60}})
out(thread["thread_id"])
""")
    deadline = time.time() + 60
    while state_of(host, thread_id)["values"].get("executions") != ["first"]:
        assert time.time() < deadline, "the first node never finished"
        time.sleep(0.5)
    time.sleep(2)  # now inside `second`, sleeping
    sigkill(host)
    assert state_of(host, thread_id) == {"next": ["second"], "values": {"executions": ["first"]}}
    final = sdk(host, f'out(await client.runs.wait({thread_id!r}, "smoke", input=None))')
    assert final["executions"] == ["first", "second"]


def test_replacement_machine_serves_old_threads(host):
    """Working directory wiped (a new machine, the same Postgres): threads come back."""
    thread_id = new_interrupted_thread(host)
    history_before = sdk(host, f"out(len(await client.threads.get_history({thread_id!r})))")
    host.run_expect([0], f"systemctl stop {UNIT}")
    host.run_expect([0], "find /var/lib/langgraph -mindepth 1 -delete")

    # Without the re-registration the server does not know the thread: start the same
    # release by hand on another port with an empty working directory.
    unknown = host.run(
        "cd $(mktemp -d) && chown langgraph . && (runuser -u langgraph -- env $(grep -v '^#' /etc/langgraph/langgraph.env | xargs) "
        f"{HOME}/current/venv/bin/langgraph dev --no-reload --no-browser --port 8125 --config {HOME}/current/langgraph.json "
        ">server.log 2>&1 &) && for i in $(seq 360); do curl -sf http://127.0.0.1:8125/ok >/dev/null && break; sleep 0.5; done; "
        f"curl -s -o /dev/null -w '%{{http_code}}' http://127.0.0.1:8125/threads/{thread_id}; "
        "pkill -f 'port 8125'; echo; tail -n 20 server.log"
    )
    answer = unknown.stdout.strip().splitlines()[0] if unknown.stdout.strip() else ""
    # Before asserting: a failure above must not leave the host without its server.
    host.run_expect([0], f"systemctl start {UNIT}")
    assert answer.endswith("404"), unknown.stdout

    wait_until_serving(host)
    log = host.check_output(f"journalctl -u {UNIT} -o cat --since=-2min")
    assert "registered again:" in log
    assert state_of(host, thread_id) == {"next": ["second"], "values": {"executions": ["first"]}}
    assert sdk(host, f"out(len(await client.threads.get_history({thread_id!r})))") == history_before
    final = sdk(host, f'out(await client.runs.wait({thread_id!r}, "smoke", input=None))')
    assert final["executions"] == ["first", "second"]


def test_re_registration_is_idempotent(host):
    out = host.check_output(
        f"set -a; . /etc/langgraph/langgraph.env; {PYTHON} {HOME}/bin/reregister_threads.py --url {URL}"
    )
    assert "registered again: 0;" in out and "failed: 0" in out


def test_bound_to_loopback_only(host, prober):
    listening = listening_on(host, 8123)
    assert listening == {"tcp://127.0.0.1:8123"}
    assert connect_from(prober, network_address(host), 8123) in ("refused", "timeout")


def test_studio_cors_preflight(host):
    def preflight(origin):
        return host.check_output(
            f"curl -s -o /dev/null -w '%{{http_code}}' -X OPTIONS {URL}/threads -H 'Origin: {origin}' "
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
    state = host.check_output(f"curl -s -X POST {URL}/threads/search -H 'Content-Type: application/json' -d '{{\"limit\": 100}}'")
    assert "molecule-" not in state


def test_runs_sandboxed_as_the_langgraph_user(host):
    assert host.check_output(f"ps -o user= -p {main_pid(host)}") == "langgraph"
    props = host.check_output(f"systemctl show {UNIT} -p NoNewPrivileges -p ProtectSystem -p Restart")
    assert "NoNewPrivileges=yes" in props and "ProtectSystem=strict" in props and "Restart=on-failure" in props


def test_state_on_the_first_state_host(host):
    """The Debian 13 server keeps its state on the Debian 12 host (TLS to PostgreSQL)."""
    env = host.file("/etc/langgraph/langgraph.env").content_string
    if host.backend.get_hostname().endswith("debian12"):
        assert "@127.0.0.1:5432/langgraph?sslmode=prefer" in env
    else:
        assert "sslmode=require" in env and "@127.0.0.1:" not in env
        assert not host.service("postgresql").is_running


def test_broken_release_fails_and_the_live_one_keeps_serving(host):
    current = host.file(f"{HOME}/current").linked_to
    pid = main_pid(host)
    env = host.file("/etc/langgraph/langgraph.env").sha256sum
    scenario = pathlib.Path(__file__).resolve().parent.parent
    run = subprocess.run(
        ["ansible-playbook", "-i", os.environ["MOLECULE_INVENTORY_FILE"], str(scenario / "broken_release.yml")],
        capture_output=True, text=True, check=False, timeout=600,
    )
    output = run.stdout + run.stderr
    assert run.returncode != 0
    assert "failed its check" in output
    assert "module_that_is_not_installed" in output
    assert host.file(f"{HOME}/current").linked_to == current
    assert main_pid(host) == pid
    # A play without the vllm role keeps vLLM's settings (the ansible_local.vllm fact).
    assert host.file("/etc/langgraph/langgraph.env").sha256sum == env
    assert json.loads(host.check_output(f"curl -sf {URL}/ok"))["ok"] is True
