"""Each host's address on the WireGuard mesh, decided once for every role and play.

The wireguard role gives each host this address; the roles that bind services to the mesh,
and the inventories that point clients at it, read the same answer. An address comes from
the host's own setting when it has one, otherwise from a hash of its inventory name: it does
not depend on which other hosts exist or in what order they are listed, so adding, removing
or replacing a machine never moves another host's address. Two hosts that land on the same
address are an error that names both (set an address on one of them).
"""

from __future__ import annotations

import hashlib
import ipaddress

from ansible.errors import AnsibleFilterError

DOCUMENTATION = r"""
name: mesh_addresses
short_description: Every mesh host's WireGuard address
description:
  - Maps each host to its address inside O(network). A host's own O(address_var) wins;
    otherwise the address is chosen from a hash of the host's inventory name, so it stays the
    same whatever other hosts the inventory lists.
  - Fails with one sentence for a network that is not a network, an address outside it,
    the network's own or broadcast address, and two hosts on one address.
options:
  _input:
    description: Inventory host names of the mesh.
    type: list
    elements: str
    required: true
  hostvars:
    description: The C(hostvars) of the play.
    type: dict
    required: true
  network:
    description: The mesh's range, for example C(10.213.0.0/16).
    type: str
    required: true
  address_var:
    description: The per-host variable that sets an address by hand.
    type: str
    default: wireguard_address
"""

EXAMPLES = r"""
# Every host's address, checked for two hosts on one address (the wireguard role does this).
mesh: "{{ groups['all'] | ai_infra.langgraph_stack.mesh_addresses(hostvars, '10.213.0.0/16') }}"
"""

# The second filter of this file, mesh_address, has no documentation entry of its own
# (one per file is what ansible-doc reads); it is described in its docstring.
RETURN = r"""
_value:
  description: Host name to address (no prefix length).
  type: dict
"""


def parse_network(network) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    try:
        parsed = ipaddress.ip_network(str(network).strip(), strict=True)
    except ValueError as error:
        raise AnsibleFilterError(f"mesh_addresses: {network!r} is not a network such as 10.213.0.0/16 ({error})") from None
    if parsed.num_addresses < 4:
        raise AnsibleFilterError(f"mesh_addresses: {parsed} is too small for a mesh (at least a /30 or /126)")
    return parsed


def hashed_address(name: str, network) -> str:
    # Skip the network's first and last addresses (network and broadcast for IPv4).
    usable = network.num_addresses - 2
    offset = int.from_bytes(hashlib.sha256(name.encode()).digest()[:16], "big") % usable + 1
    return str(network.network_address + offset)


def own_address(name: str, raw, network, address_var: str) -> str:
    try:
        address = ipaddress.ip_address(str(raw).strip().split("/", maxsplit=1)[0])
    except ValueError:
        raise AnsibleFilterError(f"mesh_addresses: {name}'s {address_var} {raw!r} is not an IP address") from None
    if address not in network:
        raise AnsibleFilterError(f"mesh_addresses: {name}'s {address_var} {address} is outside the mesh network {network}")
    if address in (network.network_address, network.broadcast_address):
        raise AnsibleFilterError(
            f"mesh_addresses: {name}'s {address_var} {address} is the mesh network's own or broadcast address")
    return str(address)


def mesh_addresses(hosts, hostvars, network, address_var="wireguard_address"):
    if isinstance(hosts, str) or not hasattr(hosts, "__iter__"):
        raise AnsibleFilterError(f"mesh_addresses expects a list of host names, got {type(hosts).__name__}")
    parsed = parse_network(network)
    result: dict[str, str] = {}
    owner: dict[str, str] = {}
    for name in dict.fromkeys(hosts):
        if name not in hostvars:
            raise AnsibleFilterError(f"mesh_addresses: {name} is not a host of this inventory")
        raw = hostvars[name].get(address_var) or ""
        address = own_address(name, raw, parsed, address_var) if str(raw).strip() else hashed_address(name, parsed)
        if address in owner:
            raise AnsibleFilterError(
                f"mesh_addresses: {owner[address]} and {name} would both have {address}; "
                f"set {address_var} on one of them")
        owner[address] = name
        result[name] = address
    return result


def mesh_address(name, network, address=""):
    """One host's address, by the same rule, from its own variables only: usable in an
    inventory variable that other hosts read through hostvars (where `hostvars` itself is
    not defined)."""
    parsed = parse_network(network)
    if str(address or "").strip():
        return own_address(str(name), address, parsed, "wireguard_address")
    return hashed_address(str(name), parsed)


class FilterModule:
    def filters(self):
        return {"mesh_addresses": mesh_addresses, "mesh_address": mesh_address}
