# -*- coding: utf-8 -*-
# Copyright: ai_infra platform team
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""What each run cost of the GPUs it used in one window of time (an hour, as the GPUs are
billed), from its model calls: which worker served each call, at what hourly price, from
when to when.

The seed guide prices a run at hourly price / 3600 x its duration. With 20 runs sharing a
GPU that counts the GPU's hour 20 times. Here a worker's bill for the window (its hourly
price x the window's length) is split between the runs that used it in proportion to the
GPU time each one had: at every instant the calls in flight on a worker share it equally,
so a call alone on a worker for 2 s has 2 s of it and each of 4 calls in flight together
for 2 s has 0.5 s. Time no call used (the worker idle) is spread the same way, so the runs
of a window add up to the bill of every worker that served them. A worker that served no
call in the window is nobody's run: it is listed in no run, and the caller reports it.

Pure Python, no Ansible import: the phoenix_run_costs module and its unit tests use it.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class CallError(ValueError):
    """A model call record this module cannot use."""


def check_call(call):
    """A model call as a dict: run, pool, worker, hourly_usd, start and end (epoch seconds)."""
    if not isinstance(call, dict):
        raise CallError("a model call must be a dict, got %r" % (call,))
    for key in ("run", "worker"):
        if not call.get(key):
            raise CallError("a model call has no %s: %r" % (key, call))
    try:
        start, end, price = float(call["start"]), float(call["end"]), float(call["hourly_usd"])
    except (KeyError, TypeError, ValueError):
        raise CallError("a model call needs numbers for start, end and hourly_usd: %r" % (call,))
    if end < start:
        raise CallError("a model call ends before it starts: %r" % (call,))
    if price < 0:
        raise CallError("a model call has a negative hourly price: %r" % (call,))
    return dict(call, start=start, end=end, hourly_usd=price, pool=call.get("pool") or "")


def shared_seconds(calls, window_start, window_end):
    """{run: GPU seconds} on one worker: the calls' intervals cut to the window, each instant
    shared equally between the calls in flight then. Also returns the busy seconds (the
    union of the intervals), which the shares add up to."""
    events = []
    for index, call in enumerate(calls):
        start, end = max(call["start"], window_start), min(call["end"], window_end)
        if end > start:
            events.append((start, 1, index))
            events.append((end, -1, index))
    # Ends before starts at one instant: a call that ends as another starts never shares.
    events.sort(key=lambda event: (event[0], event[1]))
    shares, busy, active, previous = {}, 0.0, set(), None
    for time, kind, index in events:
        if active and previous is not None and time > previous:
            step = time - previous
            busy += step
            for each in active:
                run = calls[each]["run"]
                shares[run] = shares.get(run, 0.0) + step / len(active)
        if kind == 1:
            active.add(index)
        else:
            active.discard(index)
        previous = time
    return shares, busy


def window_costs(calls, window_start, window_end):
    """What each run, pool and worker cost in [window_start, window_end) (epoch seconds).

    Returns a dict: runs (run -> {cost_usd, gpu_seconds, pools: {pool: cost_usd}}), pools
    (pool -> cost_usd), workers (worker -> {pool, hourly_usd, bill_usd, busy_seconds,
    calls}), bill_usd (the workers' bills added up), cost_usd (the runs' costs added up;
    the same as the bill to rounding) and seed_guide_usd (each call priced alone at hourly
    price / 3600 x its seconds in the window: what the seed guide's formula adds up to)."""
    if not window_end > window_start:
        raise CallError("the window must end after it starts")
    hours = (window_end - window_start) / 3600.0
    by_worker = {}
    for call in calls:
        call = check_call(call)
        by_worker.setdefault(call["worker"], []).append(call)
    runs, pools, workers = {}, {}, {}
    seed_guide = 0.0
    for worker, its_calls in sorted(by_worker.items()):
        shares, busy = shared_seconds(its_calls, window_start, window_end)
        if not busy:
            continue
        # A worker's price and pool are those of its latest call (a price change within the
        # window is not modelled: Spheron prices an instance when it launches).
        latest = max(its_calls, key=lambda call: call["start"])
        price, pool = latest["hourly_usd"], latest["pool"]
        bill = price * hours
        workers[worker] = {"pool": pool, "hourly_usd": price, "bill_usd": bill, "busy_seconds": busy,
                           "calls": sum(1 for call in its_calls
                                        if min(call["end"], window_end) > max(call["start"], window_start))}
        for call in its_calls:
            seed_guide += call["hourly_usd"] / 3600.0 * max(0.0, min(call["end"], window_end) - max(call["start"], window_start))
        for run, seconds in shares.items():
            cost = bill * seconds / busy
            entry = runs.setdefault(run, {"cost_usd": 0.0, "gpu_seconds": 0.0, "pools": {}})
            entry["cost_usd"] += cost
            entry["gpu_seconds"] += seconds
            entry["pools"][pool] = entry["pools"].get(pool, 0.0) + cost
            pools[pool] = pools.get(pool, 0.0) + cost
    return {
        "runs": runs,
        "pools": pools,
        "workers": workers,
        "bill_usd": sum(worker["bill_usd"] for worker in workers.values()),
        "cost_usd": sum(run["cost_usd"] for run in runs.values()),
        "seed_guide_usd": seed_guide,
    }
