"""Which of the nightly dumps to restore, and which copies have expired.

The postgresql role's backup service names each dump `<database>-<UTC stamp>.dump`
(pg_backup.sh). The copy on the control host (playbooks/backup.yml) and the restore
(playbooks/restore.yml) read those names here, once: the newest complete set, a set named
by its stamp, and the copies older than the retention, which never include a database's
newest dump (a schedule that stopped copying must not delete the last copy it has).
"""

from __future__ import annotations

import datetime
import re

from ansible.errors import AnsibleFilterError

DOCUMENTATION = r"""
name: backup_dumps
short_description: The dumps to restore, or the expired copies, from the backup service's file names
description:
  - Reads file names C(<database>-<YYYYmmddTHHMMSSZ>.dump) as the postgresql role's backup service
    writes them; other names are ignored (C(.partial) files, anything else in the directory).
  - With O(action=restore), one dump per database of O(databases) - the newest of each, or the ones of
    the run named by O(stamp) - as a dict of database to file name. A database with no dump (or none of
    that stamp) fails with one sentence.
  - With O(action=expired), the names older than O(keep_days) days before O(now), except each
    database's newest, which is always kept.
options:
  _input:
    description: File names (base names or paths; only the base name is read).
    type: list
    elements: str
    required: true
  action:
    description: C(restore) or C(expired).
    type: str
    choices: [restore, expired]
    default: restore
  databases:
    description: The databases a restore needs, each of them (action restore).
    type: list
    elements: str
    default: []
  stamp:
    description: The backup run to restore, as its stamp (C(20261204T023000Z)); empty for the newest of each database.
    type: str
    default: ""
  keep_days:
    description: Days a copy is kept (action expired).
    type: int
    default: 30
  now:
    description: The time to count from, as a stamp; empty for the current UTC time.
    type: str
    default: ""
"""

EXAMPLES = r"""
restore: "{{ names | ai_infra.langgraph_stack.backup_dumps(databases=['langgraph', 'phoenix']) }}"
# {'langgraph': 'langgraph-20261204T023000Z.dump', 'phoenix': 'phoenix-20261204T023000Z.dump'}
expired: "{{ names | ai_infra.langgraph_stack.backup_dumps('expired', keep_days=30) }}"
"""

RETURN = r"""
_value:
  description: For restore, database to file name; for expired, the expired file names (base names).
  type: raw
"""

DUMP_NAME = re.compile(r"^(?P<database>.+)-(?P<stamp>\d{8}T\d{6}Z)\.dump$")
STAMP = "%Y%m%dT%H%M%SZ"


def parse_stamp(stamp: str, what: str) -> datetime.datetime:
    try:
        return datetime.datetime.strptime(stamp, STAMP).replace(tzinfo=datetime.timezone.utc)
    except (TypeError, ValueError):
        raise AnsibleFilterError(f"backup_dumps: {what} {stamp!r} is not a stamp like 20261204T023000Z") from None


def dumps_by_database(names) -> dict[str, list[tuple[str, str]]]:
    """Database -> [(stamp, base name)], oldest first."""
    if not isinstance(names, (list, tuple)):
        raise AnsibleFilterError(f"backup_dumps expects a list of file names, got {type(names).__name__}")
    found: dict[str, list[tuple[str, str]]] = {}
    for name in names:
        if not isinstance(name, str):
            raise AnsibleFilterError(f"backup_dumps: {name!r} is not a file name")
        base = name.rsplit("/", 1)[-1]
        match = DUMP_NAME.match(base)
        if match:
            found.setdefault(match["database"], []).append((match["stamp"], base))
    for entries in found.values():
        entries.sort()
    return found


def to_restore(found, databases, stamp: str) -> dict[str, str]:
    if not databases:
        raise AnsibleFilterError("backup_dumps: name the databases to restore (databases=[...])")
    if stamp:
        parse_stamp(stamp, "the stamp")
    chosen, missing = {}, []
    for database in databases:
        entries = [entry for entry in found.get(database, []) if not stamp or entry[0] == stamp]
        if entries:
            chosen[database] = entries[-1][1]
        else:
            missing.append(database)
    if missing:
        which = f"of the backup run {stamp}" if stamp else "at all"
        raise AnsibleFilterError(f"No dump {which} for the database(s) {', '.join(missing)}.")
    return chosen


def expired(found, keep_days, now: str) -> list[str]:
    try:
        keep = datetime.timedelta(days=int(keep_days))
    except (TypeError, ValueError):
        raise AnsibleFilterError(f"backup_dumps: keep_days {keep_days!r} is not a number of days") from None
    moment = parse_stamp(now, "now") if now else datetime.datetime.now(datetime.timezone.utc)
    old = []
    for entries in found.values():
        old += [base for stamp, base in entries[:-1] if moment - parse_stamp(stamp, "the stamp of " + base) > keep]
    return sorted(old)


def backup_dumps(names, action="restore", databases=None, stamp="", keep_days=30, now=""):
    found = dumps_by_database(names)
    if action == "restore":
        return to_restore(found, list(databases or []), stamp or "")
    if action == "expired":
        return expired(found, keep_days, now or "")
    raise AnsibleFilterError(f"backup_dumps: action must be restore or expired, not {action!r}")


class FilterModule:
    def filters(self):
        return {"backup_dumps": backup_dumps}
