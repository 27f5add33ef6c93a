"""Checks of the unit-test harness itself, with a throwaway module.

The collection's modules come with later work; these tests pin down the behaviour their
tests rely on: ansible-core 2.19 argument passing, check mode, no_log, and the way
exit_json/fail_json surface as a result or an exception.
"""

from __future__ import annotations

import pytest
from ansible.module_utils.basic import AnsibleModule

from ansible_collections.ai_infra.langgraph_stack.tests.unit.plugins.modules.utils import (
    AnsibleFailJson,
    run_module,
)


def _example_main():
    module = AnsibleModule(
        argument_spec=dict(
            retention_days=dict(type="int", required=True),
            password=dict(type="str", no_log=True),
        ),
        supports_check_mode=True,
    )
    if module.params["retention_days"] <= 0:
        module.fail_json(msg="retention_days must be greater than 0")
    module.exit_json(changed=not module.check_mode, days=module.params["retention_days"])


def test_arguments_reach_the_module():
    result = run_module(_example_main, {"retention_days": 7})
    assert result == {"changed": True, "days": 7}


def test_check_mode_is_passed():
    result = run_module(_example_main, {"retention_days": 7}, check_mode=True)
    assert result["changed"] is False


def test_fail_json_raises_with_message():
    with pytest.raises(AnsibleFailJson) as exc:
        run_module(_example_main, {"retention_days": 0})
    assert exc.value.result["msg"] == "retention_days must be greater than 0"


def test_argument_spec_errors_fail_cleanly():
    with pytest.raises(AnsibleFailJson) as exc:
        run_module(_example_main, {"retention_days": "seven", "password": "hunter2"})
    assert "retention_days" in exc.value.result["msg"]
    assert "hunter2" not in str(exc.value.result)


def test_module_that_never_exits_is_reported():
    with pytest.raises(AssertionError, match="without calling exit_json"):
        run_module(lambda: None, {})
