"""Benchmark: site.yml on 1 host against 4 hosts, and an idempotent re-run against a cold converge.

The same playbook (playbooks/site.yml) and the same settings as molecule/fleet (vLLM's CPU
build with the real small model on every GPU worker, the LangGraph server, PostgreSQL,
Redis, Caddy), on fresh systemd containers built like Molecule's hosts:

  1 host    one host in every group (the single-GPU case)
  4 hosts   one state + edge host and three GPU workers

For each layout: a cold converge on fresh hosts, then the same run again. Prints, side by
side in one run: seconds of each, the tasks the re-run changed (must be 0), and the
ratios 4 hosts / 1 host (cold) and re-run / cold. Needs `make images models build` first.

usage (from the repository root, on an otherwise idle machine):
  .venv/bin/python bench/fleet_converge.py [--layouts 1,4] [--keep]
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import re
import shutil
import subprocess
import sys
import tempfile
import time

import yaml

REPO = pathlib.Path(__file__).resolve().parents[1]
NETWORK = "bench-fleet"


def platform():
    """Molecule's first platform (image, flags), as playbooks/local_hosts.yml reads it."""
    text = (REPO / ".config/molecule/config.yml").read_text().replace("${MOLECULE_PROJECT_DIRECTORY}", str(REPO))
    return yaml.safe_load(text)["platforms"][0]


def fleet_vars():
    """The group vars of molecule/fleet: the same settings the scenario converges with."""
    text = (REPO / "molecule/fleet/molecule.yml").read_text().replace("${MOLECULE_PROJECT_DIRECTORY}", str(REPO))
    return yaml.safe_load(text)["provisioner"]["inventory"]["group_vars"]["all"]


def apt_dir(name):
    """One apt download folder per container (apt fails on a lock another container holds),
    started as hard links to the shared bookworm downloads (the lock file excluded)."""
    base = REPO / ".cache/apt-archives"
    path = base / f"bench-{name}"
    if not path.exists():
        subprocess.run(["cp", "-al", str(base / "bookworm"), str(path)], check=True)
        (path / "lock").unlink(missing_ok=True)
    (path / "partial").mkdir(parents=True, exist_ok=True)
    return path


def start(names):
    spec = platform()
    subprocess.run(["docker", "network", "create", NETWORK], capture_output=True, check=False)
    for name in names:
        subprocess.run(["docker", "rm", "-f", name], capture_output=True, check=False)
        argv = ["docker", "run", "-d", "--name", name, "--hostname", name, "--network", NETWORK,
                "--cgroupns", spec["cgroupns_mode"], "--stop-signal", spec["stop_signal"], "--shm-size", spec["shm_size"]]
        argv += [f"--cap-add={cap}" for cap in spec["capabilities"]]
        argv += [f"--security-opt={opt}" for opt in spec["security_opts"]]
        argv += [f"--tmpfs={path}" for path in spec["tmpfs"]]
        argv += ["-v", "/sys/fs/cgroup:/sys/fs/cgroup:rw", "-v", f"{apt_dir(name)}:/var/cache/apt/archives:rw",
                 "-v", f"{REPO}/.cache/pip:/root/.cache/pip:rw",
                 "-v", f"{REPO}/.cache/wheels:/var/cache/ai-infra/wheels:rw"]
        subprocess.run(argv + [spec["image"], spec["command"]], check=True, capture_output=True)
    for name in names:
        for _attempt in range(120):
            state = subprocess.run(["docker", "exec", name, "systemctl", "is-system-running"],
                                   capture_output=True, text=True, check=False).stdout.strip()
            if state in ("running", "degraded"):
                break
            time.sleep(1)


def stop(names):
    for name in names:
        subprocess.run(["docker", "rm", "-f", name], capture_output=True, check=False)


def inventory(names, directory):
    if len(names) == 1:
        groups = {group: [names[0]] for group in ("state", "agent_servers", "gpu_workers", "edge")}
    else:
        groups = {"state": names[:1], "edge": names[:1], "agent_servers": names[1:], "gpu_workers": names[1:]}
    data = {"all": {
        "vars": dict(fleet_vars(), ansible_connection="community.docker.docker", ansible_python_interpreter="/usr/bin/python3"),
        "children": {group: {"hosts": {host: {} for host in hosts}} for group, hosts in groups.items()},
    }}
    path = pathlib.Path(directory) / f"fleet-{len(names)}.yml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def converge(path, log):
    started = time.monotonic()
    run = subprocess.run(
        ["ansible-playbook", "-i", str(path), str(REPO / "playbooks/site.yml")],
        capture_output=True, text=True, check=False,
        env=dict(os.environ, ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0", ANSIBLE_PIPELINING="1"),
    )
    seconds = time.monotonic() - started
    log.write_text(run.stdout + run.stderr)
    if run.returncode != 0:
        sys.exit(f"site.yml failed on {path.name} (exit {run.returncode}); see {log}")
    changed = sum(int(m) for m in re.findall(r"\bchanged=(\d+)", run.stdout.split("PLAY RECAP")[-1]))
    return seconds, changed


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--layouts", default="1,4", help="host counts, comma-separated (default 1,4)")
    parser.add_argument("--keep", action="store_true", help="leave the containers running")
    args = parser.parse_args()
    if not shutil.which("ansible-playbook"):
        sys.exit("ansible-playbook is not on PATH: run from the repository root with .venv/bin first on PATH")

    logs = REPO / ".cache/bench-logs"
    logs.mkdir(parents=True, exist_ok=True)
    results = {}
    with tempfile.TemporaryDirectory() as directory:
        for count in [int(n) for n in args.layouts.split(",")]:
            names = [f"bench-fleet-{i}" for i in range(1, count + 1)]
            start(names)
            try:
                path = inventory(names, directory)
                cold = converge(path, logs / f"fleet-{count}-cold.log")
                rerun = converge(path, logs / f"fleet-{count}-rerun.log")
                results[count] = {"cold_s": cold[0], "cold_changed": cold[1], "rerun_s": rerun[0], "rerun_changed": rerun[1]}
                print(f"{count} host(s): cold {cold[0]:.0f} s ({cold[1]} changed), re-run {rerun[0]:.0f} s ({rerun[1]} changed)", flush=True)
            finally:
                if not args.keep:
                    stop(names)

    print()
    print(f"{'layout':<10} {'cold converge':>14} {'re-run':>8} {'re-run/cold':>12} {'changed on re-run':>18}")
    for count, r in results.items():
        print(f"{count} host(s){'':<2} {r['cold_s']:>12.0f} s {r['rerun_s']:>6.0f} s {r['rerun_s'] / r['cold_s']:>12.2f} {r['rerun_changed']:>18}")
    if 1 in results and 4 in results:
        print(f"\n4 hosts / 1 host, cold converge: {results[4]['cold_s'] / results[1]['cold_s']:.2f}x; "
              f"re-run: {results[4]['rerun_s'] / results[1]['rerun_s']:.2f}x")
    print(json.dumps(results))


if __name__ == "__main__":
    main()
