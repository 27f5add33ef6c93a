#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: ai_infra platform team
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: phoenix_api_key
short_description: Keep one named Arize Phoenix system API key, created once, stored in a root-only file
version_added: 0.1.0
description:
  - Phoenix shows a system API key once, when it is created, and lists keys only by name
    afterwards. This module keeps one key of a given O(name) and its value in O(key_file) on the
    managed host (mode 0600), so later runs find it again without creating another.
  - Nothing changes when O(key_file) holds a key that Phoenix accepts and a key of that name
    exists. Otherwise (first run, the file lost, or the key refused, for example after
    C(PHOENIX_SECRET) changed) every key of that name is deleted and a new one is created and
    written to O(key_file).
  - The key's value is never returned or logged; read O(key_file) (for example with
    M(ansible.builtin.slurp) and C(no_log)) to hand it to the services that send traces.
author:
  - ai_infra platform team (@ai-infra)
options:
  admin_secret:
    description: Phoenix's C(PHOENIX_ADMIN_SECRET); only it (or an admin's session) may create system keys.
    type: str
    required: true
  name:
    description: Name of the system key.
    type: str
    required: true
  description:
    description: Description stored with a newly created key.
    type: str
  key_file:
    description: File on the managed host that holds the key's value (written 0600, owner root).
    type: path
    required: true
extends_documentation_fragment:
  - ai_infra.langgraph_stack.phoenix
attributes:
  check_mode:
    description: Reports whether a key would be created, and creates none.
    support: full
  diff_mode:
    description: No diff is produced.
    support: none
"""

EXAMPLES = r"""
- name: Keep the ingestion key of the LangGraph servers
  ai_infra.langgraph_stack.phoenix_api_key:
    url: http://127.0.0.1:6006
    admin_secret: "{{ phoenix_admin_secret }}"
    name: langgraph-servers
    key_file: /etc/phoenix/ingestion.key
"""

RETURN = r"""
id:
  description: Phoenix's id of the key (a GraphQL global id); null in check mode when one would be created.
  returned: always
  type: str
  sample: U3lzdGVtQXBpS2V5OjE=
created:
  description: Whether a new key was created (and written to key_file).
  returned: always
  type: bool
deleted:
  description: Keys of that name that were deleted because their value was lost or refused.
  returned: always
  type: int
reason:
  description: Why a key was (or would be) created, or that the stored one is still good.
  returned: always
  type: str
  sample: the stored key is accepted
"""

import os

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.ai_infra.langgraph_stack.plugins.module_utils.phoenix_api import (
    phoenix_argument_spec,
    PhoenixApiError,
    PhoenixClient,
    create_system_key,
    delete_system_key,
    key_works,
    system_keys,
)


def read_stored_key(module, path):
    if not os.path.exists(path):
        return None
    try:
        with open(path) as handle:
            value = handle.read().strip()
    except (IOError, OSError) as exc:
        module.fail_json(msg="cannot read key_file %s: %s" % (path, exc))
    if value:
        module.no_log_values.add(value)
    return value or None


def write_key(module, path, value):
    directory = os.path.dirname(path) or "."
    if not os.path.isdir(directory):
        module.fail_json(msg="the directory of key_file does not exist: %s" % directory)
    tmp = path + ".tmp"
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(value + "\n")
        os.chmod(tmp, 0o600)
        os.rename(tmp, path)
    except (IOError, OSError) as exc:
        module.fail_json(msg="cannot write key_file %s: %s" % (path, exc))


def main():
    argument_spec = phoenix_argument_spec()
    argument_spec.update(
        admin_secret=dict(type="str", required=True, no_log=True),
        name=dict(type="str", required=True),
        description=dict(type="str"),
        key_file=dict(type="path", required=True),
    )
    module = AnsibleModule(
        argument_spec=argument_spec,
        supports_check_mode=True,
    )
    p = module.params
    if not p["name"].strip():
        module.fail_json(msg="name must not be empty")
    result = dict(changed=False, id=None, created=False, deleted=0, reason="")
    try:
        client = PhoenixClient(p["url"], p["admin_secret"], p["timeout"], p["validate_certs"])
        same_name = [key for key in system_keys(client) if key["name"] == p["name"]]
        stored = read_stored_key(module, p["key_file"])
        if stored and same_name and key_works(p["url"], stored, p["timeout"], p["validate_certs"]):
            result.update(id=same_name[0]["id"], reason="the stored key is accepted")
            module.exit_json(**result)
        if not same_name:
            result["reason"] = "no system key named %s yet" % p["name"]
        elif not stored:
            result["reason"] = "the key's value is not in %s (it is shown only once): replacing it" % p["key_file"]
        else:
            result["reason"] = "Phoenix refuses the stored key (was PHOENIX_SECRET changed?): replacing it"
        result["changed"] = True
        if module.check_mode:
            module.exit_json(**result)
        for key in same_name:
            delete_system_key(client, key["id"])
        result["deleted"] = len(same_name)
        key_id, value = create_system_key(client, p["name"], p["description"])
        module.no_log_values.add(value)
        write_key(module, p["key_file"], value)
        result.update(id=key_id, created=True)
    except PhoenixApiError as exc:
        module.fail_json(msg=str(exc), **result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
