"""Benchmark: from a reclaimed spot worker to its replacement serving, from a bare image and from a warm one.

Spheron is not reachable here: a stand-in for its API (molecule/fleet/tests/spheron_standin.py)
makes and removes containers as Spheron makes and reclaims machines, and the collection
talks to it as to Spheron (the spheron inventory plugin, playbooks/pools.yml and its
spheron_instance module, reprovision.yml). One Debian 13 host holds state, agent server
(with its model router) and edge; the pools want one spot GPU worker (Debian 12, vLLM's
CPU build with the real small model), molecule/fleet's settings throughout (its
group_vars: the example Spheron inventory's, the WireGuard mesh and the firewall
included).

Each round: the stand-in reclaims the worker (its container removed), reprovision.yml runs
as the schedule runs it (pools.yml launches a replacement, the drift report, site.yml on
what drifted: the new worker fully, the routers to it), then calls go to the spot pool's
address on the agent server until the replacement answers. Printed side by side, for a
replacement started from the bare OS image ("bare") and from an image that already holds
what provisioning installs (a provisioned worker's disk without its identity: WireGuard
key, published facts, enabled vLLM unit; "warm image"): seconds from the eviction to
serving, split into launch (the stand-in's machine booting), provisioning (the rest of
reprovision.yml: installs, configuration, the fleet's drift check) and model load (vLLM's
own start, from its journal), and the tasks that changed on the replacement. Then the
drain: with a long call in flight on the worker, the pools want none and pools.yml
drains and removes it; printed: its seconds, and whether the call finished whole.

The eviction here waits for no schedule: reprovision.yml starts at once (its timer's
interval comes on top). What a real H100 adds (model download and load) is arithmetic from
published sizes, in bench/README.md.

--quick (what `make bench-quick` runs) provisions nothing: against the stand-in, pools.yml
launches the wanted worker, launches a replacement once the stand-in reclaims it, refuses
a launch over the spend ceiling, and drains (nothing runs on it) and removes the worker
no pool wants; it prints each step's seconds.

usage (from the repository root, on an otherwise idle machine; `make images models build` first):
  .venv/bin/python bench/eviction_to_serving.py [--quick] [--keep]
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import shlex
import shutil
import subprocess
import sys
import tempfile
import time

import yaml

REPO = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))
sys.path.insert(0, str(REPO / "molecule/fleet/tests"))

import fleet_converge  # noqa: E402  (bench/, beside this script)
from spheron_standin import KEY, StandIn  # noqa: E402

SERVER = "bench-evict-server"
WORKER = "bench-gpu-spot-1"  # what pools.yml names the spot pool's first worker (prefix bench)
WARM_IMAGE = "bench-evict-warm:latest"
VLLM_KEY = "molecule-vllm-key-0123456789"  # molecule/fleet's test-only key
POOLS = {"spheron_fleet_prefix": "bench", "spheron_ssh_key_id": "standin-key", "spheron_launch_timeout": 300,
         "spheron_max_fleet_hourly_usd": 5,
         "spheron_pools": {"spot": {"count": 1, "gpu_type": "H100-PCIe", "instance_type": "SPOT"}}}
# What makes a provisioned worker this worker rather than any: removed from the warm image.
IDENTITY = ["/etc/wireguard", "/etc/ansible/facts.d", "/etc/systemd/system/multi-user.target.wants/vllm.service"]

CALL = r'''
import json, sys, time, urllib.error, urllib.request
url, key, tokens = sys.argv[1], sys.argv[2], int(sys.argv[3])
body = {"model": "smollm2", "messages": [{"role": "user", "content": "Count to a thousand."}],
        "max_tokens": tokens, "ignore_eos": True}
request = urllib.request.Request(url, data=json.dumps(body).encode(),
                                 headers={"Authorization": "Bearer " + key, "Content-Type": "application/json"})
started = time.monotonic()
try:
    answer = json.load(urllib.request.urlopen(request, timeout=600))
    result = {"status": 200, "finish_reason": answer["choices"][0]["finish_reason"],
              "tokens": answer["usage"]["completion_tokens"]}
except urllib.error.HTTPError as exc:
    result = {"status": exc.code}
except OSError as exc:
    result = {"status": 0, "error": str(exc)}
result["seconds"] = time.monotonic() - started
print(json.dumps(result))
'''
POOL_URL = "http://127.0.0.1:8010/pool/spot/v1/chat/completions"  # the model router on the agent server


class Bench:
    def __init__(self, directory: pathlib.Path, quick: bool):
        self.directory, self.quick = directory, quick
        self.image = None  # the stand-in's machine image: None is the bare Debian 12 image
        self.standin = StandIn(self.machine_argv, str(REPO / ".cache/apt-archives"))
        self.environ = dict(os.environ, SPHERON_API_KEY=KEY, SPHERON_API_URL=self.standin.serve(), ANSIBLE_NOCOLOR="1",
                            ANSIBLE_FORCE_COLOR="0", ANSIBLE_PIPELINING="1", **fleet_converge.MOLECULE_ENV)
        self.inventory = directory / "inventory"
        self.inventory.mkdir()
        hosts = {} if quick else {SERVER: {}}
        (self.inventory / "hosts.yml").write_text(yaml.safe_dump({"all": {
            "vars": {"ansible_connection": "community.docker.docker", **POOLS},
            "children": {group: {"hosts": hosts} for group in ("state", "agent_servers", "edge", "molecule_hosts")}}}))
        # Ansible reaches the stand-in's machines through Docker; they take the hosts'
        # container settings (group molecule_hosts).
        (self.inventory / "spheron.yml").write_text(yaml.safe_dump({
            "plugin": "ai_infra.langgraph_stack.spheron",
            "compose": {"ansible_connection": "'community.docker.docker'", "ansible_host": "spheron_name"},
            "groups": {"molecule_hosts": "true"}}))
        (self.inventory / "group_vars").symlink_to(REPO / "molecule/fleet/group_vars")

    def machine_argv(self, name, apt):
        return fleet_converge.run_argv(name, "bookworm", image=self.image, apt=apt)

    def playbook(self, name, *extra, expect_ok=True):
        """Runs a playbook of the collection; (seconds, output)."""
        started = time.monotonic()
        done = subprocess.run(["ansible-playbook", "-i", str(self.inventory), str(REPO / "playbooks" / name), *extra],
                              capture_output=True, text=True, check=False, env=self.environ, timeout=3600)
        seconds, output = time.monotonic() - started, done.stdout + done.stderr
        log = REPO / ".cache/bench-logs" / f"eviction-{name}-{int(time.time())}.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        log.write_text(output)
        if (done.returncode == 0) != expect_ok:
            sys.exit(f"{name} {'failed' if expect_ok else 'passed, where it should have refused'} (exit {done.returncode}); see {log}")
        return seconds, output

    def pools(self, count, *extra, expect_ok=True):
        wanted = {"spheron_pools": {"spot": dict(POOLS["spheron_pools"]["spot"], count=count)}}
        return self.playbook("pools.yml", "-e", json.dumps(wanted), *extra, expect_ok=expect_ok)

    def expect_live(self, names):
        if self.standin.live() != names:
            sys.exit(f"the stand-in's live machines are {self.standin.live()}, not {names}")

    def close(self, keep):
        if not keep:
            self.standin.close()
            fleet_converge.stop([SERVER])
            subprocess.run(["docker", "rmi", "-f", WARM_IMAGE], capture_output=True, check=False)
        else:
            self.standin.server.shutdown()


def docker(*args, check=True):
    return subprocess.run(["docker", *args], capture_output=True, text=True, check=check).stdout.strip()


def quick(bench):
    """pools.yml against the stand-in, nothing provisioned."""
    seconds = bench.pools(1)[0]
    bench.expect_live([WORKER])
    print(f"launch the wanted worker: {seconds:.1f} s (the stand-in's machine booted in "
          f"{bench.standin.timings[WORKER]['boot_s']:.1f} s)")
    bench.standin.reclaim(WORKER)
    seconds = bench.pools(1)[0]
    bench.expect_live([WORKER])
    print(f"reclaimed, replaced: {seconds:.1f} s")
    seconds, output = bench.pools(2, "-e", "spheron_max_fleet_hourly_usd=1.0", expect_ok=False)
    if "over max_fleet_hourly_usd 1.00" not in " ".join(output.split()):
        sys.exit("pools.yml did not refuse a launch over the spend ceiling in one sentence:\n" + output[-3000:])
    bench.expect_live([WORKER])
    print(f"a second worker over the spend ceiling refused: {seconds:.1f} s")
    seconds, output = bench.pools(0)
    bench.expect_live([])
    if "Drain vLLM" not in output:
        sys.exit("pools.yml removed the worker without running its drain:\n" + output[-3000:])
    print(f"the worker no pool wants drained (no vLLM on it) and removed: {seconds:.1f} s")


def metric(name, prefix) -> float:
    """A vLLM metric, read on the machine that runs it."""
    text = docker("exec", name, "sh", "-c", "curl -sf --max-time 2 http://$(hostname -I | cut -d' ' -f1):8000/metrics", check=False)
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(prefix + "{"))


def model_load_seconds(name) -> float:
    """From systemd's start of the vllm unit (its last) to vLLM's own 'Application startup
    complete' (uvicorn's own "Started server process" comes just before that)."""
    lines = docker("exec", name, "journalctl", "-u", "vllm", "-o", "short-unix", "--no-pager", check=False).splitlines()
    starts = [float(line.split()[0]) for line in lines if line[:1].isdigit() and " systemd[1]: Started " in line]
    ready = [float(line.split()[0]) for line in lines if "Application startup complete" in line]
    return ready[-1] - starts[-1] if starts and ready else float("nan")


def call(tokens, detach_to=None):
    """A call to the spot pool's address through the agent server's model router."""
    argv = ["python3", "-c", CALL, POOL_URL, VLLM_KEY, str(tokens)]
    if detach_to:
        return docker("exec", "--detach", SERVER, "sh", "-c", shlex.join(argv) + f" > {detach_to}")
    return json.loads(docker("exec", SERVER, *argv))


def round_trip(bench, label):
    """Reclaim the worker, reprovision, wait for the replacement's first answer."""
    reports = REPO / ".cache/bench-logs" / f"eviction-reports-{label.replace(' ', '-')}"
    bench.standin.reclaim(WORKER)
    evicted = time.monotonic()
    reprovision = bench.playbook("reprovision.yml", "-e", f"reprovision_report_dir={reports}")[0]
    report = json.loads((reports / "last-report.json").read_text())
    if report.get("pools_rc") != 0 or report.get("apply_rc") != 0:
        sys.exit(f"reprovision.yml's {label} round: pools rc {report.get('pools_rc')}, apply rc {report.get('apply_rc')}")
    while (answer := call(1))["status"] != 200:
        if time.monotonic() - evicted > reprovision + 300:
            sys.exit(f"the replacement did not answer within 300 s of reprovision.yml ({answer})")
        time.sleep(1)
    serving = time.monotonic()
    launch, load = bench.standin.timings[WORKER]["boot_s"], model_load_seconds(WORKER)
    return {"eviction -> serving": serving - evicted, "launch (stand-in)": launch,
            "provisioning": reprovision - launch - load, "model load (vLLM)": load,
            "first answer after reprovision.yml": serving - evicted - reprovision,
            "tasks changed on the replacement": len(report["applied"].get(WORKER, {}).get("changed", []))}


