from __future__ import annotations

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.ai_infra.langgraph_stack.plugins.filter.backup_dumps import FilterModule

backup_dumps = FilterModule().filters()["backup_dumps"]

# What the backup directory holds after three nights (names as pg_backup.sh writes them),
# with a run in progress and a file an operator left there.
NAMES = [
    "langgraph-20261202T023000Z.dump", "phoenix-20261202T023000Z.dump",
    "langgraph-20261203T023000Z.dump", "phoenix-20261203T023000Z.dump",
    "/var/backups/postgresql/langgraph-20261204T023000Z.dump",
    "phoenix-20261204T023000Z.dump.partial",
    "notes.txt",
]


def test_restore_picks_each_databases_newest_complete_dump():
    assert backup_dumps(NAMES, databases=["langgraph", "phoenix"]) == {
        "langgraph": "langgraph-20261204T023000Z.dump",
        # Tonight's phoenix dump is still .partial: the newest complete one is last night's.
        "phoenix": "phoenix-20261203T023000Z.dump",
    }


def test_restore_of_a_named_run():
    assert backup_dumps(NAMES, databases=["langgraph", "phoenix"], stamp="20261202T023000Z") == {
        "langgraph": "langgraph-20261202T023000Z.dump", "phoenix": "phoenix-20261202T023000Z.dump"}


def test_a_database_whose_name_has_dashes():
    assert backup_dumps(["my-app-db-20261204T023000Z.dump"], databases=["my-app-db"]) == {
        "my-app-db": "my-app-db-20261204T023000Z.dump"}


@pytest.mark.parametrize("names, stamp, message", [
    ([], "", "No dump at all for the database(s) langgraph, phoenix."),
    (NAMES, "20261204T023000Z", "No dump of the backup run 20261204T023000Z for the database(s) phoenix."),
    (NAMES, "20261130T023000Z", "No dump of the backup run 20261130T023000Z for the database(s) langgraph, phoenix."),
    (NAMES, "yesterday", "backup_dumps: the stamp 'yesterday' is not a stamp like 20261204T023000Z"),
])
def test_restore_says_what_is_missing(names, stamp, message):
    with pytest.raises(AnsibleFilterError) as error:
        backup_dumps(names, databases=["langgraph", "phoenix"], stamp=stamp)
    assert str(error.value) == message


def test_expired_copies_are_older_than_the_retention_and_never_a_databases_newest():
    assert backup_dumps(NAMES, "expired", keep_days=2, now="20261204T120000Z") == [
        "langgraph-20261202T023000Z.dump", "phoenix-20261202T023000Z.dump"]
    # Copying stopped long ago: every copy is old, yet each database keeps its newest.
    assert backup_dumps(NAMES, "expired", keep_days=30, now="20270301T000000Z") == [
        "langgraph-20261202T023000Z.dump", "langgraph-20261203T023000Z.dump", "phoenix-20261202T023000Z.dump"]
    assert backup_dumps(NAMES, "expired", keep_days=30, now="20261204T120000Z") == []


def test_expired_counts_from_the_current_time_by_default():
    assert backup_dumps(["langgraph-20000101T000000Z.dump", "langgraph-20000102T000000Z.dump"], "expired") == [
        "langgraph-20000101T000000Z.dump"]


@pytest.mark.parametrize("call, message", [
    (lambda: backup_dumps("langgraph-20261204T023000Z.dump"), "backup_dumps expects a list of file names, got str"),
    (lambda: backup_dumps([7]), "backup_dumps: 7 is not a file name"),
    (lambda: backup_dumps(NAMES), "backup_dumps: name the databases to restore (databases=[...])"),
    (lambda: backup_dumps(NAMES, "delete"), "backup_dumps: action must be restore or expired, not 'delete'"),
    (lambda: backup_dumps(NAMES, "expired", keep_days="a week"), "backup_dumps: keep_days 'a week' is not a number of days"),
    (lambda: backup_dumps(NAMES, "expired", now="now"), "backup_dumps: now 'now' is not a stamp like 20261204T023000Z"),
])
def test_bad_input_is_one_sentence(call, message):
    with pytest.raises(AnsibleFilterError) as error:
        call()
    assert str(error.value) == message
