#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: ai_infra platform team
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: checkpoint_prune
short_description: Remove old LangGraph threads from the PostgreSQL checkpointer's tables
version_added: 0.1.0
description:
  - Removes every thread whose newest checkpoint (C(checkpoint->>'ts'), as LangGraph records it) is
    older than O(retention_days), from C(checkpoints), C(checkpoint_blobs) and C(checkpoint_writes),
    in batches of O(batch_size) threads, one short transaction per batch.
  - Runs the same code as the prune timer that the P(ai_infra.langgraph_stack.postgresql#role)
    role installs.
  - When the database also holds the agent server's own tables (Aegra's C(thread) and C(runs)), a stale
    thread's row goes with its checkpoints in the same transaction (its runs, crons and TTL rows
    cascade), a thread row without checkpoints is pruned once its C(updated_at) is older than the
    cutoff, and a thread with a run pending or running is never pruned.
  - In check mode nothing is deleted and the counts say what would be.
author:
  - ai_infra platform team (@ai-infra)
requirements:
  - psycopg2 on the host that runs the module (Debian/Ubuntu package C(python3-psycopg2)).
options:
  dsn:
    description:
      - libpq connection string, as a URI (C(postgresql://user:password@host:5432/db)) or as
        C(key=value) pairs. Never logged.
      - Mutually exclusive with the O(login_host) family.
    type: str
  login_host:
    description: Host to connect to. Empty connects through the local Unix socket.
    type: str
    default: ""
  login_port:
    description: Port to connect to.
    type: int
    default: 5432
  login_user:
    description: Role to connect as. Empty means the OS user running the module.
    type: str
    default: ""
  login_password:
    description: Password of O(login_user).
    type: str
    default: ""
  login_db:
    description: Database holding the checkpoint tables.
    type: str
    default: langgraph
  retention_days:
    description: Threads with no checkpoint for more than this many days are removed. Must be greater than 0.
    type: int
    required: true
  batch_size:
    description: Threads removed per transaction. Smaller batches hold locks for less time.
    type: int
    default: 500
  vacuum:
    description: Run C(VACUUM (ANALYZE)) on the three tables afterwards (not in check mode).
    type: bool
    default: false
attributes:
  check_mode:
    description: Deletes nothing; RV(threads_pruned) and RV(rows_deleted) say what would be removed.
    support: full
  diff_mode:
    description: No diff is produced.
    support: none
notes:
  - Connection failures, wrong credentials and a database without the checkpoint tables fail with a
    message; credentials are never part of it.
"""

EXAMPLES = r"""
- name: Prune threads idle for more than 30 days
  ai_infra.langgraph_stack.checkpoint_prune:
    login_db: langgraph
    retention_days: 30
  become: true
  become_user: postgres

- name: See what a 7-day retention would remove, over TCP
  ai_infra.langgraph_stack.checkpoint_prune:
    dsn: "postgresql://langgraph:{{ vault_postgresql_langgraph_password }}@127.0.0.1:5432/langgraph"
    retention_days: 7
  check_mode: true
  register: would_prune
"""

RETURN = r"""
threads_pruned:
  description: Threads removed (in check mode, threads that would be).
  returned: success
  type: int
  sample: 1204
rows_deleted:
  description: Rows removed per table (in check mode, rows that would be).
  returned: success
  type: dict
  sample: {"checkpoints": 24080, "checkpoint_blobs": 9632, "checkpoint_writes": 48160}
  contains:
    checkpoints:
      description: Rows removed from C(checkpoints).
      type: int
    checkpoint_blobs:
      description: Rows removed from C(checkpoint_blobs).
      type: int
    checkpoint_writes:
      description: Rows removed from C(checkpoint_writes).
      type: int
    thread:
      description: Rows removed from the agent server's C(thread) table (their C(runs), C(crons) and
        C(thread_ttl) rows go with them); only when the database has Aegra's tables.
      type: int
      returned: when the database has the agent server's tables
"""

import re
import traceback

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

from ansible_collections.ai_infra.langgraph_stack.plugins.module_utils.checkpoint_prune import (
    PruneError,
    prune,
    vacuum,
)

PSYCOPG2_IMPORT_ERROR = None
try:
    import psycopg2
except ImportError:
    psycopg2 = None
    PSYCOPG2_IMPORT_ERROR = traceback.format_exc()

# URI credentials and password=... pairs, as libpq error messages may quote the DSN.
_SECRETS = (
    (re.compile(r"(postgres(?:ql)?://[^:/@\s]*:)[^@\s]*@"), r"\1********@"),
    (re.compile(r"(password\s*=\s*)('[^']*'|\S+)"), r"\1********"),
)


def redact(message):
    for pattern, replacement in _SECRETS:
        message = pattern.sub(replacement, message)
    return message.strip()


def connect(params):
    if params["dsn"]:
        if not re.match(r"^(postgres(?:ql)?://|\s*\w+\s*=)", params["dsn"]):
            raise PruneError("dsn is neither a postgresql:// URI nor key=value pairs")
        return psycopg2.connect(params["dsn"])
    kwargs = {"dbname": params["login_db"], "port": params["login_port"]}
    for key, option in (("host", "login_host"), ("user", "login_user"), ("password", "login_password")):
        if params[option]:
            kwargs[key] = params[option]
    return psycopg2.connect(**kwargs)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            dsn=dict(type="str", no_log=True),
            login_host=dict(type="str", default=""),
            login_port=dict(type="int", default=5432),
            login_user=dict(type="str", default=""),
            login_password=dict(type="str", default="", no_log=True),
            login_db=dict(type="str", default="langgraph"),
            retention_days=dict(type="int", required=True),
            batch_size=dict(type="int", default=500),
            vacuum=dict(type="bool", default=False),
        ),
        mutually_exclusive=[("dsn", "login_host"), ("dsn", "login_user"), ("dsn", "login_password")],
        supports_check_mode=True,
    )
    params = module.params
    if params["retention_days"] <= 0:
        module.fail_json(msg="retention_days must be greater than 0, got %d" % params["retention_days"])
    if params["batch_size"] <= 0:
        module.fail_json(msg="batch_size must be greater than 0, got %d" % params["batch_size"])
    if psycopg2 is None:
        module.fail_json(msg=missing_required_lib("psycopg2"), exception=PSYCOPG2_IMPORT_ERROR)

    try:
        conn = connect(params)
    except PruneError as exc:
        module.fail_json(msg=str(exc))
    except psycopg2.Error as exc:
        module.fail_json(msg="could not connect to PostgreSQL: %s" % redact(str(exc)))

    try:
        threads, rows = prune(conn, params["retention_days"], params["batch_size"], dry_run=module.check_mode)
        if params["vacuum"] and not module.check_mode:
            vacuum(conn)
    except PruneError as exc:
        module.fail_json(msg=str(exc))
    except psycopg2.Error as exc:
        module.fail_json(msg="pruning failed, nothing more was deleted: %s" % redact(str(exc)))
    finally:
        conn.close()

    module.exit_json(changed=sum(rows.values()) > 0, threads_pruned=threads, rows_deleted=rows)


if __name__ == "__main__":
    main()
