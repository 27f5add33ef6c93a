# -*- coding: utf-8 -*-
# Copyright: ai_infra platform team
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)

from __future__ import annotations

DOCUMENTATION = r"""
name: spheron
short_description: Spheron GPU instances as inventory hosts, in this collection's groups
version_added: 0.1.0
description:
  - Lists the account's deployments (GPU instances) through Spheron's REST API
    (C(GET /api/deployments), bearer API key) and makes one host per deployment in one of
    O(statuses), with C(ansible_host) its public IP and C(ansible_user) root.
  - Host variables (prefixed C(spheron_), plus C(gpu_type), C(gpu_count),
    C(gpu_instance_type) and C(gpu_hourly_usd), which the langgraph_server role puts on every
    trace for the cost per run) come from the deployment's fields; a worker that playbooks/pools.yml
    launched (named C(<prefix>-gpu-<pool>-<n>)) also gets C(spheron_pool), its model pool.
  - Groups by GPU type (C(spheron_gpu_<type>)), instance type (C(spheron_spot),
    C(spheron_dedicated)) and region (C(spheron_region_<region>)); the collection's groups
    (C(state), C(gpu_workers), C(edge), C(observability)) by the name convention in
    O(name_groups). O(compose), O(groups) and O(keyed_groups) work as in other inventory
    plugins, and the API's answer can be cached with Ansible's inventory cache.
  - Spheron documents the requests (C(POST /api/deployments) takes C(gpuType), C(gpuCount),
    C(region), C(instanceType), C(provider)); the shape of the list answer is not publicly
    documented. Every field this plugin reads is named once, in C(DEPLOYMENT_FIELDS) of
    C(plugins/module_utils/spheron_api.py) (shared with the spheron_instance module), and an
    answer without them fails with one sentence.
  - Needs the C(requests) library on the controller.
extends_documentation_fragment:
  - constructed
  - inventory_cache
options:
  plugin:
    description: Marks this file as one for this plugin.
    type: str
    required: true
    choices: [ai_infra.langgraph_stack.spheron]
  api_key:
    description:
      - Spheron API key. Prefer the environment variable; in a file, keep it in ansible-vault.
    type: str
    required: true
    env:
      - name: SPHERON_API_KEY
  api_url:
    description: Base URL of Spheron's API.
    type: str
    default: https://app.spheron.ai
    env:
      - name: SPHERON_API_URL
  statuses:
    description: Deployments in these states become hosts (compared without case).
    type: list
    elements: str
    default: [running]
  name_groups:
    description:
      - The collection's groups, by deployment name. A deployment whose name contains the word
        (between C(-), C(_), C(.) or the ends) is in that group; one name may name several
        (C(prod-state-edge-1)). A single-GPU host that holds everything is named with C(all)
        (C(prod-all-1)).
    type: dict
    default:
      state: state
      gpu_workers: gpu
      edge: edge
      observability: obs
  page_size:
    description: Deployments asked for per page.
    type: int
    default: 100
  timeout:
    description: Seconds for each request.
    type: int
    default: 30
  validate_certs:
    description: Verify the API's TLS certificate.
    type: bool
    default: true
"""

EXAMPLES = r"""
# inventories/<yours>/spheron.yml (SPHERON_API_KEY in the environment)
plugin: ai_infra.langgraph_stack.spheron
statuses: [running]
# Name instances prod-state-1, prod-gpu-1, prod-gpu-2, prod-edge-obs-1 ...
compose:
  # The private address the roles bind to, when the provider gives one (else the public IP).
  private_ip: spheron_private_ip | default(ansible_host)
keyed_groups:
  - key: spheron_provider
    prefix: provider
cache: true
cache_plugin: ansible.builtin.jsonfile
cache_connection: ~/.cache/ansible-inventory
cache_timeout: 300
"""

import re

try:
    import requests

    HAS_REQUESTS = True
except ImportError:  # pragma: no cover - exercised by the sanity import test
    HAS_REQUESTS = False

from ansible.errors import AnsibleError, AnsibleParserError
from ansible.plugins.inventory import BaseInventoryPlugin, Cacheable, Constructable

from ansible_collections.ai_infra.langgraph_stack.plugins.module_utils import spheron_api

# The fields this plugin reads are named in spheron_api.DEPLOYMENT_FIELDS (one table for
# this plugin and the spheron_instance module); a host needs an address as well (one that
# is still starting may have none yet).
REQUIRED_FOR_A_HOST = ("ipAddress",)


class SpheronError(AnsibleParserError):
    """One sentence that says what went wrong with the API."""


def deployments_in(answer):
    """The list of deployments in one page of the answer."""
    try:
        return spheron_api.deployments_in(answer)
    except spheron_api.SpheronApiError as exc:
        raise SpheronError(str(exc))


