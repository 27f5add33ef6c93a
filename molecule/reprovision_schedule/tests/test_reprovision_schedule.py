"""Verifies reprovision_schedule on its control hosts: Ansible and the collection in the venv,
the timer, the secret's file, and real runs of reprovision.yml through the service: one
that finds nothing to do, one with an unreachable host (the unit fails after the report),
and one skipped because another run holds the lock.

The runs' inventory is written here and holds no fleet hosts (the hosts of other scenarios
are gone by now); reprovision.yml against a fleet is tested in molecule/fleet.
"""

from __future__ import annotations

import json
import os
import pathlib

import pytest
import yaml

testinfra_hosts = ["ansible://molecule_hosts"]

PROJECT = pathlib.Path(os.environ["MOLECULE_PROJECT_DIRECTORY"])
VENV = "/opt/ai-infra/reprovision"
REPORTS = "/var/lib/ai-infra-reprovision"
UNIT = "ai-infra-reprovision"
SECRET = "molecule-schedule-secret-0123456789"
INVENTORY = "/root/fleet/inventory.ini"
# TEST-NET-1 (RFC 5737): routed nowhere, so SSH to it times out (ANSIBLE_TIMEOUT=5 in the
# runs' environment, set by the scenario).
UNREACHABLE = "192.0.2.10"


def write_inventory(host, text):
    host.run_expect([0], f"mkdir -p /root/fleet && printf '%b' '{text}' > {INVENTORY}")


def run_unit(host):
    """systemctl start (waits: the service is oneshot); the run's exit code and journal.

    The journal is read from a cursor taken before the start and filtered here by the
    unit's syslog identifier: journald tags a line with the unit and invocation only when
    it can still find the writing process, which a skipped run (one line, then exit) does
    not wait for; and Debian 12's journalctl (252) returns nothing for --after-cursor
    together with a match.
    """
    host.run("systemctl reset-failed %s.service", UNIT)
    last = host.check_output("journalctl --show-cursor -n 1 -o cat --no-pager").splitlines()[-1]
    assert last.startswith("-- cursor: "), last
    cursor = last.removeprefix("-- cursor: ")
    start = host.run("systemctl start %s.service", UNIT)
    host.run_expect([0], "journalctl --sync")
    entries = [json.loads(line) for line in host.check_output(
        "journalctl -o json --no-pager --after-cursor %s", cursor).splitlines() if line]
    journal = "\n".join(message(entry) for entry in entries if entry.get("SYSLOG_IDENTIFIER") == UNIT)
    status = host.check_output("systemctl show -p ExecMainStatus --value %s.service", UNIT).strip()
    return start.rc, int(status or 0), journal


def message(entry):
    """A journal entry's text: JSON output gives a non-UTF-8 message as a list of bytes."""
    text = entry.get("MESSAGE") or ""
    return bytes(text).decode(errors="replace") if isinstance(text, list) else text


def report(host, name="last-report.json"):
    return json.loads(host.file(f"{REPORTS}/{name}").content_string)


@pytest.fixture(scope="module")
def galaxy():
    return yaml.safe_load((PROJECT / "galaxy.yml").read_text())


def test_ansible_and_the_collection_are_in_the_venv(host, galaxy):
    assert host.check_output(f"{VENV}/bin/ansible-playbook --version").startswith("ansible-playbook [core ")
    listing = host.check_output(
        f"ANSIBLE_COLLECTIONS_PATH={VENV}/collections {VENV}/bin/ansible-galaxy collection list")
    assert f"ai_infra.langgraph_stack {galaxy['version']}" in " ".join(listing.split())
    # --no-deps: what it depends on must come with the `ansible` package.
    for dependency in galaxy["dependencies"]:
        assert f"{dependency} " in listing, dependency
    # The run script names the playbook by its collection name.
    host.run_expect([0], f"ANSIBLE_COLLECTIONS_PATH={VENV}/collections {VENV}/bin/ansible-playbook "
                         "ai_infra.langgraph_stack.reprovision --syntax-check -i localhost,")


