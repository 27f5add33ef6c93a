#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: ai_infra platform team
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: phoenix_run_costs
short_description: What each of the last LangGraph runs cost on the GPU, from the traces in Arize Phoenix
version_added: 0.1.0
description:
  - Reads the newest root spans (one per trace, that is one per graph run) of a Phoenix project and,
    for each, its duration and the GPU price its spans carry (C(gpu.hourly_usd) and
    C(gpu.instance_type), set by the langgraph_server role's tracing hook from the inventory).
  - A run's cost is C(gpu.hourly_usd) / 3600 x its duration in seconds. A run whose span has no price
    is listed with C(cost_usd) null and counted in RV(runs_without_price).
  - Read-only; the same in check mode.
author:
  - ai_infra platform team (@ai-infra)
options:
  api_key:
    description: A Phoenix API key (or the admin secret). One of O(api_key) and O(api_key_file) is required.
    type: str
  api_key_file:
    description: A file on the target host that holds the key, such as the phoenix role's
      C(/etc/phoenix/ingestion.key).
    type: path
  project:
    description: The Phoenix project the LangGraph servers send to.
    type: str
    default: langgraph
  last:
    description: How many runs, newest first (1 to 1000).
    type: int
    default: 20
  thread_id:
    description: Only the runs of this thread.
    type: str
extends_documentation_fragment:
  - ai_infra.langgraph_stack.phoenix
attributes:
  check_mode:
    description: Reads only.
    support: full
  diff_mode:
    description: Nothing to show.
    support: none
"""

EXAMPLES = r"""
- name: Cost of the last 20 runs
  ai_infra.langgraph_stack.phoenix_run_costs:
    url: http://127.0.0.1:6006
    api_key_file: /etc/phoenix/ingestion.key
  register: costs

- name: Print them
  ansible.builtin.debug:
    msg: "{{ costs.table }}"
"""

RETURN = r"""
runs:
  description: The runs, newest first.
  returned: success
  type: list
  elements: dict
  sample:
    - trace_id: c4f75c452373c328615c80f411a0b7fe
      name: LangGraph
      thread_id: 0b6a5f1e-8f7e-4c1e-9d5b-2f0a4b8c9d10
      run_id: 1f0c9a2e-3b4d-6e5f-8a7b-9c0d1e2f3a4b
      graph_id: agent
      status: OK
      start_time: "2026-11-24T09:47:21.267330+00:00"
      duration_s: 12.5
      gpu_instance_type: h100-spot
      gpu_hourly_usd: 2.49
      cost_usd: 0.0086458
total_cost_usd:
  description: The sum of the runs' costs (runs without a price count 0).
  returned: success
  type: float
  sample: 0.0086458
runs_without_price:
  description: How many runs carry no C(gpu.hourly_usd).
  returned: success
  type: int
  sample: 0
table:
  description: The runs as lines of a table, for printing.
  returned: success
  type: list
  elements: str
"""

import calendar
import re

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.common.text.converters import to_native, to_text
from ansible_collections.ai_infra.langgraph_stack.plugins.module_utils.phoenix_api import (
    phoenix_argument_spec,
    PhoenixApiError,
    PhoenixClient,
    root_spans,
)

TIMESTAMP = re.compile(
    r"^(\d{4})-(\d\d)-(\d\d)[T ](\d\d):(\d\d):(\d\d)(?:\.(\d+))?(Z|[+-]\d\d:?\d\d)?$"
)


def epoch_microseconds(value):
    """Microseconds since the epoch of an ISO 8601 timestamp as Phoenix writes it (UTC if
    no offset); whole numbers, so a short run's duration is exact."""
    match = TIMESTAMP.match(to_text(value or "").strip())
    if not match:
        raise ValueError("not an ISO 8601 timestamp: %r" % (value,))
    year, month, day, hour, minute, second = (int(match.group(i)) for i in range(1, 7))
    seconds = calendar.timegm((year, month, day, hour, minute, second, 0, 0, 0))
    offset = match.group(8)
    if offset and offset != "Z":
        sign = -1 if offset[0] == "-" else 1
        digits = offset[1:].replace(":", "")
        seconds -= sign * (int(digits[:2]) * 3600 + int(digits[2:]) * 60)
    fraction = (match.group(7) or "")[:6].ljust(6, "0")
    return seconds * 1000000 + int(fraction)


def run_cost(span):
    """One row of RV(runs) from a root span."""
    attributes = span.get("attributes") or {}
    if not isinstance(attributes, dict):
        raise ValueError("attributes is not an object")
    duration = (epoch_microseconds(span.get("end_time")) - epoch_microseconds(span.get("start_time"))) / 1e6
    price = attributes.get("gpu.hourly_usd")
    try:
        price = float(price) if price not in (None, "") else None
    except (TypeError, ValueError):
        raise ValueError("gpu.hourly_usd is not a number: %r" % (price,))
    context = span.get("context") or {}
    return {
        "trace_id": context.get("trace_id"),
        "name": span.get("name"),
        "thread_id": attributes.get("metadata.thread_id") or attributes.get("session.id"),
        "run_id": attributes.get("metadata.run_id"),
        # langgraph dev puts the graph in the run's metadata; Aegra's span enrichment (which
        # the server's tracing hook adds) under langfuse.trace.metadata.
        "graph_id": attributes.get("metadata.graph_id") or attributes.get("langfuse.trace.metadata.graph_id"),
        "status": span.get("status_code"),
        "start_time": span.get("start_time"),
        "duration_s": round(duration, 6),
        "gpu_instance_type": attributes.get("gpu.instance_type"),
        "gpu_hourly_usd": price,
        "cost_usd": round(price / 3600.0 * duration, 12) if price is not None else None,
    }


def table(runs):
    lines = ["%-26s  %-12s  %-36s  %-36s  %10s  %8s  %12s" % ("start (UTC)", "graph", "thread", "run", "seconds", "USD/h", "cost USD")]
    for run in runs:
        lines.append("%-26s  %-12s  %-36s  %-36s  %10.3f  %8s  %12s" % (
            (run["start_time"] or "")[:26], run["graph_id"] or "-", run["thread_id"] or "-", run["run_id"] or "-", run["duration_s"],
            "-" if run["gpu_hourly_usd"] is None else "%.4g" % run["gpu_hourly_usd"],
            "-" if run["cost_usd"] is None else "%.6f" % run["cost_usd"],
        ))
    return lines


def read_key(module, path):
    try:
        with open(path, "rb") as handle:
            key = to_text(handle.read(), errors="surrogate_or_strict").strip()
    except (IOError, OSError) as exc:
        module.fail_json(msg="cannot read api_key_file %s: %s" % (path, to_native(exc)))
    if not key:
        module.fail_json(msg="api_key_file %s is empty" % path)
    return key


def main():
    argument_spec = phoenix_argument_spec()
    argument_spec.update(
        api_key=dict(type="str", no_log=True),
        api_key_file=dict(type="path"),
        project=dict(type="str", default="langgraph"),
        last=dict(type="int", default=20),
        thread_id=dict(type="str"),
    )
    module = AnsibleModule(
        argument_spec=argument_spec,
        required_one_of=[("api_key", "api_key_file")],
        mutually_exclusive=[("api_key", "api_key_file")],
        supports_check_mode=True,
    )
    p = module.params
    if not 1 <= p["last"] <= 1000:
        module.fail_json(msg="last must be between 1 and 1000 (Phoenix returns at most 1000 spans a page), got %s" % p["last"])
    if not p["project"] or any(c in p["project"] for c in "/?#"):
        module.fail_json(msg="project must be a Phoenix project name without /, ? or #, got %r" % p["project"])
    key = p["api_key"] or read_key(module, p["api_key_file"])
    try:
        client = PhoenixClient(p["url"], key, p["timeout"], p["validate_certs"])
        spans = root_spans(client, p["project"], p["last"], p["thread_id"])
    except PhoenixApiError as exc:
        module.fail_json(msg=str(exc))
    if spans is None:
        module.warn("Phoenix has no project %r: no trace has arrived for it yet (or the name is wrong)" % p["project"])
        spans = []
    runs = []
    for span in spans:
        try:
            runs.append(run_cost(span))
        except ValueError as exc:
            module.fail_json(msg="Phoenix sent a root span this module cannot read (%s): %s" % (to_native(exc), to_text(span)[:300]))
    priced = [run["cost_usd"] for run in runs if run["cost_usd"] is not None]
    module.exit_json(
        changed=False,
        runs=runs,
        total_cost_usd=round(sum(priced), 12),
        runs_without_price=len(runs) - len(priced),
        table=table(runs),
    )


if __name__ == "__main__":
    main()
