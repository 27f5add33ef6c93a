"""Unit tests of the change_report callback: what reprovision.yml reads from both runs.

reprovision.yml runs it for real in molecule/fleet; here results are fed to it directly.
"""

from __future__ import annotations

import json
import types

import pytest

from ansible import context
from ansible.plugins.loader import callback_loader


def load_plugin():
    # Through the loader, as Ansible does: it reads the options from DOCUMENTATION.
    return callback_loader.get("ai_infra.langgraph_stack.change_report")


def result(host, task, **values):
    return types.SimpleNamespace(
        _host=types.SimpleNamespace(get_name=lambda: host),
        _task=types.SimpleNamespace(get_name=lambda: task, action="ansible.builtin.command"),
        _result=values,
    )


class Stats:
    def __init__(self, processed, rescued=()):
        self.processed = dict.fromkeys(processed, 1)
        self.rescued = set(rescued)

    def summarize(self, host):
        return {"rescued": 1 if host in self.rescued else 0, "failures": 0}


@pytest.fixture()
def callback(tmp_path):
    plugin = load_plugin()
    plugin.set_options(direct={"path": str(tmp_path / "report.json")})
    return plugin


def report(tmp_path):
    return json.loads((tmp_path / "report.json").read_text())


def test_changed_tasks_per_host_once_each(callback, tmp_path):
    callback.v2_runner_on_ok(result("worker-1", "Write the env file", changed=True))
    callback.v2_runner_on_ok(result("worker-1", "Write the env file", changed=True))
    callback.v2_runner_on_ok(result("worker-1", "Read a thing", changed=False))
    callback.v2_runner_on_ok(result("worker-2", "Read a thing"))
    callback.v2_playbook_on_stats(Stats(["worker-1", "worker-2", "state-1"]))
    hosts = report(tmp_path)["hosts"]
    assert hosts["worker-1"] == {"changed": ["Write the env file"], "failed": [], "unreachable": False, "ok": 3}
    assert hosts["worker-2"]["changed"] == []
    # A host with no task results (every task skipped) is still listed.
    assert hosts["state-1"] == {"changed": [], "failed": [], "unreachable": False, "ok": 0}


def test_failures_unless_ignored(callback, tmp_path):
    callback.v2_runner_on_failed(result("worker-1", "Gate", msg="model not served"))
    callback.v2_runner_on_failed(result("worker-1", "Probe", msg="ignored"), ignore_errors=True)
    callback.v2_playbook_on_stats(Stats(["worker-1"]))
    assert report(tmp_path)["hosts"]["worker-1"]["failed"] == ["Gate: model not served"]


def test_a_rescued_failure_is_not_kept(callback, tmp_path):
    callback.v2_runner_on_failed(result("worker-1", "Gate", msg="model not served"))
    callback.v2_playbook_on_stats(Stats(["worker-1"], rescued=["worker-1"]))
    assert report(tmp_path)["hosts"]["worker-1"]["failed"] == []


def test_unreachable(callback, tmp_path):
    callback.v2_runner_on_unreachable(result("spot-3", "Gathering Facts", msg="ssh: connect to host timed out"))
    callback.v2_playbook_on_stats(Stats(["spot-3"]))
    host = report(tmp_path)["hosts"]["spot-3"]
    assert host["unreachable"] is True
    assert "unreachable: ssh: connect to host timed out" in host["failed"][0]


def test_check_mode_is_recorded(callback, tmp_path, monkeypatch):
    monkeypatch.setattr(context, "CLIARGS", {"check": True})
    callback.v2_playbook_on_stats(Stats([]))
    assert report(tmp_path)["check_mode"] is True


def test_no_path_writes_nothing(tmp_path):
    plugin = load_plugin()
    plugin.set_options(direct={"path": None})
    plugin.v2_playbook_on_stats(Stats(["worker-1"]))
    assert list(tmp_path.iterdir()) == []


def test_unnamed_tasks_are_named_by_their_action(callback, tmp_path):
    callback.v2_runner_on_ok(result("worker-1", "", changed=True))
    callback.v2_playbook_on_stats(Stats(["worker-1"]))
    assert report(tmp_path)["hosts"]["worker-1"]["changed"] == ["ansible.builtin.command"]
