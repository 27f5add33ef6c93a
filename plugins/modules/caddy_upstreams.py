#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: ai_infra platform team
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: caddy_upstreams
short_description: Keep the LangGraph servers an edge sends requests to, and drain or restore them
version_added: 0.2.0
description:
  - Writes the Caddyfile fragment that the C(caddy) role's site imports inside its
    C(reverse_proxy) block, with one C(to) line per LangGraph server that serves and a comment line
    per server that is drained. Drained servers stay drained across runs (the drained set lives
    in the file itself) until O(restore) names them, so a later C(site.yml) run does not put a
    server back that a rollout left out.
  - Does not reload Caddy; the caller does, when the module reports a change. Caddy's reload is
    graceful (requests in flight on a drained server finish, within Caddy's C(grace_period)).
  - Refuses to leave the edge with no server to send requests to.
author:
  - ai_infra platform team (@ai-infra)
options:
  path:
    description: The fragment the Caddyfile imports.
    type: path
    default: /etc/caddy/upstreams.caddy
  upstreams:
    description:
      - Every server of the edge, as C(name) (the inventory host) and C(address) (C(host:port),
        C([v6]:port) for IPv6). Servers the file knows that are not listed are forgotten.
      - Omitted, the servers already in O(path) are kept (the file must exist).
    type: list
    elements: dict
    suboptions:
      name:
        description: Inventory name of the server's host.
        type: str
        required: true
      address:
        description: Where the edge reaches the server, C(host:port).
        type: str
        required: true
  drain:
    description: Names of servers to stop sending new requests to.
    type: list
    elements: str
    default: []
  restore:
    description: Names of drained servers to send requests to again.
    type: list
    elements: str
    default: []
extends_documentation_fragment:
  - ansible.builtin.files
attributes:
  check_mode:
    description: Reports what would change, writes nothing.
    support: full
  diff_mode:
    description: The fragment before and after.
    support: full
"""

EXAMPLES = r"""
- name: Take worker-2 out of the edge for a rollout
  ai_infra.langgraph_stack.caddy_upstreams:
    drain: [worker-2]
  register: edge
  delegate_to: edge-1

- name: Reload Caddy (graceful; requests in flight finish)
  ansible.builtin.systemd_service:
    name: caddy
    state: reloaded
  when: edge is changed
  delegate_to: edge-1

- name: The full list, from the inventory (what the caddy role does)
  ai_infra.langgraph_stack.caddy_upstreams:
    upstreams:
      - {name: worker-1, address: "10.0.0.5:8123"}
      - {name: worker-2, address: "10.0.0.6:8123"}
    owner: root
    group: caddy
    mode: "0640"
"""

RETURN = r"""
serving:
  description: Names of the servers the edge sends requests to, in file order.
  returned: success
  type: list
  elements: str
  sample: [worker-1]
drained:
  description: Names of the servers that are drained.
  returned: success
  type: list
  elements: str
  sample: [worker-2]
"""

import os
import re
import tempfile

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.common.text.converters import to_bytes, to_native

HEADER = (
    "# Managed by ai_infra.langgraph_stack.caddy_upstreams: the LangGraph servers this edge\n"
    "# sends requests to. Drained servers stay here as comments until they are restored.\n"
)
SERVING_LINE = re.compile(r"^to (?P<address>\S+) # upstream (?P<name>\S+)$")
DRAINED_LINE = re.compile(r"^# drained: to (?P<address>\S+) # upstream (?P<name>\S+)$")
# Nothing that would end a Caddyfile token or start a comment or a block.
NAME = re.compile(r"^[^\s#{}\"']+$")
ADDRESS = re.compile(r"^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_.-]+):[0-9]{1,5}$")


class UpstreamsError(Exception):
    """A request this module refuses; the message says why."""


def parse(text):
    """[(name, address, drained)] from a fragment this module wrote."""
    entries = []
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        serving = SERVING_LINE.match(line)
        drained = DRAINED_LINE.match(line)
        if serving or drained:
            match = serving or drained
            entries.append((match.group("name"), match.group("address"), bool(drained)))
        elif line and not line.startswith("#"):
            raise UpstreamsError(
                "line %d is not one this module writes (%r); the file was edited by hand or by "
                "something else" % (number, line)
            )
    return entries


def render(entries):
    lines = [HEADER]
    for name, address, drained in entries:
        prefix = "# drained: " if drained else ""
        lines.append("%sto %s # upstream %s\n" % (prefix, address, name))
    return "".join(lines)


def plan(current, upstreams, drain, restore):
    """The new [(name, address, drained)] list, or UpstreamsError."""
    both = sorted(set(drain) & set(restore))
    if both:
        raise UpstreamsError("%s cannot be drained and restored at once" % ", ".join(both))
    was_drained = dict((name, is_drained) for name, _address, is_drained in current)
    if upstreams is None:
        entries = list(current)
    else:
        for item in upstreams:
            if not NAME.match(item["name"]):
                raise UpstreamsError("upstream name %r has characters a Caddyfile cannot hold" % item["name"])
            if not ADDRESS.match(item["address"]):
                raise UpstreamsError(
                    "upstream %s has address %r; expected host:port (IPv6 as [address]:port)"
                    % (item["name"], item["address"])
                )
        names = [item["name"] for item in upstreams]
        duplicates = sorted(set(name for name in names if names.count(name) > 1))
        if duplicates:
            raise UpstreamsError("upstream names listed twice: %s" % ", ".join(duplicates))
        entries = [(item["name"], item["address"], was_drained.get(item["name"], False)) for item in upstreams]
    known = [name for name, _address, _drained in entries]
    unknown = sorted(name for name in set(drain) | set(restore) if name not in known)
    if unknown:
        raise UpstreamsError(
            "this edge has no upstream named %s (it has: %s)" % (", ".join(unknown), ", ".join(known) or "none")
        )
    entries = [
        (name, address, (drained or name in drain) and name not in restore)
        for name, address, drained in entries
    ]
    if entries and all(drained for _name, _address, drained in entries):
        raise UpstreamsError(
            "this would leave the edge with no LangGraph server to send requests to (%s all drained); "
            "restore one of them" % ", ".join(known)
        )
    if not entries:
        raise UpstreamsError("the edge needs at least one upstream; none were given")
    return entries


def main():
    module = AnsibleModule(
        argument_spec=dict(
            path=dict(type="path", default="/etc/caddy/upstreams.caddy"),
            upstreams=dict(
                type="list",
                elements="dict",
                options=dict(name=dict(type="str", required=True), address=dict(type="str", required=True)),
            ),
            drain=dict(type="list", elements="str", default=[]),
            restore=dict(type="list", elements="str", default=[]),
        ),
        add_file_common_args=True,
        supports_check_mode=True,
    )
    path = module.params["path"]
    before = ""
    if os.path.exists(path):
        try:
            with open(path, "r") as handle:
                before = handle.read()
        except (IOError, OSError) as exc:
            module.fail_json(msg="cannot read %s: %s" % (path, to_native(exc)))
    elif module.params["upstreams"] is None:
        module.fail_json(
            msg="%s does not exist and no upstreams were given; converge the edge with the caddy role first" % path
        )

    try:
        entries = plan(parse(before), module.params["upstreams"], module.params["drain"], module.params["restore"])
    except UpstreamsError as exc:
        module.fail_json(msg="%s: %s" % (path, to_native(exc)))

    after = render(entries)
    changed = after != before
    if changed and not module.check_mode:
        directory = os.path.dirname(path) or "."
        if not os.path.isdir(directory):
            module.fail_json(msg="directory %s does not exist" % directory)
        handle, temp = tempfile.mkstemp(dir=directory, prefix=".upstreams.")
        try:
            with os.fdopen(handle, "wb") as out:
                out.write(to_bytes(after))
        except (IOError, OSError) as exc:
            module.fail_json(msg="cannot write %s: %s" % (temp, to_native(exc)))
        module.atomic_move(temp, path)

    file_args = module.load_file_common_arguments(module.params)
    if os.path.exists(path):
        changed = module.set_fs_attributes_if_different(file_args, changed)

    result = dict(
        changed=changed,
        serving=[name for name, _address, drained in entries if not drained],
        drained=[name for name, _address, drained in entries if drained],
    )
    if module._diff:
        result["diff"] = dict(before=before, after=after, before_header=path, after_header=path)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
