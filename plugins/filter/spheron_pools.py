"""The GPU workers each pool should have on Spheron, and the ones the collection launched
that no pool wants any more.

A pool is a named count of workers of one kind (GPU type and count, SPOT or DEDICATED,
optionally a region and a provider). The collection names the workers it launches
`<prefix>-gpu-<pool>-<n>`: the word `gpu` puts them in gpu_workers (the inventory plugin's
name_groups), and the pattern is how it tells its own machines from the others, which it
never touches.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from ansible.errors import AnsibleFilterError

from ansible_collections.ai_infra.langgraph_stack.plugins.module_utils.spheron_api import POOL_WORKER_NAME

DOCUMENTATION = r"""
name: spheron_pools
short_description: The workers Spheron pools should have, or those the collection launched that no pool wants
description:
  - With O(action=wanted), one entry per worker the pools ask for, named C(<prefix>-gpu-<pool>-<n>), with the
    launch settings of its pool (the options of the spheron_instance module).
  - With O(action=unwanted), the names among O(_input) that the collection launched (they match
    C(<prefix>-gpu-<pool>-<n>)) and no pool wants now (a pool made smaller or removed). Other names are never in it.
  - A pool is refused with one sentence when its name is not lower-case letters and digits, is a word that
    puts a host in another group (C(state), C(edge), C(obs), C(all), C(gpu)), or its settings are wrong.
options:
  _input:
    description: For wanted, the pools (name to settings); for unwanted, the names of the account's live instances.
    type: raw
    required: true
  action:
    description: C(wanted) or C(unwanted).
    type: str
    choices: [wanted, unwanted]
    default: wanted
  pools:
    description: The pools, for action unwanted.
    type: dict
    default: {}
  prefix:
    description: The first word of every name the collection launches (the fleet's name, such as C(prod)).
    type: str
    required: true
"""

EXAMPLES = r"""
wanted: "{{ spheron_pools | ai_infra.langgraph_stack.spheron_pools(prefix='prod') }}"
# [{'name': 'prod-gpu-spot-1', 'pool': 'spot', 'gpu_type': 'H100-PCIe', 'gpu_count': 1, 'instance_type': 'SPOT', ...}, ...]
unwanted: "{{ instance_names | ai_infra.langgraph_stack.spheron_pools('unwanted', pools=spheron_pools, prefix='prod') }}"
"""

RETURN = r"""
_value:
  description: For wanted, a list of dicts (name, pool, gpu_type, gpu_count, instance_type, region, provider); for unwanted, names.
  type: list
"""

POOL_NAME = re.compile(r"^[a-z][a-z0-9]*$")
# Words that put an instance in another of the collection's groups (the inventory plugin's
# name_groups defaults, and `all`).
RESERVED = ("state", "edge", "obs", "all", "gpu")
INSTANCE_TYPES = ("SPOT", "DEDICATED")


def check_prefix(prefix) -> str:
    if not isinstance(prefix, str) or not re.match(r"^[a-z][a-z0-9]*$", prefix or "") or prefix in RESERVED:
        raise AnsibleFilterError(f"spheron_pools: the prefix must be one lower-case word that is not {', '.join(RESERVED)}, "
                                 f"got {prefix!r}")
    return prefix


def check_pools(pools) -> dict:
    if not isinstance(pools, Mapping):
        raise AnsibleFilterError(f"spheron_pools: the pools must be a dict of pool name to settings, got {type(pools).__name__}")
    checked = {}
    for name, settings in pools.items():
        if not isinstance(name, str) or not POOL_NAME.match(name) or name in RESERVED:
            raise AnsibleFilterError(f"spheron_pools: pool name {name!r} must be lower-case letters and digits, "
                                     f"and not {', '.join(RESERVED)}")
        if not isinstance(settings, Mapping):
            raise AnsibleFilterError(f"spheron_pools: pool {name} must be a dict of settings")
        unknown = sorted(set(settings) - {"count", "gpu_type", "gpu_count", "instance_type", "region", "provider"})
        if unknown:
            raise AnsibleFilterError(f"spheron_pools: pool {name} has unknown settings {', '.join(unknown)}")
        try:
            count, gpu_count = int(settings.get("count", 0)), int(settings.get("gpu_count", 1))
        except (TypeError, ValueError):
            raise AnsibleFilterError(f"spheron_pools: pool {name}'s count and gpu_count must be whole numbers") from None
        if count < 0 or gpu_count < 1:
            raise AnsibleFilterError(f"spheron_pools: pool {name} needs count >= 0 and gpu_count >= 1")
        if not settings.get("gpu_type"):
            raise AnsibleFilterError(f"spheron_pools: pool {name} has no gpu_type")
        instance_type = str(settings.get("instance_type", "DEDICATED")).upper()
        if instance_type not in INSTANCE_TYPES:
            raise AnsibleFilterError(f"spheron_pools: pool {name}'s instance_type must be SPOT or DEDICATED, got {instance_type!r}")
        checked[name] = {"count": count, "gpu_type": str(settings["gpu_type"]), "gpu_count": gpu_count,
                         "instance_type": instance_type, "region": str(settings.get("region") or ""),
                         "provider": str(settings.get("provider") or "")}
    return checked


def wanted(pools, prefix) -> list[dict]:
    found = []
    for pool, settings in sorted(check_pools(pools).items()):
        for number in range(1, settings["count"] + 1):
            entry = {"name": f"{check_prefix(prefix)}-gpu-{pool}-{number}", "pool": pool}
            entry.update((key, value) for key, value in settings.items() if key != "count")
            found.append(entry)
    return found


def unwanted(names, pools, prefix) -> list[str]:
    if not isinstance(names, (list, tuple)):
        raise AnsibleFilterError(f"spheron_pools: the instance names must be a list, got {type(names).__name__}")
    ours = f"{check_prefix(prefix)}-gpu-"
    keep = {entry["name"] for entry in wanted(pools, prefix)}
    return sorted(name for name in names
                  if isinstance(name, str) and POOL_WORKER_NAME.match(name) and name.startswith(ours) and name not in keep)


def spheron_pools(data, action="wanted", pools=None, prefix=None):
    if action == "wanted":
        return wanted(data, prefix)
    if action == "unwanted":
        return unwanted(data, pools or {}, prefix)
    raise AnsibleFilterError(f"spheron_pools: action must be wanted or unwanted, not {action!r}")


class FilterModule:
    def filters(self):
        return {"spheron_pools": spheron_pools}
