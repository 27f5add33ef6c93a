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

from ansible_collections.ai_infra.langgraph_stack.plugins.filter.published import published_count, published_record


def _recorded(name, host_vars):
    record = published_record(host_vars, "vllm")
    values = {"served_model": str(record.get("served_model") or "").strip()}
    for key in ("max_num_seqs", "fanout"):
        values[key] = published_count(record.get(key), f"vllm_pool: {name} recorded {key}")
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
    return {
        "workers": workers,
        "models": {name: w["served_model"] for name, w in workers.items()},
        "served_models": sorted({w["served_model"] for w in known}),
        # The pool holds what its smallest worker holds: any call may land there.
        "fanout": min(fanouts) if fanouts else None,
        "max_num_seqs": min(seqs) if seqs else None,
    }


class FilterModule:
    def filters(self):
        return {"vllm_pool": vllm_pool}
