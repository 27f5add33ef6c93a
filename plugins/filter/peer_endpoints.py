"""Where one host reaches a service that other hosts of the inventory run.

Several roles call services on other hosts (the model router the vLLM workers, the edge the
agent servers): each decides the same things, so they are decided here once. A service
bound to loopback is reachable only from its own host; one bound to every address
(0.0.0.0, ::) is reached on its own host over loopback and from other hosts at the
inventory's address for it; IPv6 addresses are bracketed in host:port.
"""

# Each filter is documented in the .yml file of its name beside this one (ansible-doc reads
# those for a file that holds several filters).

from __future__ import annotations

import ipaddress

from ansible.errors import AnsibleFilterError

from ansible_collections.ai_infra.langgraph_stack.plugins.filter.published import published

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
    """C(address:port) as a URL or a dial string writes it: an IPv6 address in brackets."""
    address = str(address).strip().strip("[]")
    if not address:
        raise AnsibleFilterError("hostport: the address is empty")
    return f"[{address}]:{port}" if ":" in address else f"{address}:{port}"


def local_hostport(address: str, port: int) -> str:
    """Where a client on the service's own host dials it: a wildcard bind over loopback."""
    address = str(address).strip().strip("[]")
    return hostport("127.0.0.1" if address in WILDCARDS else address, port)


def port_number(value, what: str) -> int:
    """The port as an int, or one sentence naming what holds the bad value."""
    try:
        port = int(value)
    except (TypeError, ValueError):
        raise AnsibleFilterError(f"{what} is {value!r}, not a port number") from None
    if not 0 < port < 65536:
        raise AnsibleFilterError(f"{what} is {port}, outside 1-65535")
    return port


def endpoint(name: str, variables, here: str, address_var: str, port_var: str,
             default_port: int, default_address: str) -> dict:
    address = str(variables.get(address_var, default_address) or "").strip().strip("[]")
    port = port_number(variables.get(port_var, default_port), f"{name}: {port_var}")
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


def published_endpoints(hosts, hostvars, here, role):
    """peer_endpoints from the address and port each host's role published (filter
    `published`) instead of its variables and a repeated default."""
    if isinstance(hosts, str) or not hasattr(hosts, "__iter__"):
        raise AnsibleFilterError(f"published_endpoints expects a list of host names, got {type(hosts).__name__}")
    result = []
    for name in hosts:
        record = published(name, hostvars, role)
        if "bind_address" not in record or "port" not in record:
            raise AnsibleFilterError(f"{name}: the {role} settings it published have no bind_address and port")
        variables = {"bind_address": record["bind_address"], "port": record["port"],
                     "ansible_host": hostvars[name].get("ansible_host", name)}
        result.append(endpoint(name, variables, here, "bind_address", "port", None, ""))
    return result


class FilterModule:
    def filters(self):
        return {"peer_endpoints": peer_endpoints, "published_endpoints": published_endpoints,
                "hostport": hostport, "local_hostport": local_hostport}
