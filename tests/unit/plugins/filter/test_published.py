from __future__ import annotations

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.ai_infra.langgraph_stack.plugins.filter.published import FilterModule

published = FilterModule().filters()["published"]


def test_this_runs_record_wins_over_the_local_fact():
    hostvars = {"state-1": {"redis_published": {"port": "6380", "app_user": "app"},
                            "ansible_local": {"redis": {"port": 6379, "app_user": "old"}}}}
    assert published("state-1", hostvars, "redis") == {"port": "6380", "app_user": "app"}


def test_the_local_fact_of_an_earlier_run():
    hostvars = {"state-1": {"ansible_local": {"postgresql": {"port": 5433, "langgraph_db": "lg"}}}}
    assert published("state-1", hostvars, "postgresql") == {"port": 5433, "langgraph_db": "lg"}


def test_a_record_that_is_not_a_mapping_falls_back_to_the_local_fact():
    hostvars = {"state-1": {"redis_published": "", "ansible_local": {"redis": {"port": 6379}}}}
    assert published("state-1", hostvars, "redis") == {"port": 6379}


@pytest.mark.parametrize("host_vars", [
    {},
    {"ansible_local": {}},
    {"ansible_local": {"redis": {}}},
    {"ansible_local": "not gathered"},
    {"ansible_local": {"redis": "garbled"}},
])
def test_a_host_the_role_never_ran_on_is_one_sentence(host_vars):
    with pytest.raises(AnsibleFilterError, match=r"state-1 has not published its redis settings .* apply the redis role to state-1 first"):
        published("state-1", {"state-1": host_vars}, "redis")


@pytest.mark.parametrize(("host", "role", "message"), [
    ("elsewhere", "redis", "elsewhere is not a host of this inventory"),
    (["state-1"], "redis", "the input must be an inventory host name"),
    ("", "redis", "the input must be an inventory host name"),
    ("state-1", "no such role", "the role must be a role's short name"),
    ("state-1", None, "the role must be a role's short name"),
])
def test_bad_input_is_one_sentence(host, role, message):
    with pytest.raises(AnsibleFilterError, match=message):
        published(host, {"state-1": {}}, role)


model_source = FilterModule().filters()["model_source"]

ROUTER = {"url": "http://127.0.0.1:8001", "served_model": "qwen", "fanout": "6", "max_num_seqs": "8",
          "pools": {"spot": "http://127.0.0.1:8001/pool/spot"},
          "workers": {"10.213.0.7:8000": {"name": "gpu-spot-1", "pool": "spot", "hourly_usd": 0.8}}}
VLLM = {"url": "http://127.0.0.1:8000", "served_model": "qwen-local", "fanout": 10, "max_num_seqs": 12}


def test_the_model_router_on_the_host_wins_over_vllm_there():
    hostvars = {"server-1": {"model_router_published": ROUTER, "vllm_published": VLLM}}
    assert model_source("server-1", hostvars) == {
        "role": "model_router", "url": "http://127.0.0.1:8001", "served_model": "qwen", "fanout": 6, "max_num_seqs": 8,
        "pools": ROUTER["pools"], "workers": ROUTER["workers"]}


def test_vllm_on_the_host_from_its_local_fact():
    hostvars = {"single": {"ansible_local": {"vllm": VLLM}}}
    assert model_source("single", hostvars) == {
        "role": "vllm", "url": "http://127.0.0.1:8000", "served_model": "qwen-local", "fanout": 10, "max_num_seqs": 12,
        "pools": {"ondemand": "http://127.0.0.1:8000"},
        "workers": {"127.0.0.1:8000": {"name": "single", "pool": "ondemand", "hourly_usd": 0}}}


def test_a_router_with_no_worker_known_yet_has_no_sizes():
    record = {"url": "http://127.0.0.1:8001", "served_model": "", "fanout": None, "max_num_seqs": ""}
    hostvars = {"server-1": {"ansible_local": {"model_router": record}}}
    source = model_source("server-1", hostvars)
    assert (source["role"], source["served_model"], source["fanout"], source["max_num_seqs"]) == ("model_router", "", None, None)


def test_no_model_on_the_host():
    assert model_source("server-1", {"server-1": {"ansible_local": {}}}) == {
        "role": "", "url": "", "served_model": "", "fanout": None, "max_num_seqs": None, "pools": {}, "workers": {}}


@pytest.mark.parametrize(("host", "hostvars", "message"), [
    ("server-9", {}, "model_source: server-9 is not a host of this inventory"),
    (None, {}, "model_source: the input must be an inventory host name"),
    ("s", {"s": {"vllm_published": {"url": "u", "fanout": "wide"}}}, "s: vllm published fanout 'wide', which is not a whole number"),
    ("s", {"s": {"model_router_published": {"url": "u", "max_num_seqs": 0}}}, "s: model_router published max_num_seqs 0, which is not a positive"),
    ("s", {"s": {"model_router_published": {"url": "u", "pools": "spot"}}}, "s: model_router published pools 'spot', which is not a dict"),
])
def test_bad_input_to_model_source_is_one_sentence(host, hostvars, message):
    with pytest.raises(AnsibleFilterError, match=message):
        model_source(host, hostvars)
