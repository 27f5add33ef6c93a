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
  - With O(window_start), instead, what each run cost of the GPUs in that window (an hour by default, as
    GPUs are billed), from the spans named C(model call) that the agent servers' model pools write (one
    per model call, naming the worker that served it, its hourly price and pool, the run), each worker's bill
    for the window (hourly price x the window's length) is split between the runs that used it in
    proportion to their share of its time, the calls in flight at one instant sharing it equally. The
    runs of a window add up to the bill of the workers that served them. RV(window) also gives what
    the seed guide's formula (each call priced alone) adds up to, for comparison.
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
    description: Only the runs of this thread (not with O(window_start)).
    type: str
  window_start:
    description:
      - Cost the runs' model calls in the window that starts here, instead of listing the last runs.
      - An ISO 8601 timestamp (UTC when it has no offset), or C(last_hour) for the last whole hour
        (UTC) before now.
    type: str
  window_seconds:
    description: The window's length (60 to 86400). Calls are cut at its edges.
    type: int
    default: 3600
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

- name: What each run of the last hour cost, its share of each GPU's time, per pool
  ai_infra.langgraph_stack.phoenix_run_costs:
    url: http://127.0.0.1:6006
    api_key_file: /etc/phoenix/ingestion.key
    window_start: last_hour
  register: hour
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
  description: The runs (and with O(window_start), the pools and workers) as lines of a table, for printing.
  returned: success
  type: list
  elements: str
window:
  description:
    - With O(window_start), the window's costs. C(runs) (newest call last; C(run_id), C(thread_id),
      C(trace_id), C(cost_usd), C(gpu_seconds), C(pools) pool to USD), C(pools) (pool to USD),
      C(workers) (name to C(pool), C(hourly_usd), C(bill_usd), C(busy_seconds), C(calls)),
      C(bill_usd) (the workers' bills), C(cost_usd) (the runs' costs, the bill to rounding),
      C(seed_guide_usd) (each call priced alone) and C(calls_without_worker) (calls no worker
      answered, such as one to an empty pool; they cost nothing).
  returned: when O(window_start) is set
  type: dict
  sample:
    start: "2026-12-04T10:00:00+00:00"
    end: "2026-12-04T11:00:00+00:00"
    runs:
      - run_id: 1f0c9a2e-3b4d-6e5f-8a7b-9c0d1e2f3a4b
        thread_id: 0b6a5f1e-8f7e-4c1e-9d5b-2f0a4b8c9d10
        trace_id: c4f75c452373c328615c80f411a0b7fe
        cost_usd: 0.4
        gpu_seconds: 61.2
        pools: {spot: 0.3, ondemand: 0.1}
    pools: {spot: 1.6, ondemand: 2.01}
    workers:
      prod-gpu-spot-1: {pool: spot, hourly_usd: 0.8, bill_usd: 0.8, busy_seconds: 1800.0, calls: 412}
    bill_usd: 3.61
    cost_usd: 3.61
    seed_guide_usd: 19.4
    calls_without_worker: 0
