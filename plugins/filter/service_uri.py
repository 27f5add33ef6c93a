"""Connection URIs for the state services, and the address a client host uses for them.

The agent servers (PostgreSQL, Redis), Phoenix (PostgreSQL) and the edge's gate (Redis)
each build a URI with credentials for a service on the state host: the same escaping
(every reserved character of a user or password, "/" included) and the same choice of
address (loopback on the state host itself, its private address from anywhere else) are
decided here once.
"""

# Each filter is documented in the .yml file of its name beside this one (ansible-doc reads
# those for a file that holds several filters).

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import quote, urlencode

from ansible.errors import AnsibleFilterError

from ansible_collections.ai_infra.langgraph_stack.plugins.filter.peer_endpoints import hostport, port_number


def service_uri(address, scheme, user, password, port, path="", query=None):
    if not str(scheme or "").strip():
        raise AnsibleFilterError("service_uri: the scheme is empty")
    if not str(address or "").strip():
        raise AnsibleFilterError(f"service_uri: the {scheme} address is empty (the state host sets no private address?)")
    port = port_number(port, f"service_uri: the {scheme} port")
    if query is None:
        query = {}
    if not isinstance(query, Mapping):
        raise AnsibleFilterError(f"service_uri: query must be a dict, got {type(query).__name__}")
    credentials = f"{quote(str(user), safe='')}:{quote(str(password), safe='')}@"
    uri = f"{scheme}://{credentials}{hostport(str(address), port)}/{path}"
    if query:
        uri += "?" + urlencode({str(k): str(v) for k, v in query.items()}, safe="/", quote_via=quote)
    return uri


def peer_address(service_host, here, hostvars, address_var):
    """Loopback on the service's own host; elsewhere the host's address_var ('' if unset)."""
    if service_host == here:
        return "127.0.0.1"
    if service_host not in hostvars:
        raise AnsibleFilterError(f"peer_address: {service_host} is not a host of this inventory")
    return str(hostvars[service_host].get(address_var, "") or "").strip()


class FilterModule:
    def filters(self):
        return {"service_uri": service_uri, "peer_address": peer_address}
