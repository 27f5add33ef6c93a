from __future__ import annotations

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.ai_infra.langgraph_stack.plugins.filter.service_uri import FilterModule

FILTERS = FilterModule().filters()
service_uri = FILTERS["service_uri"]
peer_address = FILTERS["peer_address"]


def test_every_reserved_character_of_the_credentials_is_encoded():
    # What libpq and redis-py would otherwise read as the end of the password: / : @ ? # % & =
    uri = service_uri("10.0.0.1", "postgresql", "lang graph", "p/a:s@s w%rd?&=#", 5432, "langgraph", {"sslmode": "verify-full"})
    assert uri == "postgresql://lang%20graph:p%2Fa%3As%40s%20w%25rd%3F%26%3D%23@10.0.0.1:5432/langgraph?sslmode=verify-full"


def test_ipv6_host_in_brackets_and_query_in_order_with_paths_kept():
    uri = service_uri("fd00::1", "postgresql", "phoenix", "x", "5432", "phoenix",
                      {"sslmode": "verify-full", "sslrootcert": "/opt/ai-infra/phoenix/postgresql-ca.crt"})
    assert uri == "postgresql://phoenix:x@[fd00::1]:5432/phoenix?sslmode=verify-full&sslrootcert=/opt/ai-infra/phoenix/postgresql-ca.crt"


def test_no_query_and_a_database_number():
    assert service_uri("127.0.0.1", "redis", "ai-infra-gate", "g+", 6379, "1") == "redis://ai-infra-gate:g%2B@127.0.0.1:6379/1"
    assert service_uri("127.0.0.1", "redis", "u", "p", 6379, "0", {}) == "redis://u:p@127.0.0.1:6379/0"


@pytest.mark.parametrize("args, message", [
    (("", "redis", "u", "p", 6379), "redis address is empty"),
    (("10.0.0.1", "", "u", "p", 6379), "scheme is empty"),
    (("10.0.0.1", "redis", "u", "p", "six"), "'six', not a port number"),
    (("10.0.0.1", "redis", "u", "p", 70000), "outside 1-65535"),
])
def test_bad_inputs_are_one_sentence(args, message):
    with pytest.raises(AnsibleFilterError, match=message):
        service_uri(*args)


def test_query_must_be_a_dict():
    with pytest.raises(AnsibleFilterError, match="query must be a dict, got list"):
        service_uri("10.0.0.1", "redis", "u", "p", 6379, "0", ["sslmode"])


HOSTVARS = {"state-1": {"postgresql_private_address": " 10.213.7.1 "}, "edge-1": {}}


def test_loopback_on_the_service_host_and_its_private_address_elsewhere():
    assert peer_address("state-1", "state-1", HOSTVARS, "postgresql_private_address") == "127.0.0.1"
    assert peer_address("state-1", "edge-1", HOSTVARS, "postgresql_private_address") == "10.213.7.1"
    assert peer_address("state-1", "edge-1", HOSTVARS, "redis_private_address") == ""


def test_an_unknown_service_host_is_named():
    with pytest.raises(AnsibleFilterError, match="state-9 is not a host of this inventory"):
        peer_address("state-9", "edge-1", HOSTVARS, "redis_private_address")
