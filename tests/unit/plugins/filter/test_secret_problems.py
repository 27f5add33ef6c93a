from __future__ import annotations

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.ai_infra.langgraph_stack.plugins.filter.secret_problems import FilterModule

secret_problems = FilterModule().filters()["secret_problems"]

GOOD = "3f9c2a7e41b08d6c5e2f1a9b7c3d8e06"  # openssl rand -hex 16


def test_generated_secrets_pass():
    assert secret_problems({"redis_app_password": GOOD, "vllm_api_key": "q8Zr-T2vLx_0pWn4Yb7K"}) == []


@pytest.mark.parametrize("value", [
    # The example vault's values, each of them.
    "change-me", "change-me-to-at-least-16-chars", "change-me-to-a-long-random-token",
    "change-me-0123456789abcdefghijklmnopqrstuv", "change-me-too-0123456789abcdefghijklmnopq", "change-me-0123",
    "CHANGEME-please-0123456789", "an-example-secret-0123456789", "Password", "secret!", "0123456789",
])
def test_placeholders_and_common_words_are_refused(value):
    assert secret_problems({"redis_app_password": value}) == [
        "redis_app_password is a placeholder or a common word: generate one (openssl rand -hex 32)."]


def test_short_and_uniform_secrets_are_refused_with_the_minimum_named():
    assert secret_problems({"phoenix_secret": "k9Xa2bQ7"}, 32) == ["phoenix_secret is shorter than 32 characters."]
    assert secret_problems({"redis_admin_password": "abababababababababababab"}) == [
        "redis_admin_password has fewer than 8 different characters: generate one (openssl rand -hex 32)."]
    assert len(secret_problems({"x": "aaaa"})) == 2


def test_minimums_per_variable():
    secrets = {"phoenix_secret": GOOD[:20], "phoenix_admin_initial_password": GOOD[:12]}
    assert secret_problems(secrets, {"phoenix_secret": 32, "phoenix_admin_initial_password": 12}) == [
        "phoenix_secret is shorter than 32 characters."]
    # A variable not in the dict gets the default of 16.
    assert secret_problems({"other": GOOD[:12]}, {"phoenix_secret": 32}) == ["other is shorter than 16 characters."]


def test_empty_is_a_problem_unless_optional():
    assert secret_problems({"redis_app_password": ""}) == ["redis_app_password is empty: set it (ansible-vault)."]
    assert secret_problems({"redis_app_password": None}) == ["redis_app_password is empty: set it (ansible-vault)."]
    assert secret_problems({"vllm_hf_token": ""}, optional=["vllm_hf_token"]) == []
    assert secret_problems({"vllm_hf_token": "change-me"}, optional=["vllm_hf_token"]) != []


def test_token_lists_are_checked_per_entry_by_name():
    tokens = [{"name": "studio", "token": "change-me-to-a-long-random-token"}, {"name": "ci", "token": GOOD}]
    assert secret_problems({"caddy_auth_tokens": tokens}, 24) == [
        "caddy_auth_tokens[studio].token is a placeholder or a common word: generate one (openssl rand -hex 32)."]
    assert secret_problems({"caddy_auth_tokens": [{"name": "x"}]}, 24) == ["caddy_auth_tokens[x].token is empty: set it (ansible-vault)."]
    assert secret_problems({"caddy_auth_tokens": []}, 24, optional=["caddy_auth_tokens"]) == []


def test_no_value_ever_appears_in_the_answer():
    for value in ("change-me-xyz", "q7-k2", "zzzzzzzzzzzzzzzzzzzz"):
        assert all(value not in line for line in secret_problems({"s": value}))


@pytest.mark.parametrize("args, message", [
    (("not a dict",), "expects a dict"),
    (({"s": 12345678901234567},), "must be a string"),
    (({"s": GOOD}, "long"), "not a number"),
    (({"t": ["token"]},), r"t\[0\] must be a dict"),
])
def test_bad_input_says_what_is_wrong(args, message):
    with pytest.raises(AnsibleFilterError, match=message):
        secret_problems(*args)