def host_vars(deployment):
    """The host variables of a deployment that becomes a host, with the derived ones."""
    try:
        spheron_api.check_required(deployment, REQUIRED_FOR_A_HOST, "a deployment")
        return spheron_api.host_vars(deployment)
    except spheron_api.SpheronApiError as exc:
        raise SpheronError(str(exc))


def groups_by_name(name, name_groups):
    """The collection's groups a deployment name puts it in (see the name_groups option)."""
    words = set(re.split(r"[-_.]+", (name or "").lower()))
    if "all" in words:
        return sorted(name_groups)
    return sorted(group for group, word in name_groups.items() if str(word).lower() in words)


class InventoryModule(BaseInventoryPlugin, Constructable, Cacheable):
    NAME = "ai_infra.langgraph_stack.spheron"

    def verify_file(self, path):
        return super(InventoryModule, self).verify_file(path) and path.endswith(("spheron.yml", "spheron.yaml"))

    def fetch(self):
        """Every deployment of the account (all pages)."""
        if not HAS_REQUESTS:
            raise AnsibleError("the ai_infra.langgraph_stack.spheron inventory plugin needs the Python library requests on the controller")
        url = self.get_option("api_url").rstrip("/") + "/api/deployments"
        size = self.get_option("page_size")
        session = requests.Session()
        session.headers.update({"Authorization": "Bearer " + self.get_option("api_key"), "Accept": "application/json"})
        found = []
        for page in range(1, spheron_api.MAX_PAGES + 1):
            try:
                response = session.get(url, params={"page": page, "limit": size},
                                       timeout=self.get_option("timeout"), verify=self.get_option("validate_certs"))
            except requests.RequestException as exc:
                raise SpheronError("cannot reach the Spheron API at %s: %s" % (url, exc))
            if response.status_code in (401, 403):
                raise SpheronError("the Spheron API refused the API key (HTTP %d): check SPHERON_API_KEY or api_key" % response.status_code)
            if response.status_code != 200:
                raise SpheronError("the Spheron API answered GET /api/deployments with HTTP %d: %s"
                                   % (response.status_code, response.text[:200]))
            try:
                answer = response.json()
            except ValueError:
                raise SpheronError("the Spheron API answered GET /api/deployments with something that is not JSON: %s" % response.text[:200])
            items = deployments_in(answer)
            found.extend(items)
            # A bare list or a short page is the last one.
            if isinstance(answer, list) or len(items) < size:
                break
        return found

    def host_name(self, deployment):
        """The deployment's name when it is a usable, unused host name; else with its id."""
        name = str(deployment.get("name") or "")
        if not re.match(r"^[A-Za-z0-9][A-Za-z0-9._-]*$", name):
            return "spheron-%s" % deployment["id"]
        if name in self.inventory.hosts:
            return "%s-%s" % (name, deployment["id"])
        return name

    def populate(self, deployments):
        statuses = {s.lower() for s in self.get_option("statuses")}
        strict = self.get_option("strict")
        for group in self.get_option("name_groups"):
            self.inventory.add_group(group)
        for deployment in deployments:
            if str(deployment["status"]).lower() not in statuses:
                continue
            variables = host_vars(deployment)
            host = self.host_name(deployment)
            self.inventory.add_host(host)
            for name, value in variables.items():
                self.inventory.set_variable(host, name, value)
            for group in groups_by_name(deployment.get("name"), self.get_option("name_groups")):
                self.inventory.add_child(group, host)
            for group in ("spheron_gpu_%s" % variables.get("gpu_type", ""),
                          "spheron_%s" % variables.get("spheron_instance_type", ""),
                          "spheron_region_%s" % variables.get("spheron_region", "")):
                if not group.endswith("_"):
                    self.inventory.add_child(self.inventory.add_group(self._sanitize_group_name(group.lower())), host)
            self._set_composite_vars(self.get_option("compose"), variables, host, strict=strict)
            self._add_host_to_composed_groups(self.get_option("groups"), variables, host, strict=strict)
            self._add_host_to_keyed_groups(self.get_option("keyed_groups"), variables, host, strict=strict)

    def parse(self, inventory, loader, path, cache=True):
        super(InventoryModule, self).parse(inventory, loader, path)
        self._read_config_data(path)
        cache_key = self.get_cache_key(path)
        use_cache = cache and self.get_option("cache")
        deployments = None
        if use_cache:
            try:
                deployments = self._cache[cache_key]
            except KeyError:
                pass
        if deployments is None:
            deployments = self.fetch()
            if self.get_option("cache"):
                self._cache[cache_key] = deployments
        self.populate(deployments)
