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
    assert pool["workers"]["gpu-1"] == {"served_model": "qwen", "max_num_seqs": 12, "fanout": 10}
    assert pool["models"] == {"gpu-1": "qwen", "gpu-2": "qwen"}
    assert pool["served_models"] == ["qwen"]
    assert (pool["fanout"], pool["max_num_seqs"]) == (6, 8)


def test_a_worker_not_converged_yet_is_left_out_of_the_figures():
    hostvars = {"gpu-1": {"ansible_local": {"vllm": {"served_model": "qwen", "max_num_seqs": 8, "fanout": 6}}},
                "gpu-2": {"ansible_local": {}}, "gpu-3": {}}
    pool = vllm_pool(["gpu-1", "gpu-2", "gpu-3"], hostvars)
    assert pool["models"] == {"gpu-1": "qwen", "gpu-2": "", "gpu-3": ""}
    assert pool["workers"]["gpu-3"] == {"served_model": "", "max_num_seqs": None, "fanout": None}
    assert (pool["served_models"], pool["fanout"], pool["max_num_seqs"]) == (["qwen"], 6, 8)


def test_a_fact_from_before_the_fan_out_was_recorded_still_gives_the_model():
    pool = vllm_pool(["gpu-1"], {"gpu-1": {"ansible_local": {"vllm": {"served_model": "qwen", "max_num_seqs": 8}}}})
    assert (pool["served_models"], pool["fanout"], pool["max_num_seqs"]) == (["qwen"], None, 8)


def test_a_worker_whose_role_stopped_before_publishing_is_not_known_yet():
    """The role's own settings (an inventory's vllm_served_model_name) are not a published record."""
    hostvars = {"gpu-1": {"vllm_served_model_name": "qwen", "vllm_fanout": 10}}
    assert vllm_pool(["gpu-1"], hostvars)["served_models"] == []


def test_no_workers_known():
    assert vllm_pool([], {}) == {"workers": {}, "models": {}, "served_models": [], "fanout": None, "max_num_seqs": None}


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
