"""Benchmark: site.yml on 2 hosts against 5 hosts, and an idempotent re-run against a cold converge.

The same playbook (playbooks/site.yml) and the same settings as molecule/fleet (its
group_vars: the example Spheron inventory's, with vLLM's CPU build and the real small model
on every GPU worker; Aegra agent servers with their model routers, PostgreSQL, Redis,
Caddy; no Phoenix, as neither layout has an observability host), on fresh systemd
containers built like Molecule's hosts:

  2 hosts   the local stack's layout: one Debian 13 host for state, agent server and edge,
            one Debian 12 GPU worker (vLLM's CPU wheels need its Python 3.11, Aegra 3.12)
  5 hosts   molecule/fleet's hosts: a Debian 12 state + edge host, two Debian 13 agent
            servers, two Debian 12 GPU workers

For each layout: a cold converge on fresh hosts, then the same run again. Prints, side by
side in one run: seconds of each, the tasks the re-run changed (must be 0), and the
ratios 5 hosts / 2 hosts (cold) and re-run / cold. Needs `make images models build` first.

--quick (what `make bench-quick` runs) starts no host: it writes both layouts' inventories
and has ansible-playbook list site.yml's hosts and tasks against them, so the inventories
this script builds keep matching the playbook and the scenario's settings.

usage (from the repository root, on an otherwise idle machine):
  .venv/bin/python bench/fleet_converge.py [--layouts 2,5] [--keep] [--quick]
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
# molecule/fleet's settings find the model under the project directory, as Molecule sets it.
MOLECULE_ENV = {"MOLECULE_PROJECT_DIRECTORY": str(REPO)}


# Each layout: (host name suffix, Debian suite, groups).
LAYOUTS = {
    2: [("server", "trixie", ["state", "agent_servers", "edge"]),
        ("worker", "bookworm", ["gpu_workers"])],
    5: [("state", "bookworm", ["state", "edge"]),
        ("server-1", "trixie", ["agent_servers"]), ("server-2", "trixie", ["agent_servers"]),
        ("worker-1", "bookworm", ["gpu_workers"]), ("worker-2", "bookworm", ["gpu_workers"])],
}


def platform():
    """Molecule's first platform (flags), as playbooks/local_hosts.yml reads it."""
    text = (REPO / ".config/molecule/config.yml").read_text().replace("${MOLECULE_PROJECT_DIRECTORY}", str(REPO))
    return yaml.safe_load(text)["platforms"][0]


def apt_dir(name, suite):
    """One apt download folder per container (apt fails on a lock another container holds),
    started as hard links to the suite's shared downloads (the lock file excluded)."""
    base = REPO / ".cache/apt-archives"
    path = base / f"bench-{name}"
    if not path.exists() and (base / suite).is_dir():
        subprocess.run(["cp", "-al", str(base / suite), str(path)], check=True)
        (path / "lock").unlink(missing_ok=True)
    (path / "partial").mkdir(parents=True, exist_ok=True)
    return path


def run_argv(name, suite, image=None, apt=None):
    """`docker run` of a host built like Molecule's (flags, caches) on the bench network:
    the suite's base image unless another is given; apt, its apt download folder."""
    spec = platform()
    argv = ["docker", "run", "-d", "--name", name, "--hostname", name, "--network", NETWORK,
            "--cgroupns", spec["cgroupns_mode"], "--stop-signal", spec["stop_signal"], "--shm-size", spec["shm_size"]]
    argv += [f"--cap-add={cap}" for cap in spec["capabilities"]]
    argv += [f"--security-opt={opt}" for opt in spec["security_opts"]]
    argv += [f"--tmpfs={path}" for path in spec["tmpfs"]]
    argv += ["-v", "/sys/fs/cgroup:/sys/fs/cgroup:rw", "-v", f"{apt or apt_dir(name, suite)}:/var/cache/apt/archives:rw",
             "-v", f"{REPO}/.cache/pip:/root/.cache/pip:rw",
             "-v", f"{REPO}/.cache/wheels:/var/cache/ai-infra/wheels:rw"]
    return argv + [image or f"langgraph-stack-base:{suite}", spec["command"]]


def start(hosts):
    """hosts: {name: suite}."""
    subprocess.run(["docker", "network", "create", NETWORK], capture_output=True, check=False)
    for name, suite in hosts.items():
        subprocess.run(["docker", "rm", "-f", name], capture_output=True, check=False)
        subprocess.run(run_argv(name, suite), check=True, capture_output=True)
    for name in hosts:
        for _attempt in range(120):
            state = subprocess.run(["docker", "exec", name, "systemctl", "is-system-running"],
                                   capture_output=True, text=True, check=False).stdout.strip()
            if state in ("running", "degraded"):
                break
            time.sleep(1)


def stop(names):
    for name in names:
        subprocess.run(["docker", "rm", "-f", name], capture_output=True, check=False)


def layout_hosts(count):
    """{name: suite} and {group: [names]} of a layout."""
    hosts, groups = {}, {}
    for suffix, suite, host_groups in LAYOUTS[count]:
        name = f"bench-fleet-{suffix}"
        hosts[name] = suite
        for group in host_groups:
            groups.setdefault(group, []).append(name)
    return hosts, groups