"""

import calendar
import re
import time

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.common.text.converters import to_native, to_text
from ansible_collections.ai_infra.langgraph_stack.plugins.module_utils.gpu_cost import CallError, window_costs
from ansible_collections.ai_infra.langgraph_stack.plugins.module_utils.phoenix_api import (
    named_spans,
    phoenix_argument_spec,
    PhoenixApiError,
    PhoenixClient,
    root_spans,
)

# The span the agent servers' model pools write for each model call (apps/builtin/agent/model_pools.py).
MODEL_CALL_SPAN = "model call"
# A call that began this long before the window may still run in it: read its span too.
LONGEST_CALL_S = 900

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


def iso(seconds):
    return time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(seconds))


def window_bounds(value, length, now=None):
    """(start, end) in epoch seconds of the window `value` names."""
    if value == "last_hour":
        now = time.time() if now is None else now
        start = int(now // 3600) * 3600 - 3600
    else:
        start = epoch_microseconds(value) / 1e6
    return start, start + length


def model_call(span):
    """A call for gpu_cost.window_costs from a model call span, or None when no worker answered it."""
    attributes = span.get("attributes") or {}
    if not isinstance(attributes, dict):
        raise ValueError("attributes is not an object")
    worker = attributes.get("model_call.worker")
    if not worker:
        return None
    context = span.get("context") or {}
    price = attributes.get("model_call.hourly_usd")
    try:
        price = float(price if price not in (None, "") else 0)
    except (TypeError, ValueError):
        raise ValueError("model_call.hourly_usd is not a number: %r" % (price,))
    return {
        "run": attributes.get("model_call.run_id") or context.get("trace_id"),
        "run_id": attributes.get("model_call.run_id"),
        "thread_id": attributes.get("model_call.thread_id"),
        "trace_id": context.get("trace_id"),
        "worker": worker,
        "pool": attributes.get("model_call.pool") or "",
        "hourly_usd": price,
        "start": epoch_microseconds(span.get("start_time")) / 1e6,
        "end": epoch_microseconds(span.get("end_time")) / 1e6,
    }


def window_report(spans, start, end):
    calls, without_worker = [], 0
    for span in spans:
        call = model_call(span)
        if call is None:
            without_worker += 1
        else:
            calls.append(call)
    costs = window_costs(calls, start, end)
    first_seen = {}
    for call in sorted(calls, key=lambda c: c["start"]):
        first_seen.setdefault(call["run"], call)
    runs = []
    for run, entry in costs["runs"].items():
        seen = first_seen[run]
        runs.append({"run_id": seen["run_id"], "thread_id": seen["thread_id"], "trace_id": seen["trace_id"],
                     "cost_usd": round(entry["cost_usd"], 9), "gpu_seconds": round(entry["gpu_seconds"], 6),
                     "pools": dict((pool, round(cost, 9)) for pool, cost in entry["pools"].items()),
                     "_first": seen["start"]})
    runs.sort(key=lambda r: r.pop("_first"))
    return {
        "start": iso(start),
        "end": iso(end),
        "runs": runs,
        "pools": dict((pool, round(cost, 9)) for pool, cost in costs["pools"].items()),
        "workers": dict((name, dict(worker, bill_usd=round(worker["bill_usd"], 9), busy_seconds=round(worker["busy_seconds"], 6)))
                        for name, worker in costs["workers"].items()),
        "bill_usd": round(costs["bill_usd"], 9),
        "cost_usd": round(costs["cost_usd"], 9),
        "seed_guide_usd": round(costs["seed_guide_usd"], 9),
        "calls_without_worker": without_worker,
    }


def window_table(window):
    lines = ["runs of %s to %s (each worker's bill shared by the GPU time each run had of it)" % (window["start"], window["end"]),
             "%-36s  %-36s  %10s  %12s  %s" % ("run", "thread", "GPU s", "cost USD", "per pool")]
    for run in window["runs"]:
        lines.append("%-36s  %-36s  %10.3f  %12.6f  %s" % (
            run["run_id"] or run["trace_id"] or "-", run["thread_id"] or "-", run["gpu_seconds"], run["cost_usd"],
            ", ".join("%s %.6f" % item for item in sorted(run["pools"].items()))))
    for pool, cost in sorted(window["pools"].items()):
        lines.append("pool %-20s  %12.6f USD" % (pool or "-", cost))
    for name, worker in sorted(window["workers"].items()):
        lines.append("worker %-30s  pool %-12s  %8.4g USD/h  busy %9.1f s  %5d calls  bill %.6f USD" % (
            name, worker["pool"] or "-", worker["hourly_usd"], worker["busy_seconds"], worker["calls"], worker["bill_usd"]))
    lines.append("runs %.6f USD, bill %.6f USD; the seed guide's formula (each call priced alone) would say %.6f USD" % (
        window["cost_usd"], window["bill_usd"], window["seed_guide_usd"]))
    return lines


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
        window_start=dict(type="str"),
        window_seconds=dict(type="int", default=3600),
    )
    module = AnsibleModule(
        argument_spec=argument_spec,
        required_one_of=[("api_key", "api_key_file")],
        mutually_exclusive=[("api_key", "api_key_file"), ("window_start", "thread_id")],
        supports_check_mode=True,
    )
    p = module.params
    if p["window_start"] is None and not 1 <= p["last"] <= 1000:
        module.fail_json(msg="last must be between 1 and 1000 (Phoenix returns at most 1000 spans a page), got %s" % p["last"])
    if p["window_start"] is not None and not 60 <= p["window_seconds"] <= 86400:
        module.fail_json(msg="window_seconds must be between 60 and 86400, got %s" % p["window_seconds"])
    if not p["project"] or any(c in p["project"] for c in "/?#"):
        module.fail_json(msg="project must be a Phoenix project name without /, ? or #, got %r" % p["project"])
    if p["window_start"] is not None:
        try:
            start, end = window_bounds(p["window_start"], p["window_seconds"])
        except ValueError:
            module.fail_json(msg="window_start must be an ISO 8601 timestamp or last_hour, got %r" % p["window_start"])
    key = p["api_key"] or read_key(module, p["api_key_file"])
    try:
        client = PhoenixClient(p["url"], key, p["timeout"], p["validate_certs"])
        if p["window_start"] is not None:
            spans = named_spans(client, p["project"], MODEL_CALL_SPAN, iso(start - LONGEST_CALL_S), iso(end))
        else:
            spans = root_spans(client, p["project"], p["last"], p["thread_id"])
    except PhoenixApiError as exc:
        module.fail_json(msg=str(exc))
    if spans is None:
        module.warn("Phoenix has no project %r: no trace has arrived for it yet (or the name is wrong)" % p["project"])
        spans = []
    if p["window_start"] is not None:
        try:
            report = window_report(spans, start, end)
        except (ValueError, CallError) as exc:
            module.fail_json(msg="Phoenix sent a model call span this module cannot read: %s" % to_native(exc))
        module.exit_json(changed=False, window=report, table=window_table(report))
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
