#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: ai_infra platform team
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: spheron_instance
short_description: Launch or remove one Spheron GPU instance, by name, under a ceiling on the fleet's hourly spend
version_added: 0.1.0
description:
  - Finds the account's deployment of O(name) (C(GET /api/deployments); deployments whose status says
    they hold no machine, such as C(terminated) or C(evicted), do not count).
  - With O(state=present) and none found, chooses the cheapest available offer
    (C(GET /api/gpu-offers)) of O(gpu_count) x O(gpu_type) as O(instance_type) (in O(region) when
    set, from O(provider) when set), refuses it when the account's live deployments plus it would
    cost more per hour than O(max_fleet_hourly_usd), launches it (C(POST /api/deployments)) and, with
    O(wait), waits until it runs with an address and its SSH port answers.
  - With O(state=absent), removes the deployment of that name (C(DELETE /api/deployments/{id})). Only
    the named deployment is ever touched.
  - Spheron documents the requests but not its answers; every field read from them is named once in
    C(plugins/module_utils/spheron_api.py), shared with the spheron inventory plugin. The C(name)
    field of the launch request is not in Spheron's documented list; the module sends it and finds
    the instance by it.
  - Runs on the controller (delegated to C(localhost)); needs no library beyond Ansible.
author:
  - ai_infra platform team (@ai-infra)
