"""What a pool of vLLM workers serves and holds, from what each worker's vllm role published.

The model router balances over the pool and tells the agent servers behind it what to ask
for (the served model) and how hard (the fan-out and max-num-seqs the smallest worker was
sized for). Each worker's values are the record its vllm role published once the model
served them: in this run (vllm_published) or, for a run that does not apply the role
there, its local fact (ansible_local.vllm); a worker that has neither counts as not yet
known.
"""

# Documented in vllm_pool.yml beside this file.

from __future__ import annotations

from ansible.errors import AnsibleFilterError

from ansible_collections.ai_infra.langgraph_stack.plugins.filter.published import DEFAULT_MODEL_POOL, published_count, published_record


def _recorded(name, host_vars):
    record = published_record(host_vars, "vllm")
    values = {"served_model": str(record.get("served_model") or "").strip(),
              "pool": str(record.get("pool") or DEFAULT_MODEL_POOL)}
    for key in ("max_num_seqs", "fanout"):
        values[key] = published_count(record.get(key), f"vllm_pool: {name} recorded {key}")
    try:
        values["hourly_usd"] = float(record.get("hourly_usd") or 0)
    except (TypeError, ValueError):
        raise AnsibleFilterError(f"vllm_pool: {name} recorded hourly_usd {record.get('hourly_usd')!r}, which is not a number") from None
    return values


def vllm_pool(hosts, hostvars):
    if isinstance(hosts, (str, bytes)) or not all(isinstance(h, str) for h in hosts or []):
        raise AnsibleFilterError("vllm_pool: the input must be a list of inventory host names")
    workers = {}
    for name in hosts or []:
        if name not in hostvars:
            raise AnsibleFilterError(f"vllm_pool: {name} is not a host of this inventory")
        workers[name] = _recorded(name, hostvars[name])
    known = [w for w in workers.values() if w["served_model"]]
    fanouts = [w["fanout"] for w in known if w["fanout"] is not None]
    seqs = [w["max_num_seqs"] for w in known if w["max_num_seqs"] is not None]
    pools = {}
    for name, worker in workers.items():
        pools.setdefault(worker["pool"], []).append(name)
    return {
        "workers": workers,
        # Every worker by its pool, known or not yet: a pool's address exists once it has one.
        "pools": {pool: sorted(names) for pool, names in sorted(pools.items())},
        "models": {name: w["served_model"] for name, w in workers.items()},
        "served_models": sorted({w["served_model"] for w in known}),
        # The pool holds what its smallest worker holds: any call may land there.
        "fanout": min(fanouts) if fanouts else None,
        "max_num_seqs": min(seqs) if seqs else None,
    }


def router_pools(upstreams, pool, url):
    """What a model router at `url` gives each model pool: its address (url/pool/<name>), its
    workers' addresses, and each worker by the address the router dials (the one an answer's
    X-Model-Upstream names) with its inventory name, pool and hourly price."""
    if not isinstance(upstreams, list) or not all(isinstance(u, dict) and "name" in u and "hostport" in u for u in upstreams):
        raise AnsibleFilterError("router_pools: the input must be the router's upstreams (peer_endpoints: name and hostport each)")
    if not isinstance(pool, dict) or "pools" not in pool or "workers" not in pool:
        raise AnsibleFilterError("router_pools: the pool must be what vllm_pool returns")
    by_name = {u["name"]: u["hostport"] for u in upstreams}
    workers = {}
    for name, hostport in by_name.items():
        worker = pool["workers"].get(name) or {}
        workers[hostport] = {"name": name, "pool": worker.get("pool", DEFAULT_MODEL_POOL), "hourly_usd": worker.get("hourly_usd", 0.0)}
    return {
        "urls": {name: f"{url.rstrip('/')}/pool/{name}" for name in pool["pools"]},
        "upstreams": {name: [by_name[n] for n in names if n in by_name] for name, names in pool["pools"].items()},
        "workers": workers,
    }


class FilterModule:
    def filters(self):
        return {"vllm_pool": vllm_pool, "router_pools": router_pools}
