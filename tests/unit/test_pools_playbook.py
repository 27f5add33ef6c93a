"""playbooks/pools.yml for real (ansible-playbook, the spheron inventory plugin, the
spheron_pools filter and the spheron_instance module) against the local stand-in for
Spheron's API of the module's tests, which keeps the account's deployments."""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys

import pytest

from ansible_collections.ai_infra.langgraph_stack.tests.unit.plugins.modules.test_spheron_instance import KEY, FakeSpheron, handler_for
from ansible_collections.ai_infra.langgraph_stack.tests.unit.plugins.modules.utils import http_server

COLLECTION = pathlib.Path(__file__).resolve().parents[2]
POOLS = {"ondemand": {"count": 1, "gpu_type": "H100-PCIe", "instance_type": "DEDICATED"},
         "spot": {"count": 2, "gpu_type": "H100-PCIe", "instance_type": "SPOT", "region": "FIN-01"}}


@pytest.fixture
def api():
    state = FakeSpheron()
    # The account: a state host and a lab machine the collection did not launch, a spot
    # worker Spheron reclaimed (prod-gpu-spot-1 is EVICTED in the stand-in), one of a pool
    # since made smaller and one of a pool since removed.
    state.deployments += [
        {"id": "dep-lab", "name": "lab-gpu-1", "status": "RUNNING", "pricePerHour": 0.5, "ipAddress": "127.0.0.1"},
        {"id": "dep-spot-3", "name": "prod-gpu-spot-3", "status": "RUNNING", "instanceType": "SPOT", "gpuType": "H100-PCIe",
         "gpuCount": 1, "pricePerHour": 1.49, "ipAddress": "127.0.0.1"},
        {"id": "dep-old-1", "name": "prod-gpu-old-1", "status": "RUNNING", "instanceType": "SPOT", "gpuType": "L40S",
         "gpuCount": 1, "pricePerHour": 0.8, "ipAddress": "127.0.0.1"},
        # Still starting, no address yet: listed by the API, not yet a host.
        {"id": "dep-new", "name": "prod-gpu-spot-2", "status": "DEPLOYING", "instanceType": "SPOT", "gpuType": "H100-PCIe",
         "gpuCount": 1, "pricePerHour": 1.49},
    ]
    with http_server(handler_for(state)) as url:
        state.url = url
        state.port = int(url.rsplit(":", 1)[1])
        yield state


# ansible-playbook from the ansible-core this test runs with (ansible-test's may not be installed as a package).
PROGRAM = "import sys; from ansible.cli.playbook import main; sys.argv[0] = 'ansible-playbook'; main()"


def run(api, tmp_path, playbook="pools.yml", args=(), **extra):
    (tmp_path / "spheron.yml").write_text(json.dumps({"plugin": "ai_infra.langgraph_stack.spheron"}))
    (tmp_path / "ansible.cfg").write_text("[defaults]\n")  # not the repository's (its callbacks need other collections)
    settings = {"spheron_fleet_prefix": "prod", "spheron_pools": POOLS, "spheron_ssh_key_id": "key-1",
                "spheron_ssh_port": api.port, "spheron_launch_timeout": 30, "ansible_python_interpreter": sys.executable}
    settings.update(extra)
    (tmp_path / "vars.json").write_text(json.dumps(settings))
    env = dict(os.environ, SPHERON_API_KEY=KEY, SPHERON_API_URL=api.url, ANSIBLE_NOCOLOR="1",
               ANSIBLE_COLLECTIONS_PATH=str(COLLECTION.parents[2]), ANSIBLE_INVENTORY_ENABLED="ai_infra.langgraph_stack.spheron",
               ANSIBLE_LOCALHOST_WARNING="false", ANSIBLE_CONFIG=str(tmp_path / "ansible.cfg"))
    return subprocess.run([sys.executable, "-c", PROGRAM, "-i", str(tmp_path / "spheron.yml"),
                           str(COLLECTION / "playbooks" / playbook), "-e", "@" + str(tmp_path / "vars.json"), *args],
                          capture_output=True, text=True, env=env, timeout=300, check=False)


