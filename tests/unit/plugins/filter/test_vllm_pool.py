from __future__ import annotations

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.ai_infra.langgraph_stack.plugins.filter.vllm_pool import FilterModule

vllm_pool = FilterModule().filters()["vllm_pool"]


def test_this_runs_values_win_over_the_local_fact_and_the_smallest_worker_sizes_the_pool():
    hostvars = {
        # Converged in this run: its role published the values (as strings, as set_fact does).
        "gpu-1": {"vllm_published": {"served_model": "qwen", "max_num_seqs": "12", "fanout": "10", "url": "u"},
                  "ansible_local": {"vllm": {"served_model": "old", "max_num_seqs": 4, "fanout": 3}}},
        # Not in this run: its local fact from an earlier one.
        "gpu-2": {"ansible_local": {"vllm": {"served_model": "qwen", "max_num_seqs": 8, "fanout": 6}}},
    }
    pool = vllm_pool(["gpu-1", "gpu-2"], hostvars)
    assert pool["workers"]["gpu-1"] == {"served_model": "qwen", "max_num_seqs": 12, "fanout": 10, "pool": "ondemand", "hourly_usd": 0.0}
    assert pool["models"] == {"gpu-1": "qwen", "gpu-2": "qwen"}
    assert pool["served_models"] == ["qwen"]
    assert (pool["fanout"], pool["max_num_seqs"]) == (6, 8)


def test_a_worker_not_converged_yet_is_left_out_of_the_figures():
    hostvars = {"gpu-1": {"ansible_local": {"vllm": {"served_model": "qwen", "max_num_seqs": 8, "fanout": 6}}},
                "gpu-2": {"ansible_local": {}}, "gpu-3": {}}
    pool = vllm_pool(["gpu-1", "gpu-2", "gpu-3"], hostvars)
    assert pool["models"] == {"gpu-1": "qwen", "gpu-2": "", "gpu-3": ""}
    assert pool["workers"]["gpu-3"] == {"served_model": "", "max_num_seqs": None, "fanout": None, "pool": "ondemand", "hourly_usd": 0.0}
    assert (pool["served_models"], pool["fanout"], pool["max_num_seqs"]) == (["qwen"], 6, 8)


def test_a_fact_from_before_the_fan_out_was_recorded_still_gives_the_model():
    pool = vllm_pool(["gpu-1"], {"gpu-1": {"ansible_local": {"vllm": {"served_model": "qwen", "max_num_seqs": 8}}}})
    assert (pool["served_models"], pool["fanout"], pool["max_num_seqs"]) == (["qwen"], None, 8)


def test_a_worker_whose_role_stopped_before_publishing_is_not_known_yet():
    """The role's own settings (an inventory's vllm_served_model_name) are not a published record."""
    hostvars = {"gpu-1": {"vllm_served_model_name": "qwen", "vllm_fanout": 10}}
    assert vllm_pool(["gpu-1"], hostvars)["served_models"] == []


def test_no_workers_known():
    assert vllm_pool([], {}) == {"workers": {}, "pools": {}, "models": {}, "served_models": [], "fanout": None, "max_num_seqs": None}


def test_workers_serving_different_models_are_all_listed():
    hostvars = {"a": {"vllm_published": {"served_model": "qwen"}}, "b": {"vllm_published": {"served_model": "llama"}}}
    assert vllm_pool(["a", "b"], hostvars)["served_models"] == ["llama", "qwen"]


@pytest.mark.parametrize("hosts, hostvars, message", [
    ("gpu-1", {}, "must be a list of inventory host names"),
    ([1], {}, "must be a list of inventory host names"),
    (["gpu-9"], {}, "gpu-9 is not a host of this inventory"),
    (["a"], {"a": {"vllm_published": {"served_model": "m", "fanout": "ten"}}}, "a recorded fanout 'ten', which is not a whole number"),
    (["a"], {"a": {"ansible_local": {"vllm": {"served_model": "m", "max_num_seqs": 0}}}}, "a recorded max_num_seqs 0, which is not a positive"),
])
def test_bad_inputs_are_one_sentence(hosts, hostvars, message):
    with pytest.raises(AnsibleFilterError, match=message):
        vllm_pool(hosts, hostvars)


def test_workers_by_model_pool_with_their_prices():
    hostvars = {
        "gpu-spot-1": {"vllm_published": {"served_model": "qwen", "pool": "spot", "hourly_usd": 0.8}},
        "gpu-spot-2": {"ansible_local": {"vllm": {"served_model": "qwen", "pool": "spot", "hourly_usd": "0.8"}}},
        "gpu-od-1": {"vllm_published": {"served_model": "qwen", "pool": "ondemand", "hourly_usd": 2.01}},
    }
    pool = vllm_pool(["gpu-spot-2", "gpu-od-1", "gpu-spot-1"], hostvars)
    assert pool["pools"] == {"ondemand": ["gpu-od-1"], "spot": ["gpu-spot-1", "gpu-spot-2"]}
    assert pool["workers"]["gpu-spot-2"]["hourly_usd"] == 0.8 and pool["workers"]["gpu-od-1"]["pool"] == "ondemand"


def test_a_price_that_is_not_a_number_is_one_sentence():
    with pytest.raises(AnsibleFilterError, match="gpu-1 recorded hourly_usd 'cheap', which is not a number"):
        vllm_pool(["gpu-1"], {"gpu-1": {"vllm_published": {"served_model": "q", "hourly_usd": "cheap"}}})


router_pools = FilterModule().filters()["router_pools"]


def test_router_pools_give_each_pool_an_address_and_each_worker_by_its_address():
    hostvars = {
        "gpu-spot-1": {"vllm_published": {"served_model": "qwen", "pool": "spot", "hourly_usd": 0.8}},
        "gpu-od-1": {"vllm_published": {"served_model": "qwen", "pool": "ondemand", "hourly_usd": 2.01}},
        "gpu-new": {},
    }
    upstreams = [{"name": "gpu-spot-1", "hostport": "10.213.0.7:8000"}, {"name": "gpu-od-1", "hostport": "10.213.0.8:8000"},
                 {"name": "gpu-new", "hostport": "10.213.0.9:8000"}]
    pools = router_pools(upstreams, vllm_pool(["gpu-spot-1", "gpu-od-1", "gpu-new"], hostvars), "http://127.0.0.1:8010/")
    assert pools["urls"] == {"ondemand": "http://127.0.0.1:8010/pool/ondemand", "spot": "http://127.0.0.1:8010/pool/spot"}
    assert pools["upstreams"] == {"ondemand": ["10.213.0.9:8000", "10.213.0.8:8000"], "spot": ["10.213.0.7:8000"]}
    assert pools["workers"]["10.213.0.7:8000"] == {"name": "gpu-spot-1", "pool": "spot", "hourly_usd": 0.8}
    assert pools["workers"]["10.213.0.9:8000"] == {"name": "gpu-new", "pool": "ondemand", "hourly_usd": 0.0}


@pytest.mark.parametrize("upstreams, pool, message", [
    ("10.0.0.1:8000", {"pools": {}, "workers": {}}, "the input must be the router's upstreams"),
    ([{"name": "a"}], {"pools": {}, "workers": {}}, "the input must be the router's upstreams"),
    ([], {"served_models": []}, "the pool must be what vllm_pool returns"),
])
def test_router_pools_bad_inputs_are_one_sentence(upstreams, pool, message):
    with pytest.raises(AnsibleFilterError, match=message):
        router_pools(upstreams, pool, "http://127.0.0.1:8010")
