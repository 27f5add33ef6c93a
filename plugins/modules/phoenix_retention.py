#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: ai_infra platform team
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: phoenix_retention
short_description: Set how many days Arize Phoenix keeps traces, on an existing installation too
version_added: 0.1.0
description:
  - Phoenix reads C(PHOENIX_DEFAULT_RETENTION_POLICY_DAYS) only when its database is first
    created; changing the variable later changes nothing. This module reads the default trace
    retention policy through Phoenix's GraphQL API and, when its rule is not "at most O(days)
    days", patches it (mutation C(patchProjectTraceRetentionPolicy)).
  - GraphQL refuses with HTTP 200 and an C(errors) list (for example "Only admin" when the token
    is a system key, not the admin secret); the module reads the body and fails with that message.
author:
  - ai_infra platform team (@ai-infra)
options:
  admin_secret:
    description: Phoenix's C(PHOENIX_ADMIN_SECRET) (changing a policy needs an admin).
    type: str
    required: true
  days:
    description: Days traces are kept. Must be more than 0.
    type: float
    required: true
  policy_id:
    description: GraphQL id of the policy; by default the one Phoenix creates at first start.
    type: str
extends_documentation_fragment:
  - ai_infra.langgraph_stack.phoenix
attributes:
  check_mode:
    description: Reports the change without making it.
    support: full
  diff_mode:
    description: Shows the rule before and after.
    support: full
"""

EXAMPLES = r"""
- name: Keep traces for 14 days
  ai_infra.langgraph_stack.phoenix_retention:
    url: http://127.0.0.1:6006
    admin_secret: "{{ phoenix_admin_secret }}"
    days: 14
"""

RETURN = r"""
before:
  description: The policy's rule before the run.
  returned: success
  type: dict
  sample: {type: TraceRetentionRuleMaxDays, max_days: 30.0, max_count: null}
after:
  description: The policy's rule after the run (as read back from Phoenix; as it would be in check mode).
  returned: success
  type: dict
  sample: {type: TraceRetentionRuleMaxDays, max_days: 14.0, max_count: null}
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.ai_infra.langgraph_stack.plugins.module_utils.phoenix_api import (
    phoenix_argument_spec,
    DEFAULT_RETENTION_POLICY_ID,
    PhoenixApiError,
    PhoenixClient,
    retention_rule,
    set_retention_days,
)

MAX_DAYS = "TraceRetentionRuleMaxDays"


def main():
    argument_spec = phoenix_argument_spec()
    argument_spec.update(
        admin_secret=dict(type="str", required=True, no_log=True),
        days=dict(type="float", required=True),
        policy_id=dict(type="str"),
    )
    module = AnsibleModule(
        argument_spec=argument_spec,
        supports_check_mode=True,
    )
    p = module.params
    if p["days"] <= 0:
        module.fail_json(msg="days must be more than 0 (Phoenix keeps traces forever only without a rule), got %s" % p["days"])
    policy_id = p["policy_id"] or DEFAULT_RETENTION_POLICY_ID
    try:
        client = PhoenixClient(p["url"], p["admin_secret"], p["timeout"], p["validate_certs"])
        before = retention_rule(client, policy_id)
        wanted = {"type": MAX_DAYS, "max_days": float(p["days"]), "max_count": None}
        current = dict(before, max_days=float(before["max_days"]) if before["max_days"] is not None else None)
        if current == wanted:
            module.exit_json(changed=False, before=before, after=before)
        after = wanted
        if not module.check_mode:
            set_retention_days(client, p["days"], policy_id)
            after = retention_rule(client, policy_id)
            if after.get("max_days") is None or float(after["max_days"]) != float(p["days"]):
                module.fail_json(msg="Phoenix accepted the change but reports %s" % (after,), before=before, after=after)
    except PhoenixApiError as exc:
        module.fail_json(msg=str(exc))
    module.exit_json(changed=True, before=before, after=after, diff={"before": before, "after": after})


if __name__ == "__main__":
    main()