def test_pools_launch_what_they_lack_and_remove_only_the_collections_own(api, tmp_path):
    run_ = run(api, tmp_path, spheron_max_fleet_hourly_usd=20)
    output = run_.stdout + run_.stderr
    assert run_.returncode == 0, output[-3000:]
    # The reclaimed spot worker is launched again; the one still starting is waited for, not doubled.
    assert sorted(body["name"] for body in api.posted) == ["prod-gpu-ondemand-1", "prod-gpu-spot-1"]
    offers = {body["name"]: body["offerId"] for body in api.posted}
    assert offers == {"prod-gpu-ondemand-1": "off-h100-dedicated", "prod-gpu-spot-1": "off-h100-spot-fin"}
    assert sorted(path for method, path, query in api.requests if method == "DELETE") == [
        "/api/deployments/dep-old-1", "/api/deployments/dep-spot-3"]
    status = {d["name"]: d["status"] for d in api.deployments if d["status"] not in ("EVICTED",)}
    assert status == {"prod-state-1": "RUNNING", "lab-gpu-1": "RUNNING", "prod-gpu-spot-3": "TERMINATED",
                      "prod-gpu-old-1": "TERMINATED", "prod-gpu-spot-2": "RUNNING", "prod-gpu-ondemand-1": "RUNNING",
                      "prod-gpu-spot-1": "RUNNING"}
    assert "removed prod-gpu-old-1, prod-gpu-spot-3" in " ".join(output.split())

    # At its counts, a second run launches and removes nothing.
    again = run(api, tmp_path, spheron_max_fleet_hourly_usd=20)
    assert again.returncode == 0, (again.stdout + again.stderr)[-3000:]
    assert len(api.posted) == 2 and len([m for m, p, q in api.requests if m == "DELETE"]) == 2
    assert "Launched none; removed none" in " ".join(again.stdout.split())


def test_the_spend_ceiling_stops_a_launch(api, tmp_path):
    failed = run(api, tmp_path, spheron_max_fleet_hourly_usd=5)
    assert failed.returncode != 0
    assert "over max_fleet_hourly_usd 5.00" in " ".join((failed.stdout + failed.stderr).split())
    assert [body["name"] for body in api.posted] == []


def test_reprovision_brings_the_pools_to_their_counts_before_its_drift_run(api, tmp_path):
    """reprovision.yml runs pools.yml first (here with a site playbook that only says hello,
    and so no machine to reach) and keeps its exit code and its log in the report."""
    (tmp_path / "site.yml").write_text("- hosts: localhost\n  gather_facts: false\n  tasks:\n"
                                       "    - ansible.builtin.debug: {msg: hello}\n")
    wrapper = tmp_path / "ansible-playbook"
    wrapper.write_text(f"#!/bin/sh\nexec {sys.executable} -c \"{PROGRAM}\" -e @{tmp_path / 'vars.json'} \"$@\"\n")
    wrapper.chmod(0o755)
    reports = tmp_path / "reports"
    done = run(api, tmp_path, "reprovision.yml", spheron_max_fleet_hourly_usd=20, reprovision_report_dir=str(reports),
               reprovision_site_playbook=str(tmp_path / "site.yml"), reprovision_ansible_playbook=str(wrapper))
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
    report = json.loads((reports / "last-report.json").read_text())
    assert report["pools_rc"] == 0 and report["drift_rc"] == 0, report
    assert "Launched prod-gpu-ondemand-1, prod-gpu-spot-1" in " ".join((reports / "pools.log").read_text().split())
    assert sorted(body["name"] for body in api.posted) == ["prod-gpu-ondemand-1", "prod-gpu-spot-1"]

    # A pools run that fails (the ceiling) fails the whole run, after the drift report.
    failed = run(api, tmp_path, "reprovision.yml", spheron_max_fleet_hourly_usd=1, reprovision_report_dir=str(reports),
                 reprovision_site_playbook=str(tmp_path / "site.yml"), reprovision_ansible_playbook=str(wrapper),
                 spheron_pools={"spot": {"count": 3, "gpu_type": "H100-PCIe", "instance_type": "SPOT"}})
    assert failed.returncode != 0
    report = json.loads((reports / "last-report.json").read_text())
    assert report["pools_rc"] != 0 and report["drift_rc"] == 0
    assert "Bringing the Spheron pools to their counts failed" in " ".join((failed.stdout + failed.stderr).split())
