"""The cost of each run as its share of the GPUs' time (module_utils/gpu_cost.py)."""

from __future__ import annotations

import random

import pytest

from ansible_collections.ai_infra.langgraph_stack.plugins.module_utils.gpu_cost import CallError, shared_seconds, window_costs

HOUR = 1_796_000_400.0  # 2026-12-0x, on a whole hour


def call(run, worker, start, end, price=0.8, pool="spot"):
    return {"run": run, "worker": worker, "pool": pool, "hourly_usd": price, "start": HOUR + start, "end": HOUR + end}


def test_calls_in_flight_together_share_the_gpu_equally():
    calls = [call(f"r{i}", "w", 0, 2) for i in range(4)] + [call("alone", "w", 10, 12)]
    shares, busy = shared_seconds(calls, HOUR, HOUR + 3600)
    assert shares == {"r0": 0.5, "r1": 0.5, "r2": 0.5, "r3": 0.5, "alone": 2.0}
    assert busy == 4.0


def test_a_call_that_ends_as_another_starts_does_not_share():
    shares, busy = shared_seconds([call("a", "w", 0, 2), call("b", "w", 2, 3)], HOUR, HOUR + 3600)
    assert shares == {"a": 2.0, "b": 1.0} and busy == 3.0


def test_calls_are_cut_at_the_window_edges():
    shares, busy = shared_seconds([call("before", "w", -10, 5), call("after", "w", 3595, 3700)], HOUR, HOUR + 3600)
    assert shares == {"before": 5.0, "after": 5.0} and busy == 10.0


def test_the_bill_is_shared_by_gpu_time_idle_time_included():
    costs = window_costs([call("a", "w", 0, 30), call("b", "w", 0, 10)], HOUR, HOUR + 3600)
    # a had 5 s shared + 20 s alone = 25 s, b 5 s: the 0.80 USD hour splits 25:5.
    assert costs["runs"]["a"]["cost_usd"] == pytest.approx(0.8 * 25 / 30)
    assert costs["runs"]["b"]["cost_usd"] == pytest.approx(0.8 * 5 / 30)
    assert costs["bill_usd"] == pytest.approx(0.8) and costs["cost_usd"] == pytest.approx(0.8)
    # The seed guide's formula prices each call alone: 40 s at 0.80/h.
    assert costs["seed_guide_usd"] == pytest.approx(0.8 / 3600 * 40)
    assert costs["workers"]["w"] == {"pool": "spot", "hourly_usd": 0.8, "bill_usd": pytest.approx(0.8),
                                     "busy_seconds": 30.0, "calls": 2}


def test_an_hour_of_runs_adds_up_to_the_gpu_bill_per_run_and_per_pool():
    """A known trace set: an hour of 300 runs on three workers in two pools, each run a
    fan-out of concurrent calls on spot and a combining call on on-demand, many runs in
    flight at once. The runs' costs add up to the workers' bill within 1% (exactly, to
    rounding); the seed guide's formula counts concurrent calls' GPU time many times over."""
    rng = random.Random(20261204)
    workers = {"prod-gpu-spot-1": ("spot", 0.80), "prod-gpu-spot-2": ("spot", 0.80), "prod-gpu-ondemand-1": ("ondemand", 2.01)}
    calls = []
    for number in range(300):
        start = rng.uniform(-20, 3590)
        ends = []
        for _fanout in range(6):
            worker = rng.choice(["prod-gpu-spot-1", "prod-gpu-spot-2"])
            end = start + rng.uniform(1, 25)
            ends.append(end)
            calls.append(call(f"run-{number}", worker, start, end, workers[worker][1], "spot"))
        combine = max(ends)
        calls.append(call(f"run-{number}", "prod-gpu-ondemand-1", combine, combine + rng.uniform(1, 8), 2.01, "ondemand"))
    costs = window_costs(calls, HOUR, HOUR + 3600)
    bill = sum(price for _pool, price in workers.values())
    total = sum(run["cost_usd"] for run in costs["runs"].values())
    assert abs(total - bill) / bill < 0.01
    assert costs["pools"] == {"ondemand": pytest.approx(2.01), "spot": pytest.approx(1.60)}
    assert sum(sum(run["pools"].values()) for run in costs["runs"].values()) == pytest.approx(bill)
    assert costs["seed_guide_usd"] > 0 and costs["bill_usd"] == pytest.approx(bill)
    assert all(run["cost_usd"] > 0 for run in costs["runs"].values())


def test_a_worker_nobody_used_in_the_window_is_in_no_bill():
    costs = window_costs([call("a", "w", 4000, 4010)], HOUR, HOUR + 3600)
    assert costs["runs"] == {} and costs["workers"] == {} and costs["bill_usd"] == 0


@pytest.mark.parametrize("bad, message", [
    ("a call", "must be a dict"),
    ({"worker": "w", "start": 0, "end": 1, "hourly_usd": 1}, "has no run"),
    ({"run": "r", "start": 0, "end": 1, "hourly_usd": 1}, "has no worker"),
    ({"run": "r", "worker": "w", "start": "soon", "end": 1, "hourly_usd": 1}, "needs numbers"),
    ({"run": "r", "worker": "w", "start": 2, "end": 1, "hourly_usd": 1}, "ends before it starts"),
    ({"run": "r", "worker": "w", "start": 0, "end": 1, "hourly_usd": -1}, "negative hourly price"),
])
def test_bad_calls_say_what_is_wrong(bad, message):
    with pytest.raises(CallError, match=message):
        window_costs([bad], HOUR, HOUR + 3600)


def test_an_empty_window_is_refused():
    with pytest.raises(CallError, match="must end after it starts"):
        window_costs([], HOUR, HOUR)
