from __future__ import annotations

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.ai_infra.langgraph_stack.plugins.filter.peer_endpoints import FilterModule

peer_endpoints = FilterModule().filters()["peer_endpoints"]

HOSTVARS = {
    "gpu-1": {"vllm_bind_address": "10.0.0.21"},
    "gpu-2": {"vllm_bind_address": "fd00::22", "vllm_port": "8001"},
    "gpu-3": {},
    "gpu-4": {"vllm_bind_address": "0.0.0.0", "ansible_host": "203.0.113.24"},
    "gpu-5": {"vllm_bind_address": "localhost"},
    "gpu-6": {"vllm_bind_address": "[::]"},
}


def ends(hosts, here="server-1", **kw):
    return peer_endpoints(hosts, HOSTVARS, here, "vllm_bind_address", "vllm_port", 8000, **kw)


def test_private_addresses_and_ipv6_brackets():
    assert ends(["gpu-1", "gpu-2"]) == [
        {"name": "gpu-1", "address": "10.0.0.21", "port": 8000, "hostport": "10.0.0.21:8000", "reachable": True},
        {"name": "gpu-2", "address": "fd00::22", "port": 8001, "hostport": "[fd00::22]:8001", "reachable": True},
    ]


def test_loopback_is_reachable_only_from_its_own_host():
    assert [e["reachable"] for e in ends(["gpu-3", "gpu-5"])] == [False, False]
    assert ends(["gpu-3"], here="gpu-3")[0] == {
        "name": "gpu-3", "address": "127.0.0.1", "port": 8000, "hostport": "127.0.0.1:8000", "reachable": True}


def test_wildcard_binds_use_loopback_here_and_the_inventory_address_elsewhere():
    assert ends(["gpu-4"])[0]["hostport"] == "203.0.113.24:8000"
    assert ends(["gpu-4"], here="gpu-4")[0]["hostport"] == "127.0.0.1:8000"
    assert ends(["gpu-6"])[0]["address"] == "gpu-6"  # no ansible_host: the inventory name


def test_default_address_applies_to_hosts_that_set_none():
    assert ends(["gpu-3"], default_address="10.9.9.9")[0]["hostport"] == "10.9.9.9:8000"


@pytest.mark.parametrize("hosts, message", [
    ("gpu-1", "list of host names"),
    (["nope"], "nope is not a host"),
])
def test_bad_input_is_one_sentence(hosts, message):
    with pytest.raises(AnsibleFilterError, match=message):
        ends(hosts)


@pytest.mark.parametrize("port, message", [("http", "not a port number"), (70000, "outside 1-65535"), (None, "not a port")])
def test_bad_ports(port, message):
    with pytest.raises(AnsibleFilterError, match=message):
        peer_endpoints(["x"], {"x": {"vllm_port": port}}, "y", "vllm_bind_address", "vllm_port", 8000)


FILTERS = FilterModule().filters()


@pytest.mark.parametrize("address, port, expected", [
    ("10.0.0.21", 8000, "10.0.0.21:8000"),
    ("fd00::22", 8001, "[fd00::22]:8001"),
    ("[fd00::22]", 8001, "[fd00::22]:8001"),
    ("gpu-1.example", 443, "gpu-1.example:443"),
])
def test_hostport_brackets_ipv6_once(address, port, expected):
    assert FILTERS["hostport"](address, port) == expected


def test_hostport_refuses_an_empty_address():
    with pytest.raises(AnsibleFilterError, match="address is empty"):
        FILTERS["hostport"]("  ", 80)


@pytest.mark.parametrize("address, expected", [
    ("0.0.0.0", "127.0.0.1:6006"),
    ("::", "127.0.0.1:6006"),
    ("[::]", "127.0.0.1:6006"),
    ("127.0.0.1", "127.0.0.1:6006"),
    ("::1", "[::1]:6006"),
    ("10.213.7.2", "10.213.7.2:6006"),
])
def test_local_hostport_dials_a_wildcard_bind_over_loopback(address, expected):
    assert FILTERS["local_hostport"](address, 6006) == expected


published_endpoints = FilterModule().filters()["published_endpoints"]


def test_published_endpoints_read_what_the_role_published_not_the_hosts_variables():
    hostvars = {
        "obs-1": {"phoenix_port": 9999, "ansible_host": "203.0.113.9",
                  "phoenix_published": {"bind_address": "10.0.0.9", "port": 6006}},
        "obs-2": {"ansible_host": "203.0.113.10", "ansible_local": {"phoenix": {"bind_address": "0.0.0.0", "port": 6007}}},
        "obs-3": {"ansible_local": {"phoenix": {"bind_address": "127.0.0.1", "port": 6006}}},
    }
    one, two, three = published_endpoints(["obs-1", "obs-2", "obs-3"], hostvars, "edge-1", "phoenix")
    assert (one["hostport"], one["reachable"]) == ("10.0.0.9:6006", True)
    # A wildcard bind on another host: dialled at its inventory address.
    assert (two["hostport"], two["reachable"]) == ("203.0.113.10:6007", True)
    assert (three["address"], three["reachable"]) == ("127.0.0.1", False)
    assert published_endpoints(["obs-3"], hostvars, "obs-3", "phoenix")[0]["reachable"] is True


@pytest.mark.parametrize(("hosts", "hostvars", "message"), [
    (["obs-1"], {"obs-1": {}}, "obs-1 has not published its phoenix settings"),
    (["obs-1"], {"obs-1": {"phoenix_published": {"port": 6006}}}, "obs-1: the phoenix settings it published have no bind_address and port"),
    (["obs-1"], {"obs-1": {"phoenix_published": {"bind_address": "10.0.0.9", "port": "web"}}}, "obs-1: port is 'web', not a port number"),
    ("obs-1", {}, "published_endpoints expects a list of host names, got str"),
])
def test_published_endpoints_bad_input_is_one_sentence(hosts, hostvars, message):
    with pytest.raises(AnsibleFilterError, match=message):
        published_endpoints(hosts, hostvars, "edge-1", "phoenix")
