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
