from __future__ import annotations

import ipaddress

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.ai_infra.langgraph_stack.plugins.filter.mesh_addresses import FilterModule

mesh_addresses = FilterModule().filters()["mesh_addresses"]

NETWORK = "10.213.0.0/16"


def test_an_address_per_host_inside_the_network_and_never_its_edges():
    names = [f"gpu-{n}" for n in range(200)]
    addresses = mesh_addresses(names, {name: {} for name in names}, NETWORK)
    assert list(addresses) == names
    assert len(set(addresses.values())) == 200
    for address in addresses.values():
        assert ipaddress.ip_address(address) in ipaddress.ip_network(NETWORK)
        assert address not in ("10.213.0.0", "10.213.255.255")


def test_a_host_keeps_its_address_whatever_else_the_inventory_lists():
    alone = mesh_addresses(["state-1"], {"state-1": {}}, NETWORK)
    crowded = mesh_addresses(["gpu-9", "gpu-1", "state-1"], {"gpu-9": {}, "gpu-1": {}, "state-1": {}}, NETWORK)
    assert crowded["state-1"] == alone["state-1"]


def test_an_address_set_by_hand_wins_and_ipv6_works():
    hostvars = {"a": {"wireguard_address": "10.213.0.10/16"}, "b": {"mesh_ip": "fd42::7"}, "c": {}}
    assert mesh_addresses(["a"], hostvars, NETWORK) == {"a": "10.213.0.10"}
    both = mesh_addresses(["b", "c"], hostvars, "fd42::/64", address_var="mesh_ip")
    assert both["b"] == "fd42::7" and ipaddress.ip_address(both["c"]) in ipaddress.ip_network("fd42::/64")


def test_duplicate_host_names_are_listed_once():
    assert list(mesh_addresses(["a", "a"], {"a": {}}, NETWORK)) == ["a"]


@pytest.mark.parametrize("hostvars, network, message", [
    ({"a": {}}, "10.213.0.1/16", "is not a network such as"),
    ({"a": {}}, "mesh", "is not a network such as"),
    ({"a": {}}, "10.213.0.0/31", "too small"),
    ({"a": {"wireguard_address": "10.9.0.1"}}, NETWORK, "a's wireguard_address 10.9.0.1 is outside the mesh network"),
    ({"a": {"wireguard_address": "ten"}}, NETWORK, "is not an IP address"),
    ({"a": {"wireguard_address": "10.213.255.255"}}, NETWORK, "own or broadcast address"),
])
def test_bad_settings_fail_with_one_sentence(hostvars, network, message):
    with pytest.raises(AnsibleFilterError, match=message):
        mesh_addresses(list(hostvars), hostvars, network)


def test_two_hosts_on_one_address_are_named():
    hostvars = {"a": {"wireguard_address": "10.213.0.5"}, "b": {"wireguard_address": "10.213.0.5"}}
    with pytest.raises(AnsibleFilterError, match="a and b would both have 10.213.0.5; set wireguard_address on one"):
        mesh_addresses(["a", "b"], hostvars, NETWORK)


def test_a_collision_of_hashes_is_named_too():
    # In a /30 there are two usable addresses: three hosts must collide.
    with pytest.raises(AnsibleFilterError, match="would both have"):
        mesh_addresses(["a", "b", "c"], {"a": {}, "b": {}, "c": {}}, "10.0.0.0/30")


def test_unknown_hosts_and_wrong_input():
    with pytest.raises(AnsibleFilterError, match="ghost is not a host of this inventory"):
        mesh_addresses(["ghost"], {}, NETWORK)
    with pytest.raises(AnsibleFilterError, match="expects a list of host names"):
        mesh_addresses("a", {"a": {}}, NETWORK)


mesh_address = FilterModule().filters()["mesh_address"]


def test_one_host_alone_gets_the_same_address_as_in_the_whole_mesh():
    hostvars = {"gpu-1": {}, "gpu-2": {"wireguard_address": "10.213.0.9"}}
    everyone = mesh_addresses(list(hostvars), hostvars, NETWORK)
    assert mesh_address("gpu-1", NETWORK) == everyone["gpu-1"]
    assert mesh_address("gpu-2", NETWORK, "10.213.0.9") == everyone["gpu-2"] == "10.213.0.9"
    with pytest.raises(AnsibleFilterError, match="gpu-2's wireguard_address 10.9.0.9 is outside"):
        mesh_address("gpu-2", NETWORK, "10.9.0.9")