def test_the_timer_is_enabled_with_its_schedule(host):
    timer = host.service(f"{UNIT}.timer")
    assert timer.is_enabled and timer.is_running
    props = host.check_output("systemctl show %s.timer -p TimersCalendar -p RandomizedDelayUSec -p Persistent", UNIT)
    assert "OnCalendar=Mon *-*-* 03:30:00" in props
    assert "RandomizedDelayUSec=5min" in props
    assert "Persistent=yes" in props
    assert host.check_output("systemctl show -p NextElapseUSecRealtime --value %s.timer", UNIT).strip()


def test_the_secret_environment_is_root_only(host):
    secrets = host.file("/etc/ai-infra-reprovision/secrets.env")
    assert (secrets.user, secrets.group, secrets.mode) == ("root", "root", 0o600)
    assert f"MOLECULE_SCHEDULE_SECRET={SECRET}" in secrets.content_string
    # Not in the unit (world-readable) nor in what systemctl shows anyone.
    assert SECRET not in host.file(f"/etc/systemd/system/{UNIT}.service").content_string
    assert SECRET not in host.check_output("systemctl show %s.service", UNIT)
    assert 'Environment="ANSIBLE_TIMEOUT=5"' in host.file(f"/etc/systemd/system/{UNIT}.service").content_string
    # ...but the service reads it, and would fail to start without it (no "-" prefix).
    files = host.check_output("systemctl show -p EnvironmentFiles --value %s.service", UNIT)
    assert files.startswith("/etc/ai-infra-reprovision/secrets.env (ignore_errors=no)"), files


def test_a_run_with_nothing_to_do_reports_and_logs_to_the_journal(host):
    write_inventory(host, "[control]\\nlocalhost ansible_connection=local\\n")
    host.run("rm -f %s/last-report.json %s/previous-report.json", REPORTS, REPORTS)
    rc, status, journal = run_unit(host)
    assert rc == 0 and status == 0, journal[-3000:]
    assert "no hosts matched" in journal and "PLAY RECAP" in journal
    # The dumps' copy ran first (this inventory has no state host: nothing to copy).
    assert journal.index("PLAY [Copy the PostgreSQL dumps off the state host]") < journal.index("PLAY [Re-provision the fleet")
    store = host.file("/var/backups/ai-infra")
    assert store.is_directory and (store.user, store.mode) == ("root", 0o700)
    first = report(host)
    assert first["drift"] == {} and first["drift_rc"] == 0 and first["apply_rc"] is None
    assert host.file(f"{REPORTS}/drift.log").exists

    # The next run keeps this report as the previous one.
    rc, status, journal = run_unit(host)
    assert rc == 0, journal[-3000:]
    assert report(host, "previous-report.json") == first
    assert report(host)["finished"] > first["finished"]


def test_a_run_with_an_unreachable_host_fails_the_unit_after_its_report(host):
    write_inventory(host, f"[state]\\nghost ansible_host={UNREACHABLE} ansible_user=root\\n")
    try:
        rc, status, journal = run_unit(host)
        assert rc != 0 and status not in (0, 75), journal[-3000:]
        assert host.check_output("systemctl is-failed %s.service || true", UNIT).strip() == "failed"
        assert "ghost: UNREACHABLE" in journal
        # The dumps' copy failed on it too, and the re-provisioning ran all the same.
        assert "PLAY [Copy the PostgreSQL dumps off the state host]" in journal
        assert "The drift report failed" in journal
        failed = report(host)
        assert failed["drift"]["ghost"]["unreachable"] and failed["drift_rc"] != 0
        # Nothing was applied to a host the drift run could not reach.
        assert failed["apply_rc"] is None
    finally:
        host.run("systemctl reset-failed %s.service", UNIT)


def test_a_run_while_another_holds_the_lock_is_skipped(host):
    write_inventory(host, "[control]\\nlocalhost ansible_connection=local\\n")
    host.run_expect([0], f"systemd-run --unit molecule-lock-holder flock {REPORTS}/run.lock sleep 300")
    try:
        host.run_expect([0], "sleep 1")
        before = report(host)
        rc, status, journal = run_unit(host)
        # Skipped is not failed: exit 75 counts as success to systemd.
        assert rc == 0 and status == 75, journal
        assert "this one is skipped" in journal
        assert report(host) == before
        # An operator's run by hand takes the same lock.
        by_hand = host.run("/usr/local/sbin/ai-infra-reprovision")
        assert by_hand.rc == 75 and "this one is skipped" in by_hand.stdout
    finally:
        host.run("systemctl stop molecule-lock-holder")
