from __future__ import annotations

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.ai_infra.langgraph_stack.plugins.filter.reprovision_report import FilterModule

FILTERS = FilterModule().filters()
drifted = FILTERS["reprovision_drifted"]
summary = FILTERS["reprovision_summary"]
failure = FILTERS["reprovision_failure"]

# As the change_report callback writes them (it also counts ok tasks).
DRIFT = {
    "state-1": {"changed": [], "failed": [], "unreachable": False, "ok": 80},
    "gpu-2": {"changed": ["Write vLLM's unit", "Restart vLLM"], "failed": [], "unreachable": False, "ok": 60},
    "ghost": {"changed": [], "failed": ["Gathering Facts: unreachable: timed out"], "unreachable": True, "ok": 0},
    "edge-1": {"changed": ["Write the Caddyfile"], "failed": [], "unreachable": False, "ok": 40},
}


def test_drifted_hosts_are_the_reachable_ones_with_a_change_in_report_order():
    assert drifted(DRIFT) == ["gpu-2", "edge-1"]


def test_nothing_drifted():
    assert drifted({"state-1": DRIFT["state-1"]}) == []
    assert drifted({}) == []


def test_summary_line_per_host_sorted():
    applied = {"gpu-2": {"changed": ["Write vLLM's unit", "Restart vLLM"], "failed": []},
               "edge-1": {"changed": [], "failed": ["Reload Caddy: config invalid"]}}
    assert summary(DRIFT, applied, True) == [
        "edge-1: FAILED: Reload Caddy: config invalid; drift: 1 task(s) (Write the Caddyfile); changed: 0 task(s)",
        "ghost: UNREACHABLE; drift: 0 task(s); changed: 0 task(s)",
        "gpu-2: applied; drift: 2 task(s) (Write vLLM's unit; Restart vLLM); changed: 2 task(s)",
        "state-1: no drift; drift: 0 task(s); changed: 0 task(s)",
    ]


def test_drift_only_run_says_not_applied():
    assert summary({"gpu-2": DRIFT["gpu-2"]}, {}, False) == [
        "gpu-2: not applied; drift: 2 task(s) (Write vLLM's unit; Restart vLLM); changed: 0 task(s)"]


def test_a_drift_failure_comes_first():
    drift = {"gpu-2": {"changed": ["a"], "failed": ["Check the driver: no GPU"], "unreachable": False}}
    assert summary(drift, {"gpu-2": {"changed": [], "failed": ["later"]}}, True)[0].startswith(
        "gpu-2: FAILED: Check the driver: no GPU;")


def test_only_five_task_names_are_shown():
    drift = {"new-host": {"changed": [f"task {n}" for n in range(1, 8)], "failed": [], "unreachable": False}}
    line = summary(drift, {}, True)[0]
    assert "drift: 7 task(s) (task 1; task 2; task 3; task 4; task 5, ...)" in line
    assert "task 6" not in line


def test_no_hosts_matched():
    assert summary({}, {}, False) == ["no hosts matched"]


@pytest.mark.parametrize(("drift_rc", "apply_rc", "expected"), [
    (0, None, ""),
    (0, 0, ""),
    (4, None, "The drift report failed (exit 4); see the hosts above, and /r/drift.log."),
    (2, 0, "The drift report failed (exit 2); see the hosts above, and /r/drift.log."),
    (0, 2, "The apply run failed (exit 2); see the hosts above, and /r/apply.log."),
    ("0", "4", "The apply run failed (exit 4); see the hosts above, and /r/apply.log."),
])
def test_failure_names_the_run_its_exit_code_and_its_log(drift_rc, apply_rc, expected):
    assert failure(drift_rc, apply_rc, "/r") == expected


def test_a_failed_pools_run_is_named_first_and_the_others_after_it():
    assert failure(0, 0, "/r", 2) == "Bringing the Spheron pools to their counts failed (exit 2); see the hosts above, and /r/pools.log."
    assert failure(4, None, "/r", 2).startswith("Bringing the Spheron pools")
    assert failure(4, None, "/r", 0) == failure(4, None, "/r")
    assert failure(0, 0, "/r", None) == ""


@pytest.mark.parametrize(("drift_rc", "apply_rc"), [(None, None), ("x", 0), (0, "two")])
def test_exit_codes_that_are_not_numbers(drift_rc, apply_rc):
    with pytest.raises(AnsibleFilterError, match="the exit codes must be integers"):
        failure(drift_rc, apply_rc, "/r")


@pytest.mark.parametrize(("hosts", "message"), [
    ([], "the drift run's hosts must be a mapping of host names to records, got list"),
    ({"gpu-2": "changed"}, "the drift run's record of gpu-2 is not a mapping"),
    ({"gpu-2": {"changed": "a task"}}, "the drift run's record of gpu-2 must list its changed and failed tasks"),
])
def test_a_malformed_report_is_one_sentence(hosts, message):
    with pytest.raises(AnsibleFilterError, match=message):
        drifted(hosts)
    with pytest.raises(AnsibleFilterError, match=message):
        summary(hosts, {}, True)


def test_a_malformed_apply_report_is_named():
    with pytest.raises(AnsibleFilterError, match="the apply run's record of gpu-2 is not a mapping"):
        summary(DRIFT, {"gpu-2": None}, True)