def warm_image():
    """The provisioned worker's disk without its identity, as an image."""
    docker("commit", WORKER, WARM_IMAGE + "-dirty")
    docker("rm", "-f", "bench-evict-clean", check=False)
    # (The image has no entrypoint: the command replaces systemd, then the commit puts it back.)
    docker("run", "--name", "bench-evict-clean", WARM_IMAGE + "-dirty", "rm", "-rf", *IDENTITY)
    spec = fleet_converge.platform()
    docker("commit", "--change", f"CMD {json.dumps([spec['command']])}", "bench-evict-clean", WARM_IMAGE)
    docker("rm", "-f", "bench-evict-clean")
    docker("rmi", WARM_IMAGE + "-dirty")


def drain(bench):
    """A long call in flight on the worker; the pools want none: pools.yml drains, removes."""
    docker("exec", SERVER, "rm", "-f", "/root/drain-call.json")
    call(400, detach_to="/root/drain-call.json")
    deadline = time.monotonic() + 60
    while metric(WORKER, "vllm:num_requests_running") < 1:
        if time.monotonic() > deadline:
            sys.exit("the long call did not reach the worker")
        time.sleep(0.5)
    seconds = bench.pools(0)[0]
    bench.expect_live([])
    deadline = time.monotonic() + 60
    while not (text := docker("exec", SERVER, "cat", "/root/drain-call.json", check=False)):
        if time.monotonic() > deadline:
            sys.exit("the long call never ended")
        time.sleep(1)
    return seconds, json.loads(text)