def inventory(count, directory):
    """An inventory folder with molecule/fleet's settings: its group_vars (the example
    Spheron inventory's, and what containers change), every host in molecule_hosts."""
    hosts, groups = layout_hosts(count)
    groups["molecule_hosts"] = list(hosts)
    path = pathlib.Path(directory) / f"fleet-{count}"
    path.mkdir(exist_ok=True)
    data = {"all": {
        "vars": {"ansible_connection": "community.docker.docker"},
        "children": {group: {"hosts": {host: {} for host in names}} for group, names in groups.items()},
    }}
    (path / "hosts.yml").write_text(yaml.safe_dump(data, sort_keys=False))
    if not (path / "group_vars").exists():
        (path / "group_vars").symlink_to(REPO / "molecule/fleet/group_vars")
    return path


def converge(path, log):
    started = time.monotonic()
    run = subprocess.run(
        ["ansible-playbook", "-i", str(path), str(REPO / "playbooks/site.yml")],
        capture_output=True, text=True, check=False,
        env=dict(os.environ, ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0", ANSIBLE_PIPELINING="1", **MOLECULE_ENV),
    )
    seconds = time.monotonic() - started
    log.write_text(run.stdout + run.stderr)
    if run.returncode != 0:
        sys.exit(f"site.yml failed on {path.name} (exit {run.returncode}); see {log}")
    changed = sum(int(m) for m in re.findall(r"\bchanged=(\d+)", run.stdout.split("PLAY RECAP")[-1]))
    return seconds, changed


def quick(directory):
    """Both layouts' inventories against site.yml, no host started."""
    for count in LAYOUTS:
        path = inventory(count, directory)
        run = subprocess.run(
            ["ansible-playbook", "-i", str(path), str(REPO / "playbooks/site.yml"), "--list-hosts", "--list-tasks"],
            capture_output=True, text=True, check=False, env=dict(os.environ, ANSIBLE_NOCOLOR="1", **MOLECULE_ENV),
        )
        if run.returncode != 0:
            sys.exit(f"site.yml does not list against the {count}-host inventory: {run.stderr.strip()[-2000:]}")
        hosts = set(re.findall(r"^\s+(bench-fleet-\S+)$", run.stdout, re.MULTILINE))
        if hosts != set(layout_hosts(count)[0]):
            sys.exit(f"site.yml's plays reach {sorted(hosts)} of the {count}-host layout")
        plays = len(re.findall(r"^  play #", run.stdout, re.MULTILINE))
        print(f"{count} host(s): site.yml's {plays} plays list their tasks and reach every host")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--layouts", default="2,5", help="host counts, comma-separated (default 2,5)")
    parser.add_argument("--keep", action="store_true", help="leave the containers running")
    parser.add_argument("--quick", action="store_true", help="list site.yml against both layouts; start no host")
    args = parser.parse_args()
    if not shutil.which("ansible-playbook"):
        sys.exit("ansible-playbook is not on PATH: run from the repository root with .venv/bin first on PATH")
    counts = [int(n) for n in args.layouts.split(",")]
    if any(count not in LAYOUTS for count in counts):
        sys.exit(f"--layouts takes host counts among {sorted(LAYOUTS)}")
    if args.quick:
        with tempfile.TemporaryDirectory() as directory:
            quick(directory)
        return

    logs = REPO / ".cache/bench-logs"
    logs.mkdir(parents=True, exist_ok=True)
    results = {}
    with tempfile.TemporaryDirectory() as directory:
        for count in counts:
            hosts = layout_hosts(count)[0]
            start(hosts)
            try:
                path = inventory(count, directory)
                cold = converge(path, logs / f"fleet-{count}-cold.log")
                rerun = converge(path, logs / f"fleet-{count}-rerun.log")
                results[count] = {"cold_s": cold[0], "cold_changed": cold[1], "rerun_s": rerun[0], "rerun_changed": rerun[1]}
                print(f"{count} host(s): cold {cold[0]:.0f} s ({cold[1]} changed), re-run {rerun[0]:.0f} s ({rerun[1]} changed)", flush=True)
            finally:
                if not args.keep:
                    stop(hosts)

    print()
    print(f"{'layout':<10} {'cold converge':>14} {'re-run':>8} {'re-run/cold':>12} {'changed on re-run':>18}")
    for count, r in results.items():
        print(f"{count} host(s){'':<2} {r['cold_s']:>12.0f} s {r['rerun_s']:>6.0f} s {r['rerun_s'] / r['cold_s']:>12.2f} {r['rerun_changed']:>18}")
    if 2 in results and 5 in results:
        print(f"\n5 hosts / 2 hosts, cold converge: {results[5]['cold_s'] / results[2]['cold_s']:.2f}x; "
              f"re-run: {results[5]['rerun_s'] / results[2]['rerun_s']:.2f}x")
    print(json.dumps(results))


if __name__ == "__main__":
    main()
