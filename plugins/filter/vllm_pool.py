"""What a pool of vLLM workers serves and holds, from what each worker's vllm role recorded.

The model router balances over the pool and tells the agent servers behind it what to ask
for (the served model) and how hard (the fan-out and max-num-seqs the smallest worker was
sized for). Each worker's value comes from its vllm role in this run (vllm_served_model,
vllm_max_num_seqs_effective, vllm_fanout_effective) or, for a run that does not apply the
role there, from its local fact (ansible_local.vllm); a worker that has neither counts as
not yet known.
"""

# Documented in vllm_pool.yml beside this file.

from __future__ import annotations

from collections.abc import Mapping

from ansible.errors import AnsibleFilterError

# The value each worker publishes in this run, and its name in the local fact.
_RECORDED = {
    "served_model": "vllm_served_model",
    "max_num_seqs": "vllm_max_num_seqs_effective",
    "fanout": "vllm_fanout_effective",
}


def _recorded(name, host_vars):
    local = host_vars.get("ansible_local", {})
    local = local.get("vllm", {}) if isinstance(local, Mapping) else {}
    if not isinstance(local, Mapping):
        local = {}
    values = {}
    for key, published in _RECORDED.items():
        value = host_vars.get(published, local.get(key))
        if key == "served_model":
            values[key] = str(value or "").strip()
            continue
        try:
            number = int(value) if value not in (None, "") else None
        except (TypeError, ValueError):
            raise AnsibleFilterError(f"vllm_pool: {name} recorded {key} {value!r}, which is not a whole number") from None
        if number is not None and number < 1:
            raise AnsibleFilterError(f"vllm_pool: {name} recorded {key} {number}, which is not a positive number")
        values[key] = number
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
