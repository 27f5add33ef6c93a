"""Verifies the caddy_gate role without Caddy: the gate asked on its unix socket as Caddy's
forward_auth asks it, its credentials and budgets, the budgets of both hosts' gates counted in
one Redis, its socket's and files' permissions. molecule/caddy checks it through Caddy."""

from __future__ import annotations

import itertools

import pytest
import testinfra

testinfra_hosts = ["ansible://molecule_hosts"]

SOCKET = "/run/ai-infra-gate/gate.sock"
ALPHA = "molecule-gate-token-alpha-7f3k9q2x"
BETA = "molecule-gate-token-beta-4m8w1z6v"
# A new client address for each test: failed logins have a budget per address.
ADDRESSES = (f"198.51.100.{n}" for n in itertools.count(10))


def ask(host, address, token=None, as_user=""):
    """(status, headers) of the gate's answer, as Caddy's forward_auth asks it."""
    auth = f"-H 'Authorization: Bearer {token}' " if token else ""
    out = host.run(f"{as_user}curl -s -o /dev/null -D - --unix-socket {SOCKET} -H 'X-Forwarded-For: {address}' "
                   f"-H 'X-Forwarded-Uri: /threads' {auth}http://localhost/check")
    lines = out.stdout.splitlines()
    status = int(lines[0].split()[1]) if lines else 0
    pairs = (line.split(":", 1) for line in lines[1:] if ":" in line)
    headers = {key.strip().lower(): value.strip() for key, value in pairs}
    return status, headers


def test_gate_runs_sandboxed_and_answers(host):
    assert host.service("ai-infra-gate").is_running and host.service("ai-infra-gate").is_enabled
    props = host.check_output("systemctl show ai-infra-gate -p User -p ProtectSystem -p NoNewPrivileges")
    assert "User=ai-infra-gate" in props and "ProtectSystem=strict" in props and "NoNewPrivileges=yes" in props
    assert host.check_output(f"curl -s --unix-socket {SOCKET} http://localhost/healthz -o /dev/null -w '%{{http_code}}'") == "200"


def test_only_root_and_the_gate_group_reach_the_socket(host):
    assert host.file("/run/ai-infra-gate").mode == 0o750 and host.file("/run/ai-infra-gate").group == "ai-infra-gate"
    assert ask(host, next(ADDRESSES), ALPHA, as_user="runuser -u nobody -- ")[0] == 0  # nobody cannot connect
    listening = host.check_output("ss -Hltnp")  # the gate has no TCP port
    assert "python" not in listening, listening


def test_credentials(host):
    address = next(ADDRESSES)
    status, headers = ask(host, address)
    assert status == 401 and headers.get("www-authenticate", "").startswith("Bearer")
    assert ask(host, address, "molecule-gate-token-wrong-00000000")[0] == 401
    assert ask(host, next(ADDRESSES), ALPHA)[0] == 200


def test_failed_logins_have_their_own_budget(host):
    address = next(ADDRESSES)
    statuses = [ask(host, address, "molecule-gate-token-wrong-00000000")[0] for attempt in range(4)]
    assert statuses == [401, 401, 401, 429], statuses


def test_both_gates_spend_one_budget_in_the_state_hosts_redis(host):
    """Five requests per credential a minute: three through this host's gate and two
    through the other's all pass, the sixth through either is refused with Retry-After."""
    if not host.backend.get_hostname().endswith("debian13"):
        pytest.skip("runs once, for both hosts")
    other = testinfra.get_host("docker://caddy_gate-debian12")
    statuses = [ask(gate, next(ADDRESSES), BETA)[0] for gate in (host, other, host, other, host)]
    assert statuses == [200] * 5, statuses
    status, headers = ask(other, next(ADDRESSES), BETA)
    assert status == 429 and int(headers["retry-after"]) >= 1
    # The gates' own Redis user may run their script only (no SCAN): Redis's admin looks.
    keys = other.check_output("REDISCLI_AUTH=molecule-admin-secret redis-cli --user admin "
                              "--no-auth-warning -n 1 --scan --pattern 'ai-infra-gate:*'")
    assert keys.strip(), "the gates counted nothing in the state host's Redis"


def test_secrets_stay_in_the_root_only_file(host):
    env = host.file("/etc/ai-infra-gate/gate.env")
    assert env.user == "root" and env.mode == 0o600
    assert "molecule-redis-gate-secret" in env.content_string
    config = host.file("/etc/ai-infra-gate/gate.json")
    assert config.mode == 0o640 and config.group == "ai-infra-gate"
    for secret in (ALPHA, BETA, "molecule-redis-gate-secret"):
        assert secret not in config.content_string