options:
  api_key:
    description: Spheron API key (keep it in ansible-vault); when not set, the environment variable C(SPHERON_API_KEY).
    type: str
    required: true
  api_url:
    description: Base URL of Spheron's API; when not set, the environment variable C(SPHERON_API_URL), else the default.
    type: str
    default: https://app.spheron.ai
  name:
    description: The instance's name; the collection's groups come from its words (see the spheron inventory plugin's C(name_groups)).
    type: str
    required: true
  state:
    description: Whether the instance should exist.
    type: str
    choices: [present, absent]
    default: present
  gpu_type:
    description: GPU type as Spheron names it (C(H100-SXM5), C(L40S)); compared without case. Required to launch.
    type: str
  gpu_count:
    description: GPUs in the instance.
    type: int
    default: 1
  instance_type:
    description: C(SPOT) (cheaper, may be reclaimed) or C(DEDICATED).
    type: str
    choices: [SPOT, DEDICATED]
    default: DEDICATED
  region:
    description: Only offers in this region; empty for any.
    type: str
    default: ""
  provider:
    description: Only offers of this provider; empty for any.
    type: str
    default: ""
  operating_system:
    description: The OS image.
    type: str
    default: ubuntu-22.04
  ssh_key_id:
    description: Id of the SSH key (registered with Spheron) the instance accepts. Required to launch.
    type: str
  max_fleet_hourly_usd:
    description:
      - Ceiling on what the account's live deployments cost per hour, this one included; a launch
        that would pass it is refused. 0 for no ceiling.
    type: float
    default: 0
  wait:
    description: Wait until a launched (or found) instance runs, has an address and answers on its SSH port.
    type: bool
    default: true
  wait_timeout:
    description: Seconds to wait.
    type: int
    default: 900
  ssh_port:
    description: The port O(wait) checks.
    type: int
    default: 22
  poll_interval:
    description: Seconds between two looks while waiting.
    type: int
    default: 10
  timeout:
    description: Seconds for each API request.
    type: int
    default: 30
  validate_certs:
    description: Verify the API's TLS certificate.
    type: bool
    default: true
attributes:
  check_mode:
    description: Says whether it would launch (and which offer, at what price) or remove; does neither.
    support: full
  diff_mode:
    description: No diff is produced.
    support: none
"""

EXAMPLES = r"""
- name: Two spot H100 workers, never more than 10 USD/h for the whole account
  ai_infra.langgraph_stack.spheron_instance:
    name: "prod-gpu-spot-{{ item }}"
    gpu_type: H100-PCIe
    instance_type: SPOT
    ssh_key_id: "{{ spheron_ssh_key_id }}"
    max_fleet_hourly_usd: 10
  loop: [1, 2]
  delegate_to: localhost
  register: launched

- name: Remove a worker the fleet no longer wants
  ai_infra.langgraph_stack.spheron_instance:
    name: prod-gpu-spot-3
    state: absent
  delegate_to: localhost
"""

RETURN = r"""
instance:
  description: The instance's host variables (as the spheron inventory plugin sets them); empty when absent.
  returned: always
  type: dict
  sample: {spheron_id: dep-3c4d, spheron_name: prod-gpu-spot-1, spheron_status: RUNNING, ansible_host: 203.0.113.21,
           gpu_type: H100-PCIe, gpu_count: 1, gpu_hourly_usd: 1.49, gpu_instance_type: 1x-h100-pcie-spot}
offer:
  description: The offer launched (or, in check mode, that would be); empty when nothing was launched.
  returned: always
  type: dict
  sample: {offer_id: off-77, provider: data-crunch, gpu_type: H100-PCIe, gpu_count: 1, region: FIN-01,
           instance_type: SPOT, hourly_usd: 1.49, available: true}
fleet_hourly_usd:
  description: What the account's live deployments cost per hour after this task (in check mode, would).
  returned: always
  type: float
"""

import socket
import time

from ansible.module_utils.basic import AnsibleModule, env_fallback

from ansible_collections.ai_infra.langgraph_stack.plugins.module_utils.spheron_api import (
    SpheronApiError,
    SpheronClient,
    host_vars,
    is_live,
)


def fleet_cost(deployments):
    return round(sum(host_vars(d).get("gpu_hourly_usd", 0.0) for d in deployments if is_live(d)), 4)


def find(deployments, name):
    found = [d for d in deployments if d.get("name") == name and is_live(d)]
    if len(found) > 1:
        raise SpheronApiError("%d live deployments are named %s (%s): remove the extra ones by hand"
                              % (len(found), name, ", ".join(str(d["id"]) for d in found)))
    return found[0] if found else None


def choose_offer(offers, p):
    """The cheapest offer that fits, or one sentence that says why none does."""
    wanted = p["gpu_type"].lower()
    of_type = [o for o in offers if str(o["gpu_type"]).lower() == wanted]
    if not of_type:
        named = sorted(set(str(o["gpu_type"]) for o in offers))
        raise SpheronApiError("Spheron offers no GPU type %s%s" % (
            p["gpu_type"], " (it offers %s)" % ", ".join(named[:12]) if named else ""))
    fitting = [o for o in of_type
               if o["gpu_count"] == p["gpu_count"]
               and (not o["instance_type"] or o["instance_type"] == p["instance_type"])
               and (not p["region"] or str(o["region"]).lower() == p["region"].lower())
               and (not p["provider"] or str(o["provider"]).lower() == p["provider"].lower())
               and o["available"]]
    if not fitting:
        where = " in %s" % p["region"] if p["region"] else ""
        raise SpheronApiError("no capacity: no available %s offer of %d x %s%s%s now (%d offer(s) of that type elsewhere or taken)"
                              % (p["instance_type"], p["gpu_count"], p["gpu_type"], where,
                                 " from %s" % p["provider"] if p["provider"] else "", len(of_type)))
    return min(fitting, key=lambda o: o["hourly_usd"])


def launch_body(chosen, p):
    """The launch request: the fields Spheron documents for POST /api/deployments, and the name."""
    return {
        "provider": chosen["provider"],
        "offerId": chosen["offer_id"],
        "gpuType": chosen["gpu_type"],
        "gpuCount": p["gpu_count"],
        "region": chosen["region"],
        "operatingSystem": p["operating_system"],
        "instanceType": p["instance_type"],
        "sshKeyId": p["ssh_key_id"],
        "name": p["name"],
    }


def ssh_answers(address, port, timeout):
    try:
        socket.create_connection((address, port), timeout=timeout).close()
        return True
    except (socket.error, socket.timeout, ValueError):
        return False


def wait_until_serving(client, deployment_id, p):
    """The deployment once it runs, has an address and its SSH port answers."""
    deadline = time.time() + p["wait_timeout"]
    status, address = "unknown", None
    while True:
        current = next((d for d in client.deployments() if str(d["id"]) == str(deployment_id)), None)
        if current is None:
            raise SpheronApiError("deployment %s of %s disappeared while it started (reclaimed or refused by the provider)"
                                  % (deployment_id, p["name"]))
        status, address = str(current.get("status", "")), host_vars(current).get("ansible_host")
        if not is_live(current):
            raise SpheronApiError("deployment %s of %s ended as %s while it started" % (deployment_id, p["name"], status))
        if status.lower() == "running" and address and ssh_answers(address, p["ssh_port"], min(5, p["poll_interval"] or 5)):
            return current
        if time.time() >= deadline:
            raise SpheronApiError("timed out after %d s waiting for %s (deployment %s, status %s%s) to run and answer on SSH"
                                  % (p["wait_timeout"], p["name"], deployment_id, status,
                                     ", address %s" % address if address else ", no address yet"))
        time.sleep(p["poll_interval"])


def run(module):
    p = module.params
    result = {"changed": False, "instance": {}, "offer": {}, "fleet_hourly_usd": 0.0}
    client = SpheronClient(p["api_url"], p["api_key"], p["timeout"], p["validate_certs"])
    deployments = client.deployments()
    current = find(deployments, p["name"])
    result["fleet_hourly_usd"] = fleet_cost(deployments)

    if p["state"] == "absent":
        if current is None:
            return result
        result["changed"] = True
        result["instance"] = host_vars(current)
        result["fleet_hourly_usd"] = round(result["fleet_hourly_usd"] - result["instance"].get("gpu_hourly_usd", 0.0), 4)
        if not module.check_mode:
            client.terminate(current["id"])
        return result

    if current is not None:
        if p["wait"] and not module.check_mode:
            current = wait_until_serving(client, current["id"], p)
        result["instance"] = host_vars(current)
        return result

    missing = [name for name in ("gpu_type", "ssh_key_id") if not p[name]]
    if missing:
        raise SpheronApiError("%s is not launched yet; launching it needs %s" % (p["name"], " and ".join(missing)))
    if p["gpu_count"] < 1:
        raise SpheronApiError("gpu_count must be at least 1, got %d" % p["gpu_count"])
    chosen = choose_offer(client.offers(p["gpu_type"], p["instance_type"]), p)
    total = round(result["fleet_hourly_usd"] + chosen["hourly_usd"], 4)
    if p["max_fleet_hourly_usd"] > 0 and total > p["max_fleet_hourly_usd"]:
        raise SpheronApiError(
            "launching %s (%s at %.2f USD/h) would bring the account's live deployments to %.2f USD/h, over "
            "max_fleet_hourly_usd %.2f" % (p["name"], chosen["offer_id"], chosen["hourly_usd"], total, p["max_fleet_hourly_usd"]))
    result.update(changed=True, offer=chosen, fleet_hourly_usd=total)
    if module.check_mode:
        return result
    launched = client.launch(launch_body(chosen, p))
    if p["wait"]:
        launched = wait_until_serving(client, launched["id"], p)
    result["instance"] = host_vars(launched)
    return result


def main():
    module = AnsibleModule(
        argument_spec=dict(
            api_key=dict(type="str", required=True, no_log=True, fallback=(env_fallback, ["SPHERON_API_KEY"])),
            api_url=dict(type="str", default="https://app.spheron.ai", fallback=(env_fallback, ["SPHERON_API_URL"])),
            name=dict(type="str", required=True),
            state=dict(type="str", choices=["present", "absent"], default="present"),
            gpu_type=dict(type="str"),
            gpu_count=dict(type="int", default=1),
            instance_type=dict(type="str", choices=["SPOT", "DEDICATED"], default="DEDICATED"),
            region=dict(type="str", default=""),
            provider=dict(type="str", default=""),
            operating_system=dict(type="str", default="ubuntu-22.04"),
            ssh_key_id=dict(type="str"),
            max_fleet_hourly_usd=dict(type="float", default=0),
            wait=dict(type="bool", default=True),
            wait_timeout=dict(type="int", default=900),
            ssh_port=dict(type="int", default=22),
            poll_interval=dict(type="int", default=10),
            timeout=dict(type="int", default=30),
            validate_certs=dict(type="bool", default=True),
        ),
        supports_check_mode=True,
    )
    try:
        module.exit_json(**run(module))
    except SpheronApiError as exc:
        module.fail_json(msg=str(exc))


if __name__ == "__main__":
    main()
