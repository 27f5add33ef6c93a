"""Unit tests of the checkpoint_prune module: argument handling and every failure path.

The pruning itself runs against real LangGraph checkpoints in molecule/postgresql; here
psycopg2 is replaced by a stand-in so each failure can be produced on demand.
"""

from __future__ import annotations

import types
from unittest import mock

import pytest

from ansible_collections.ai_infra.langgraph_stack.plugins.module_utils.checkpoint_prune import PruneError
from ansible_collections.ai_infra.langgraph_stack.plugins.modules import checkpoint_prune
from ansible_collections.ai_infra.langgraph_stack.tests.unit.plugins.modules.utils import (
    AnsibleFailJson,
    run_module,
)

SECRET = "s3cr3t-pw"
ROWS = {"checkpoint_writes": 8, "checkpoint_blobs": 5, "checkpoints": 4}


class FakePsycopgError(Exception):
    pass


class FakeOperationalError(FakePsycopgError):
    pass


@pytest.fixture()
def psycopg2():
    fake = types.SimpleNamespace(
        Error=FakePsycopgError,
        OperationalError=FakeOperationalError,
        connect=mock.MagicMock(name="connect"),
    )
    with mock.patch.object(checkpoint_prune, "psycopg2", fake):
        yield fake


@pytest.fixture()
def prune():
    with mock.patch.object(checkpoint_prune, "prune", return_value=(1, dict(ROWS))) as patched:
        yield patched


def fail(args):
    with pytest.raises(AnsibleFailJson) as exc:
        run_module(checkpoint_prune.main, args)
    return exc.value.result


@pytest.mark.parametrize("days", [0, -3])
def test_retention_days_must_be_positive(psycopg2, days):
    result = fail({"retention_days": days})
    assert result["msg"] == "retention_days must be greater than 0, got %d" % days
    psycopg2.connect.assert_not_called()


def test_batch_size_must_be_positive(psycopg2):
    assert "batch_size must be greater than 0" in fail({"retention_days": 30, "batch_size": 0})["msg"]


def test_retention_days_required():
    assert "retention_days" in fail({})["msg"]


def test_dsn_and_login_options_are_exclusive(psycopg2):
    result = fail({"retention_days": 30, "dsn": "postgresql://u@h/db", "login_user": "u"})
    assert "mutually exclusive" in result["msg"]


def test_missing_psycopg2_is_reported():
    with mock.patch.object(checkpoint_prune, "psycopg2", None):
        result = fail({"retention_days": 30})
    assert "psycopg2" in result["msg"]


def test_malformed_dsn_is_refused_without_echo(psycopg2):
    result = fail({"retention_days": 30, "dsn": "https://admin:%s@db.example.org" % SECRET})
    assert result["msg"] == "dsn is neither a postgresql:// URI nor key=value pairs"
    assert SECRET not in str(result)
    psycopg2.connect.assert_not_called()


def test_unreachable_server(psycopg2):
    psycopg2.connect.side_effect = FakeOperationalError(
        'connection to server at "10.0.0.9", port 5432 failed: Connection refused\n'
    )
    result = fail({"retention_days": 30, "login_host": "10.0.0.9"})
    assert result["msg"].startswith("could not connect to PostgreSQL: connection to server")


def test_wrong_credentials_never_echo_the_password(psycopg2):
    # libpq may quote the connection string back; both spellings must be redacted.
    psycopg2.connect.side_effect = FakeOperationalError(
        'invalid dsn: "postgresql://langgraph:%s@127.0.0.1/langgraph" password=%s: '
        'FATAL:  password authentication failed for user "langgraph"' % (SECRET, SECRET)
    )
    result = fail({"retention_days": 30, "dsn": "postgresql://langgraph:%s@127.0.0.1/langgraph" % SECRET})
    assert "password authentication failed" in result["msg"]
    assert SECRET not in str(result)


def test_login_options_reach_psycopg2(psycopg2, prune):
    run_module(checkpoint_prune.main, {
        "retention_days": 30, "login_host": "127.0.0.1", "login_user": "langgraph",
        "login_password": SECRET, "login_db": "lg", "login_port": 6432,
    })
    psycopg2.connect.assert_called_once_with(
        dbname="lg", port=6432, host="127.0.0.1", user="langgraph", password=SECRET
    )


def test_local_socket_by_default(psycopg2, prune):
    run_module(checkpoint_prune.main, {"retention_days": 30})
    psycopg2.connect.assert_called_once_with(dbname="langgraph", port=5432)


def test_missing_tables_fail_with_the_reason(psycopg2):
    with mock.patch.object(checkpoint_prune, "prune", side_effect=PruneError("table(s) checkpoints missing: ...")):
        result = fail({"retention_days": 30})
    assert result["msg"].startswith("table(s) checkpoints missing")
    psycopg2.connect.return_value.close.assert_called_once()


def test_database_error_during_prune(psycopg2):
    with mock.patch.object(checkpoint_prune, "prune", side_effect=FakePsycopgError("canceling statement due to lock timeout")):
        result = fail({"retention_days": 30})
    assert "lock timeout" in result["msg"]


def test_prune_result_is_returned(psycopg2, prune):
    result = run_module(checkpoint_prune.main, {"retention_days": 30, "batch_size": 100})
    assert result == {"changed": True, "threads_pruned": 1, "rows_deleted": ROWS}
    prune.assert_called_once_with(psycopg2.connect.return_value, 30, 100, dry_run=False)


def test_check_mode_is_a_dry_run(psycopg2, prune):
    run_module(checkpoint_prune.main, {"retention_days": 30, "vacuum": True}, check_mode=True)
    assert prune.call_args.kwargs["dry_run"] is True


def test_nothing_to_prune_is_not_a_change(psycopg2):
    empty = dict((table, 0) for table in ROWS)
    with mock.patch.object(checkpoint_prune, "prune", return_value=(0, empty)):
        result = run_module(checkpoint_prune.main, {"retention_days": 30})
    assert result["changed"] is False and result["threads_pruned"] == 0


def test_vacuum_runs_after_prune(psycopg2, prune):
    with mock.patch.object(checkpoint_prune, "vacuum") as vacuum:
        run_module(checkpoint_prune.main, {"retention_days": 30, "vacuum": True})
    vacuum.assert_called_once_with(psycopg2.connect.return_value)


@pytest.mark.parametrize("message, expected", [
    ("postgresql://u:pw@host/db", "postgresql://u:********@host/db"),
    ("postgres://u:pw@host:5432/db?sslmode=require", "postgres://u:********@host:5432/db?sslmode=require"),
    ("host=h password=pw user=u", "host=h password=******** user=u"),
    ("host=h password='p w' user=u", "host=h password=******** user=u"),
])
def test_redact(message, expected):
    assert checkpoint_prune.redact(message) == expected
