"""Where one host reaches a service that other hosts of the inventory run.

Several roles call services on other hosts (the model router the vLLM workers, the edge the
agent servers): each decides the same things, so they are decided here once. A service
bound to loopback is reachable only from its own host; one bound to every address
(0.0.0.0, ::) is reached on its own host over loopback and from other hosts at the
inventory's address for it; IPv6 addresses are bracketed in host:port.
"""

from __future__ import annotations

import ipaddress

from ansible.errors import AnsibleFilterError

DOCUMENTATION = r"""
name: peer_endpoints
short_description: Endpoints of a service on a group of hosts, as seen from one host
description:
  - For each host, the address and port of a service bound on it, the C(host:port) to dial,
    and whether the asking host can reach it (a loopback bind on another host cannot be).
options:
  _input:
    description: Inventory host names that run the service.
    type: list
    elements: str
    required: true
  hostvars:
    description: The C(hostvars) of the play.
    type: dict
    required: true
  here:
    description: The asking host (C(inventory_hostname)).
    type: str
    required: true
  address_var:
    description: The service's bind-address variable (for example C(vllm_bind_address)).
    type: str
    required: true
  port_var:
    description: The service's port variable (for example C(vllm_port)).
    type: str
    required: true
  default_port:
    description: The port when a host does not set O(port_var) (the role's default).
    type: int
    required: true
  default_address:
    description: The address when a host does not set O(address_var) (the role's default).
    type: str
    default: 127.0.0.1
"""

EXAMPLES = r"""
upstreams: >-
  {{ groups['gpu_workers'] | ai_infra.langgraph_stack.peer_endpoints(hostvars, inventory_hostname,
     'vllm_bind_address', 'vllm_port', 8000) }}
"""

RETURN = r"""
_value:
  description: One entry per host, in the input's order.
  type: list
  elements: dict
  contains:
    name: {description: The inventory host., type: str}
    address: {description: The address to dial (no brackets)., type: str}
    port: {description: The port., type: int}
    hostport: {description: C(address:port), IPv6 in brackets., type: str}
    reachable: {description: False for a loopback bind on another host., type: bool}
"""

LOOPBACK_NAMES = {"localhost", "localhost.localdomain", "ip6-localhost"}
WILDCARDS = {"", "0.0.0.0", "::", "*"}


def is_loopback(address: str) -> bool:
    if address.lower() in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False


def hostport(address: str, port: int) -> str:
    return f"[{address}]:{port}" if ":" in address else f"{address}:{port}"


def endpoint(name: str, variables, here: str, address_var: str, port_var: str,
             default_port: int, default_address: str) -> dict:
    address = str(variables.get(address_var, default_address) or "").strip().strip("[]")
    raw_port = variables.get(port_var, default_port)
    try:
        port = int(raw_port)
    except (TypeError, ValueError):
        raise AnsibleFilterError(f"{name}: {port_var} is {raw_port!r}, not a port number") from None
    if not 0 < port < 65536:
        raise AnsibleFilterError(f"{name}: {port_var} is {port}, outside 1-65535")
    local = name == here
    if address in WILDCARDS:
        address = "127.0.0.1" if local else str(variables.get("ansible_host", name))
    return {"name": name, "address": address, "port": port, "hostport": hostport(address, port),
            "reachable": local or not is_loopback(address)}


def peer_endpoints(hosts, hostvars, here, address_var, port_var, default_port, default_address="127.0.0.1"):
    if isinstance(hosts, str) or not hasattr(hosts, "__iter__"):
        raise AnsibleFilterError(f"peer_endpoints expects a list of host names, got {type(hosts).__name__}")
    result = []
    for name in hosts:
        if name not in hostvars:
            raise AnsibleFilterError(f"peer_endpoints: {name} is not a host of this inventory")
        result.append(endpoint(name, hostvars[name], here, address_var, port_var, default_port, default_address))
    return result


class FilterModule:
    def filters(self):
        return {"peer_endpoints": peer_endpoints}
