"""Verifies the base role on the real host containers, from outside and inside."""

from __future__ import annotations

import json
import os
import pathlib
import re
import subprocess
import time

from conftest import connect_from, restart_container

testinfra_hosts = ["ansible://molecule_hosts"]

LISTENERS = (80, 8081, 8082, 8083)


def start_listeners(host):
    # Same transient units as prepare.yml; after a reboot they are gone and come back here.
    for port in LISTENERS:
        host.run(f"systemctl is-active --quiet probe-{port} || "
                 f"systemd-run --unit=probe-{port} python3 -m http.server {port}")
    for port in LISTENERS:
        assert host.socket(f"tcp://0.0.0.0:{port}").is_listening or \
            host.socket(f"tcp://:::{port}").is_listening


def ruleset(host):
    out = host.check_output("nft -j list table inet ai_infra_base")
    return json.loads(out)["nftables"]


def expected_reachability(host, prober):
    address = host.backend.get_hostname()
    return {
        22: connect_from(prober, address, 22),       # SSH
        80: connect_from(prober, address, 80),       # edge group: HTTP
        8081: connect_from(prober, address, 8081),   # listed in base_firewall_rules
        8082: connect_from(prober, address, 8082),   # listening, not listed
        8083: connect_from(prober, address, 8083),   # listed, only for TEST-NET sources
        9999: connect_from(prober, address, 9999),   # nothing listening, not listed
    }


WANTED = {22: "open", 80: "open", 8081: "open", 8082: "timeout", 8083: "timeout", 9999: "timeout"}


def test_common_packages_installed(host):
    for name in ("acl", "ca-certificates", "curl", "gnupg", "tzdata", "nftables", "systemd-timesyncd"):
        assert host.package(name).is_installed, name


def test_timezone_and_locale(host):
    assert host.file("/etc/localtime").linked_to.endswith("/Etc/UTC")
    assert "LANG=C.UTF-8" in host.file("/etc/default/locale").content_string


def test_time_sync_configured_and_enabled(host):
    conf = host.file("/etc/systemd/timesyncd.conf.d/50-ai-infra.conf")
    assert "NTP=ntp.example.org" in conf.content_string
    assert host.service("systemd-timesyncd").is_enabled


def test_firewall_policy_is_drop_with_ssh_first(host):
    items = ruleset(host)
    chain = next(i["chain"] for i in items if "chain" in i and i["chain"]["name"] == "input")
    assert chain["policy"] == "drop" and chain["hook"] == "input"
    rules = [i["rule"] for i in items if "rule" in i]
    assert any(r.get("comment") == "SSH" for r in rules)


def test_config_file_not_world_readable(host):
    conf = host.file("/etc/nftables.conf")
    assert conf.mode == 0o600 and conf.user == "root"


def test_firewall_from_another_machine(host, prober):
    start_listeners(host)
    assert expected_reachability(host, prober) == WANTED


def test_loopback_still_reaches_unlisted_port(host):
    # The unlisted listener is blocked from outside, not broken: loopback is allowed.
    assert host.run("python3 -c 'import socket; socket.create_connection((\"127.0.0.1\", 8082), 2)'").rc == 0


def test_stop_removes_only_our_table(host):
    host.check_output("nft add table ip other_tool")
    try:
        host.check_output("systemctl restart nftables")
        assert "table ip other_tool" in host.check_output("nft list tables")
        assert "table inet ai_infra_base" in host.check_output("nft list tables")
    finally:
        host.run("nft delete table ip other_tool")


def test_role_refuses_a_broken_rule_and_keeps_the_old_one(host):
    # The role itself, converged again with a rule nft rejects: the run must fail at the
    # validate step and leave both the file and the loaded rules as they were.
    name = host.backend.get_hostname()
    conf_before = host.file("/etc/nftables.conf").content_string
    loaded_before = host.check_output("nft list table inet ai_infra_base")
    run = subprocess.run(
        ["ansible-playbook", "-i", os.environ["MOLECULE_INVENTORY_FILE"], "--limit", name,
         str(pathlib.Path(__file__).with_name("bad_rules.yml"))],
        capture_output=True, text=True, check=False,
        env={**os.environ, "ANSIBLE_NOCOLOR": "1", "ANSIBLE_FORCE_COLOR": "0"},
    )
    assert run.returncode != 0
    # The callback may wrap lines and print the error on either stream.
    assert "failed to validate" in " ".join((run.stdout + run.stderr).split())
    assert host.file("/etc/nftables.conf").content_string == conf_before
    assert host.check_output("nft list table inet ai_infra_base") == loaded_before


HELD = """
import os, socket, sys, time
s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=5)
open(sys.argv[3] + ".open", "w").close()
deadline = time.time() + 120
while not os.path.exists(sys.argv[3] + ".go") and time.time() < deadline:
    time.sleep(0.2)
s.sendall(b"GET / HTTP/1.0\\r\\n\\r\\n")
print(s.recv(64).split(b"\\r\\n")[0].decode())
"""


def refuse_new(name):
    return subprocess.run(
        ["ansible-playbook", "-i", os.environ["MOLECULE_INVENTORY_FILE"], "--limit", name,
         str(pathlib.Path(__file__).with_name("refuse_new.yml"))],
        capture_output=True, text=True, check=False,
        env={**os.environ, "ANSIBLE_NOCOLOR": "1", "ANSIBLE_FORCE_COLOR": "0"},
    )


def test_refuse_new_resets_new_connections_and_leaves_open_ones(host, prober):
    """base's firewall_refuse_new on port 8081 (open to other hosts): a connection the
    prober opened before goes on serving, a new one is refused at once (a reset, not a
    timeout), loopback still connects; a second run changes nothing, and the next load of
    the firewall drops the rule."""
    start_listeners(host)
    name = address = host.backend.get_hostname()  # the prober reaches it by name
    flag = f"/tmp/held-{name}"
    prober.run(f"rm -f {flag}.open {flag}.go {flag}.out")
    prober.run("nohup python3 -c %s %s 8081 %s > %s.out 2>&1 &", HELD, address, flag, flag)
    deadline = time.time() + 30
    while not prober.file(f"{flag}.open").exists:
        assert time.time() < deadline, prober.file(f"{flag}.out").content_string
        time.sleep(0.2)
    try:
        run = refuse_new(name)
        assert run.returncode == 0 and re.search(r"changed=1 ", run.stdout), run.stdout[-3000:]
        assert connect_from(prober, address, 8081) == "refused"
        assert host.run("python3 -c 'import socket; socket.create_connection((\"127.0.0.1\", 8081), 2)'").rc == 0
        prober.run(f"touch {flag}.go")
        deadline = time.time() + 30
        while not prober.file(f"{flag}.out").content_string.strip():
            assert time.time() < deadline
            time.sleep(0.2)
        assert prober.file(f"{flag}.out").content_string.strip() == "HTTP/1.0 200 OK"
        run = refuse_new(name)
        assert run.returncode == 0 and re.search(r"changed=0 ", run.stdout), run.stdout[-3000:]
    finally:
        host.run_expect([0], "systemctl reload nftables")
    assert connect_from(prober, address, 8081) == "open"


def test_rules_survive_reboot(host, prober):
    name = host.backend.get_hostname()
    restart_container(name)
    assert host.service("nftables").is_enabled
    assert host.service("nftables").is_running
    start_listeners(host)
    assert expected_reachability(host, prober) == WANTED
