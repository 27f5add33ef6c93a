"""Verifies the redis role against the running server: auth, ACLs, memory policy, binds."""

from __future__ import annotations

import json

from conftest import exchange_from, listening_on

testinfra_hosts = ["ansible://molecule_hosts"]

APP = ("langgraph", "molecule-app-secret")
ADMIN = ("admin", "molecule-admin-secret")


def cli(host, *args, user=None):
    cmd = "redis-cli --no-auth-warning -h 127.0.0.1 -p 6379"
    if user:
        cmd = f"REDISCLI_AUTH={user[1]} {cmd} --user {user[0]}"
    return host.run(cmd + " " + " ".join(args))


def test_service_runs_with_distro_sandboxing(host):
    svc = host.service("redis-server")
    assert svc.is_running and svc.is_enabled
    props = host.check_output("systemctl show redis-server -p ProtectSystem -p PrivateUsers -p NoNewPrivileges")
    assert "ProtectSystem=strict" in props
    assert "PrivateUsers=yes" in props
    assert "NoNewPrivileges=yes" in props


def test_unauthenticated_client_is_refused(host):
    out = cli(host, "SET", "k", "v")
    assert "NOAUTH" in out.stdout + out.stderr


def test_wrong_password_is_refused(host):
    out = cli(host, "PING", user=("langgraph", "wrong"))
    assert "WRONGPASS" in out.stdout + out.stderr


def test_app_user_reads_and_writes_with_ttl(host):
    assert cli(host, "SET", "tool:result:1", "42", "EX", "60", user=APP).stdout.strip() == "OK"
    assert cli(host, "GET", "tool:result:1", user=APP).stdout.strip() == "42"
    assert 0 < int(cli(host, "TTL", "tool:result:1", user=APP).stdout) <= 60


def test_app_user_cannot_run_dangerous_commands(host):
    for command in ("FLUSHALL", "CONFIG GET maxmemory", "KEYS '*'", "DEBUG SLEEP 0", "SHUTDOWN"):
        out = cli(host, command, user=APP)
        # DEBUG is also refused server-wide (enable-debug-command no), before the ACL check.
        answer = out.stdout + out.stderr
        assert "NOPERM" in answer or "DEBUG command not allowed" in answer, command
    assert host.service("redis-server").is_running


def test_memory_cap_and_eviction_policy_active(host):
    policy = cli(host, "CONFIG", "GET", "maxmemory-policy", user=ADMIN).stdout.split()
    assert policy == ["maxmemory-policy", "volatile-lru"]
    maxmemory = cli(host, "CONFIG", "GET", "maxmemory", user=ADMIN).stdout.split()
    assert maxmemory == ["maxmemory", str(64 * 1024 * 1024)]
    assert cli(host, "CONFIG", "GET", "save", user=ADMIN).stdout.split() == ["save"]


def private_address(host):
    return host.interface("eth0").addresses[0]


def test_bound_to_loopback_and_the_private_address_only(host):
    listening = listening_on(host, 6379)
    required = {"tcp://127.0.0.1:6379", f"tcp://{private_address(host)}:6379"}
    # ::1 is optional ("-::1"): these containers have no IPv6 loopback.
    assert required <= listening <= required | {"tcp://::1:6379"}


def test_remote_client_needs_credentials(host, prober):
    address = private_address(host)
    assert exchange_from(prober, address, 6379, "PING\\r\\n").startswith("-NOAUTH")
    answer = exchange_from(prober, address, 6379, "AUTH langgraph molecule-app-secret\\r\\nPING\\r\\n")
    assert answer == "+OK\r\n+PONG\r\n"


def test_acl_file_not_readable_by_others(host):
    acl = host.file("/etc/redis/users.acl")
    assert acl.user == "root" and acl.group == "redis" and acl.mode == 0o640
    assert "molecule-app-secret" not in host.check_output("cat /etc/redis/users.acl")


def test_clients_find_the_port_and_users_in_the_published_local_fact(host):
    # What the langgraph_server role and the edge's gate read on other hosts (filter
    # `published`): the settings, no secret, readable by Ansible's fact gathering.
    fact = host.file("/etc/ansible/facts.d/redis.fact")
    assert (fact.user, fact.group, fact.mode) == ("root", "root", 0o644)
    assert json.loads(fact.content_string) == {"port": 6379, "app_user": "langgraph",
                                               "gate_user": "ai-infra-gate", "gate_db": 1}
    assert "secret" not in fact.content_string
