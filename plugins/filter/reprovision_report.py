"""The decisions and the table of playbooks/reprovision.yml, from the two runs' change reports.

The drift run (site.yml --check --diff) and the apply run each write, through the
change_report callback, a record per host: C(changed) (task names), C(failed) (one line per
failure), C(unreachable). From those: which hosts to apply site.yml to, one summary line
per host, and whether (and why) the re-provisioning run as a whole failed.
"""

# Documented in reprovision_drifted.yml, reprovision_summary.yml and reprovision_failure.yml.

from __future__ import annotations

from collections.abc import Mapping

from ansible.errors import AnsibleFilterError

# Task names shown per host in the summary; the report file keeps them all.
SHOWN_TASKS = 5
EMPTY = {"changed": [], "failed": [], "unreachable": False}


def _records(hosts, which):
    """The per-host records of one run's report, each checked for the fields used here."""
    if not isinstance(hosts, Mapping):
        raise AnsibleFilterError(f"reprovision report: the {which} run's hosts must be a mapping of host names "
                                 f"to records, got {type(hosts).__name__}")
    records = {}
    for name, record in hosts.items():
        if not isinstance(record, Mapping):
            raise AnsibleFilterError(f"reprovision report: the {which} run's record of {name} is not a mapping")
        merged = {**EMPTY, **record}
        if not isinstance(merged["changed"], list) or not isinstance(merged["failed"], list):
            raise AnsibleFilterError(f"reprovision report: the {which} run's record of {name} "
                                     "must list its changed and failed tasks")
        records[str(name)] = merged
    return records


def reprovision_drifted(drift_hosts):
    """The hosts site.yml must be applied to: reachable ones with a task that would change."""
    return [name for name, record in _records(drift_hosts, "drift").items()
            if record["changed"] and not record["unreachable"]]


def reprovision_summary(drift_hosts, applied_hosts, apply_ran):
    """One line per host, sorted by name: its state, its drift and what the apply changed."""
    drift = _records(drift_hosts, "drift")
    applied = _records(applied_hosts, "apply")
    rows = []
    for name in sorted(drift):
        record, done = drift[name], applied.get(name, EMPTY)
        failures = record["failed"] + done["failed"]
        if record["unreachable"]:
            state = "UNREACHABLE"
        elif failures:
            state = f"FAILED: {failures[0]}"
        elif not record["changed"]:
            state = "no drift"
        else:
            state = "applied" if apply_ran else "not applied"
        changed = record["changed"]
        shown = ""
        if changed:
            more = ", ..." if len(changed) > SHOWN_TASKS else ""
            shown = f" ({'; '.join(changed[:SHOWN_TASKS])}{more})"
        rows.append(f"{name}: {state}; drift: {len(changed)} task(s){shown}; changed: {len(done['changed'])} task(s)")
    return rows or ["no hosts matched"]


def reprovision_failure(drift_rc, apply_rc, report_dir, pools_rc=None):
    """'' when every run succeeded; else one sentence naming the first that failed, its exit
    code and its log."""
    try:
        drift_rc = int(drift_rc)
        apply_rc = None if apply_rc is None else int(apply_rc)
        pools_rc = None if pools_rc is None else int(pools_rc)
    except (TypeError, ValueError) as error:
        raise AnsibleFilterError(f"reprovision_failure: the exit codes must be integers ({error})") from None
    if pools_rc:
        run, code, log = "Bringing the Spheron pools to their counts", pools_rc, "pools"
    elif drift_rc != 0:
        run, code, log = "The drift report", drift_rc, "drift"
    elif apply_rc:
        run, code, log = "The apply run", apply_rc, "apply"
    else:
        return ""
    return f"{run} failed (exit {code}); see the hosts above, and {report_dir}/{log}.log."


class FilterModule:
    def filters(self):
        return {
            "reprovision_drifted": reprovision_drifted,
            "reprovision_summary": reprovision_summary,
            "reprovision_failure": reprovision_failure,
        }
