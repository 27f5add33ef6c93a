# -*- coding: utf-8 -*-
# Copyright: ai_infra platform team
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
name: change_report
type: aggregate
short_description: Write, per host, which tasks changed (or would change), failed or could not reach it
version_added: 0.2.0
description:
  - Records every task that reported a change (in check mode, that would change) on each host,
    every failure that was not ignored or rescued, and unreachable hosts, and writes them as one
    JSON file when the playbook ends. C(playbooks/reprovision.yml) enables it for its drift report
    (a C(--check --diff) run of C(site.yml)) and for the run that applies it.
  - Adds nothing to the normal output.
requirements:
  - enabled with C(ANSIBLE_CALLBACKS_ENABLED=ai_infra.langgraph_stack.change_report)
options:
  path:
    description: File to write the report to. Without one, nothing is written.
    type: path
    env:
      - name: AI_INFRA_CHANGE_REPORT
    ini:
      - section: callback_change_report
        key: path
"""

import json
import os
import tempfile
import time

from ansible import context
from ansible.module_utils.common.text.converters import to_text
from ansible.plugins.callback import CallbackBase


def empty_host():
    return {"changed": [], "failed": [], "unreachable": False, "ok": 0}


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "ai_infra.langgraph_stack.change_report"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self):
        super(CallbackModule, self).__init__()
        self.hosts = {}
        self.started = time.time()

    def _host(self, result):
        return self.hosts.setdefault(result._host.get_name(), empty_host())

    @staticmethod
    def _task_name(result):
        task = result._task
        name = task.get_name()
        return to_text(name.strip() or task.action)

    def v2_runner_on_ok(self, result):
        host = self._host(result)
        host["ok"] += 1
        if result._result.get("changed", False):
            name = self._task_name(result)
            if name not in host["changed"]:
                host["changed"].append(name)

    def v2_runner_on_failed(self, result, ignore_errors=False):
        if ignore_errors:
            return
        message = result._result.get("msg") or result._result.get("stderr") or "failed"
        self._host(result)["failed"].append("%s: %s" % (self._task_name(result), to_text(message)[:500]))

    def v2_runner_on_unreachable(self, result):
        host = self._host(result)
        host["unreachable"] = True
        host["failed"].append("%s: unreachable: %s" % (self._task_name(result), to_text(result._result.get("msg", ""))[:300]))

    def v2_playbook_on_stats(self, stats):
        for name in stats.processed:
            self.hosts.setdefault(name, empty_host())
        # A block's rescue recovers the host: its earlier failure is not one the run ends with.
        for name, host in self.hosts.items():
            if stats.summarize(name).get("rescued", 0) and not stats.summarize(name).get("failures", 0):
                host["failed"] = [failure for failure in host["failed"] if "unreachable" in failure]
        path = self.get_option("path")
        if not path:
            return
        report = {
            "check_mode": bool(context.CLIARGS.get("check", False)),
            "started": self.started,
            "finished": time.time(),
            "hosts": self.hosts,
        }
        directory = os.path.dirname(os.path.abspath(path))
        handle, temp = tempfile.mkstemp(dir=directory, prefix=".change-report.")
        with os.fdopen(handle, "w") as out:
            json.dump(report, out, indent=2, sort_keys=True)
        os.chmod(temp, 0o640)
        os.rename(temp, path)
