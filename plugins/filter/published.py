"""What a role on another host published for its clients: its port, its database and user names.

A role that serves other hosts (postgresql, redis) knows its own settings, defaults
included; a client role on another host does not: a role's defaults are not that host's
variables, and an inventory may set the producer's values for the producer's group only.
So the producer publishes them, as a fact of this run (C(<role>_published)) and as a local
fact for later runs that do not apply it (C(ansible_local.<role>), which peer_facts.yml
gathers); clients read them here instead of repeating the producer's defaults.
"""

# Documented in published.yml beside this file.

from __future__ import annotations

from collections.abc import Mapping

from ansible.errors import AnsibleFilterError


def published(host, hostvars, role):
    if not isinstance(role, str) or not role.isidentifier():
        raise AnsibleFilterError(f"published: the role must be a role's short name, got {role!r}")
    if not isinstance(host, str) or not host:
        raise AnsibleFilterError(f"published: the input must be an inventory host name, got {host!r}")
    if host not in hostvars:
        raise AnsibleFilterError(f"published: {host} is not a host of this inventory")
    host_vars = hostvars[host]
    record = host_vars.get(f"{role}_published")
    if not isinstance(record, Mapping):
        local = host_vars.get("ansible_local")
        record = local.get(role) if isinstance(local, Mapping) else None
    if not isinstance(record, Mapping) or not record:
        raise AnsibleFilterError(
            f"{host} has not published its {role} settings (no {role}_published in this run, no local fact "
            f"ansible_local.{role}): apply the {role} role to {host} first (site.yml does, before the roles that use it)")
    return dict(record)


class FilterModule:
    def filters(self):
        return {"published": published}