def full(bench):
    fleet_converge.start({SERVER: "trixie"})
    started = time.monotonic()
    bench.pools(1)
    bench.playbook("site.yml")
    if call(1)["status"] != 200:
        sys.exit("the spot worker does not answer through the router after site.yml")
    print(f"state, agent server and edge on one host, one spot worker: up in {time.monotonic() - started:.0f} s", flush=True)
    warm_image()

    rounds = {}
    for label, image in (("bare image", None), ("warm image", WARM_IMAGE)):
        bench.image = image
        rounds[label] = round_trip(bench, label)
        print(f"{label}: eviction -> serving {rounds[label]['eviction -> serving']:.0f} s", flush=True)
    seconds, result = drain(bench)

    bare, warm = rounds["bare image"], rounds["warm image"]
    print()
    print(f"{'':<38} {'bare image':>11} {'warm image':>11} {'warm/bare':>10}")
    for row in bare:
        form, unit = (".0f", "") if row.startswith("tasks") else (".1f", " s")
        ratio = warm[row] / bare[row] if bare[row] else float("nan")
        print(f"{row:<38} {bare[row]:>9{form}}{unit:<2} {warm[row]:>9{form}}{unit:<2} {ratio:>10.2f}")
    print()
    whole = result.get("status") == 200 and result.get("finish_reason") == "length" and result.get("tokens") == 400
    print(f"drain and removal of the worker with a 400-token call in flight: pools.yml {seconds:.0f} s; "
          f"the call {'finished whole' if whole else 'was cut'} ({result})")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="pools.yml against the stand-in only; provision nothing")
    parser.add_argument("--keep", action="store_true", help="leave the containers running")
    args = parser.parse_args()
    if not shutil.which("ansible-playbook"):
        sys.exit("ansible-playbook is not on PATH: run from the repository root with .venv/bin first on PATH")
    subprocess.run(["docker", "network", "create", fleet_converge.NETWORK], capture_output=True, check=False)
    with tempfile.TemporaryDirectory() as directory:
        bench = Bench(pathlib.Path(directory), args.quick)
        try:
            (quick if args.quick else full)(bench)
        finally:
            bench.close(args.keep)


if __name__ == "__main__":
    main()
