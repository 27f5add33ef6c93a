from __future__ import annotations

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.ai_infra.langgraph_stack.plugins.filter.spheron_pools import FilterModule

spheron_pools = FilterModule().filters()["spheron_pools"]

POOLS = {
    "ondemand": {"count": 1, "gpu_type": "H100-PCIe", "instance_type": "dedicated"},
    "spot": {"count": 2, "gpu_type": "H100-PCIe", "instance_type": "SPOT", "region": "FIN-01"},
    "spare": {"count": 0, "gpu_type": "L40S"},
}


def test_each_pool_asks_for_its_count_of_named_workers():
    assert spheron_pools(POOLS, prefix="prod") == [
        {"name": "prod-gpu-ondemand-1", "pool": "ondemand", "gpu_type": "H100-PCIe", "gpu_count": 1,
         "instance_type": "DEDICATED", "region": "", "provider": ""},
        {"name": "prod-gpu-spot-1", "pool": "spot", "gpu_type": "H100-PCIe", "gpu_count": 1,
         "instance_type": "SPOT", "region": "FIN-01", "provider": ""},
        {"name": "prod-gpu-spot-2", "pool": "spot", "gpu_type": "H100-PCIe", "gpu_count": 1,
         "instance_type": "SPOT", "region": "FIN-01", "provider": ""},
    ]


def test_unwanted_are_only_the_collections_own_instances_no_pool_wants():
    live = ["prod-gpu-spot-1", "prod-gpu-spot-2", "prod-gpu-spot-3",  # spot made smaller
            "prod-gpu-old-1",                                          # a pool removed
            "prod-gpu-ondemand-1",
            "prod-state-1", "prod-gpu-1", "staging-gpu-spot-9",         # not launched by it, or another fleet's
            "lab all-in-one"]
    assert spheron_pools(live, "unwanted", pools=POOLS, prefix="prod") == ["prod-gpu-old-1", "prod-gpu-spot-3"]
    assert spheron_pools(live, "unwanted", pools={}, prefix="prod") == [
        "prod-gpu-old-1", "prod-gpu-ondemand-1", "prod-gpu-spot-1", "prod-gpu-spot-2", "prod-gpu-spot-3"]


@pytest.mark.parametrize("pools, message", [
    ({"spot-1": {"count": 1, "gpu_type": "L40S"}}, "spheron_pools: pool name 'spot-1' must be lower-case letters and digits, "
                                                   "and not state, edge, obs, all, gpu"),
    ({"edge": {"count": 1, "gpu_type": "L40S"}}, "spheron_pools: pool name 'edge' must be lower-case letters and digits, "
                                                 "and not state, edge, obs, all, gpu"),
    ({"spot": {"count": 1}}, "spheron_pools: pool spot has no gpu_type"),
    ({"spot": {"count": "two", "gpu_type": "L40S"}}, "spheron_pools: pool spot's count and gpu_count must be whole numbers"),
    ({"spot": {"count": -1, "gpu_type": "L40S"}}, "spheron_pools: pool spot needs count >= 0 and gpu_count >= 1"),
    ({"spot": {"count": 1, "gpu_type": "L40S", "instance_type": "preemptible"}},
     "spheron_pools: pool spot's instance_type must be SPOT or DEDICATED, got 'PREEMPTIBLE'"),
    ({"spot": {"count": 1, "gpu_type": "L40S", "size": 3}}, "spheron_pools: pool spot has unknown settings size"),
    ({"spot": 2}, "spheron_pools: pool spot must be a dict of settings"),
    ([], "spheron_pools: the pools must be a dict of pool name to settings, got list"),
])
def test_bad_pools_are_one_sentence(pools, message):
    with pytest.raises(AnsibleFilterError) as error:
        spheron_pools(pools, prefix="prod")
    assert str(error.value) == message


@pytest.mark.parametrize("call, message", [
    (lambda: spheron_pools(POOLS, prefix="Prod-1"), "spheron_pools: the prefix must be one lower-case word that is not "
                                                    "state, edge, obs, all, gpu, got 'Prod-1'"),
    (lambda: spheron_pools(POOLS, prefix=None), "spheron_pools: the prefix must be one lower-case word that is not "
                                                "state, edge, obs, all, gpu, got None"),
    (lambda: spheron_pools("prod-gpu-spot-1", "unwanted", pools=POOLS, prefix="prod"),
     "spheron_pools: the instance names must be a list, got str"),
    (lambda: spheron_pools(POOLS, "launch", prefix="prod"), "spheron_pools: action must be wanted or unwanted, not 'launch'"),
])
def test_bad_calls_are_one_sentence(call, message):
    with pytest.raises(AnsibleFilterError) as error:
        call()
    assert str(error.value) == message
