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
from urllib.parse import urlsplit

from ansible.errors import AnsibleFilterError


def published_record(host_vars, role):
    """The record C(role) published on a host: this run's, else its local fact; {} when neither."""
    record = host_vars.get(f"{role}_published")
    if not isinstance(record, Mapping) or not record:
        local = host_vars.get("ansible_local")
        record = local.get(role) if isinstance(local, Mapping) else None
    return dict(record) if isinstance(record, Mapping) and record else {}


def _host_vars(host, hostvars, filter_name):
    if not isinstance(host, str) or not host:
        raise AnsibleFilterError(f"{filter_name}: the input must be an inventory host name, got {host!r}")
    if host not in hostvars:
        raise AnsibleFilterError(f"{filter_name}: {host} is not a host of this inventory")
    return hostvars[host]


def published(host, hostvars, role):
    if not isinstance(role, str) or not role.isidentifier():
        raise AnsibleFilterError(f"published: the role must be a role's short name, got {role!r}")
    record = published_record(_host_vars(host, hostvars, "published"), role)
    if not record:
        raise AnsibleFilterError(
            f"{host} has not published its {role} settings (no {role}_published in this run, no local fact "
            f"ansible_local.{role}): apply the {role} role to {host} first (site.yml does, before the roles that use it)")
    return record


# The model pool of a worker that names none (its record published before pools existed,
# or vLLM itself on a single-host stack); the vllm role's default for other machines too.
DEFAULT_MODEL_POOL = "ondemand"


# Where an agent server's model calls go, the first that published on its host: the model
# router (it balances over every GPU worker), else vLLM itself (a single-host stack).
MODEL_SOURCES = ("model_router", "vllm")


def published_count(value, what):
    """A published size (fan-out, max-num-seqs) as a positive int, None when not published;
    C(what) begins the one-sentence error (who published which key)."""
    if value in (None, ""):
        return None
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise AnsibleFilterError(f"{what} {value!r}, which is not a whole number") from None
    if number < 1:
        raise AnsibleFilterError(f"{what} {number}, which is not a positive number")
    return number


def model_source(host, hostvars):
    host_vars = _host_vars(host, hostvars, "model_source")
    for role in MODEL_SOURCES:
        record = published_record(host_vars, role)
        if record:
            if role == "vllm" and record.get("url"):
                # vLLM itself, one worker in one pool: this host.
                pool = record.get("pool") or DEFAULT_MODEL_POOL
                record = dict(record, pools={pool: record["url"]}, workers={
                    urlsplit(str(record["url"])).netloc: {"name": host, "pool": pool, "hourly_usd": record.get("hourly_usd") or 0}})
            return {
                "role": role,
                "url": str(record.get("url") or ""),
                "served_model": str(record.get("served_model") or ""),
                "fanout": published_count(record.get("fanout"), f"{host}: {role} published fanout"),
                "max_num_seqs": published_count(record.get("max_num_seqs"), f"{host}: {role} published max_num_seqs"),
                # The model pools (name to URL) and their workers (host:port to name, pool,
                # hourly price): a router's, or vLLM's own on a single-host stack.
                "pools": _mapping(record.get("pools"), f"{host}: {role} published pools"),
                "workers": _mapping(record.get("workers"), f"{host}: {role} published workers"),
            }
    return {"role": "", "url": "", "served_model": "", "fanout": None, "max_num_seqs": None, "pools": {}, "workers": {}}


def _mapping(value, what):
    if value in (None, ""):
        return {}
    if not isinstance(value, Mapping):
        raise AnsibleFilterError(f"{what} {value!r}, which is not a dict")
    return dict(value)


class FilterModule:
    def filters(self):
        return {"published": published, "model_source": model_source}
