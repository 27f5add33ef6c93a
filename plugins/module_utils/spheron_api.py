# -*- coding: utf-8 -*-
# Copyright: ai_infra platform team
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""Spheron's REST API, shared by the spheron inventory plugin and the spheron_instance module.

Spheron documents the requests (POST /api/deployments and its fields, GET /api/gpu-offers
and its query parameters, DELETE /api/deployments/{id}) but not the shape of its answers.
Every field read from an answer is therefore named once, here (DEPLOYMENT_FIELDS,
OFFER_FIELDS, the list keys): when a real answer differs, this is the one place to
change. Every failure is a SpheronApiError with one sentence.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import re

from ansible.module_utils.six.moves.urllib.parse import urlencode, urlparse

from ansible_collections.ai_infra.langgraph_stack.plugins.module_utils.json_http import Unreachable, send

# Every field read from a deployment: (host variable, key in the answer). The documented
# request fields of POST /api/deployments plus id, name, status, the addresses and the price.
DEPLOYMENT_FIELDS = {
    "spheron_id": "id",
    "spheron_name": "name",
    "spheron_status": "status",
    "spheron_provider": "provider",
    "spheron_region": "region",
    "spheron_instance_type": "instanceType",
    "gpu_type": "gpuType",
    "gpu_count": "gpuCount",
    "gpu_hourly_usd": "pricePerHour",
    "spheron_public_ip": "ipAddress",
    "spheron_private_ip": "privateIpAddress",
}
DEPLOYMENT_REQUIRED = ("id", "status")
# Every field read from a GPU offer (GET /api/gpu-offers): what POST /api/deployments takes
# from it (offerId, provider, gpuType, gpuCount, region, instanceType) and its price for the
# whole machine per hour; an offer without `available` counts as available.
OFFER_FIELDS = {
    "offer_id": "id",
    "provider": "provider",
    "gpu_type": "gpuType",
    "gpu_count": "gpuCount",
    "region": "region",
    "instance_type": "instanceType",
    "hourly_usd": "pricePerHour",
    "available": "available",
}
OFFER_REQUIRED = ("id", "gpuType", "pricePerHour")
# Where a list may sit in an answer: a bare list, or under one of these keys.
LIST_KEYS = ("deployments", "offers", "data", "items")
# Where a single deployment may sit in the answer to POST /api/deployments.
ITEM_KEYS = ("deployment", "data")
# Deployments in these states hold no machine (compared without case).
GONE_STATUSES = ("terminated", "deleted", "failed", "stopped", "evicted", "reclaimed")
MAX_PAGES = 100


class SpheronApiError(Exception):
    """One sentence that says what went wrong with the API; status when Spheron answered."""

    def __init__(self, message, status=None):
        super(SpheronApiError, self).__init__(message)
        self.status = status


def check_url(url):
    parsed = urlparse(url or "")
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise SpheronApiError("api_url must be an http:// or https:// URL of Spheron's API, got %r" % (url,))
    return url.rstrip("/")


def items_in(answer, what, noun):
    """The list in one answer (a bare list, or under one of LIST_KEYS)."""
    if isinstance(answer, list):
        return answer
    if isinstance(answer, dict):
        for key in LIST_KEYS:
            if isinstance(answer.get(key), list):
                return answer[key]
    raise SpheronApiError(
        "the Spheron API answered %s with %s, not a list of %s" % (
            what, "an object with keys %s" % sorted(answer)[:8] if isinstance(answer, dict) else type(answer).__name__, noun))


def deployments_in(answer):
    """The deployments in one page of GET /api/deployments, each with the required fields."""
    items = items_in(answer, "GET /api/deployments", "deployments")
    for item in items:
        check_required(item, DEPLOYMENT_REQUIRED, "a deployment")
    return items


def check_required(item, required, what):
    missing = [key for key in required if not isinstance(item, dict) or item.get(key) in (None, "")]
    if missing:
        raise SpheronApiError("%s in Spheron's answer lacks %s: %s" % (what, ", ".join(missing), repr(item)[:200]))


def number(value, kind, what):
    try:
        return kind(value)
    except (TypeError, ValueError):
        raise SpheronApiError("%s is not a number: %r" % (what, value))


# The name pools.yml gives the workers it launches (plugins/filter/spheron_pools.py): the
# pool is the word after `gpu`.
POOL_WORKER_NAME = re.compile(r"^[a-z][a-z0-9]*-gpu-([a-z][a-z0-9]*)-[0-9]+$")


def host_vars(deployment):
    """The host variables of one deployment (DEPLOYMENT_FIELDS), with the derived ones:
    ansible_host (its public IP, when it has one), ansible_user, gpu_instance_type and, for
    a worker pools.yml launched, spheron_pool."""
    values = dict((var, deployment.get(key)) for var, key in DEPLOYMENT_FIELDS.items() if deployment.get(key) not in (None, ""))
    if "spheron_public_ip" in values:
        values["ansible_host"] = values["spheron_public_ip"]
    values["ansible_user"] = "root"
    if "gpu_hourly_usd" in values:
        values["gpu_hourly_usd"] = number(values["gpu_hourly_usd"], float, "deployment %s has a price that" % deployment["id"])
    if "gpu_count" in values:
        values["gpu_count"] = number(values["gpu_count"], int, "deployment %s has a GPU count that" % deployment["id"])
    if "spheron_instance_type" in values:
        values["spheron_instance_type"] = str(values["spheron_instance_type"]).upper()
    pool = POOL_WORKER_NAME.match(str(values.get("spheron_name") or ""))
    if pool:
        # The model pool the vllm role puts this worker in (vllm_model_pool).
        values["spheron_pool"] = pool.group(1)
    # What every trace says the run ran on (langgraph_server_gpu_instance_type).
    values["gpu_instance_type"] = "-".join(
        str(part).lower() for part in (
            "%sx" % values["gpu_count"] if "gpu_count" in values else None,
            values.get("gpu_type"),
            values.get("spheron_instance_type"),
        ) if part
    )
    return values


def is_live(deployment):
    """Whether a deployment holds (or is getting) a machine."""
    return str(deployment.get("status", "")).lower() not in GONE_STATUSES


def offer(item):
    """One GPU offer as OFFER_FIELDS names it, with its price and count as numbers."""
    check_required(item, OFFER_REQUIRED, "a GPU offer")
    values = dict((name, item.get(key)) for name, key in OFFER_FIELDS.items())
    values["hourly_usd"] = number(values["hourly_usd"], float, "offer %s has a price that" % values["offer_id"])
    values["gpu_count"] = number(values["gpu_count"] if values["gpu_count"] not in (None, "") else 1, int,
                                 "offer %s has a GPU count that" % values["offer_id"])
    values["instance_type"] = str(values["instance_type"] or "").upper()
    values["available"] = values["available"] is None or bool(values["available"])
    return values


class SpheronClient(object):
    def __init__(self, url, api_key, timeout=30, validate_certs=True):
        self.url = check_url(url)
        if not api_key:
            raise SpheronApiError("no Spheron API key: set SPHERON_API_KEY or api_key (ansible-vault)")
        self.api_key = api_key
        self.timeout = timeout
        self.validate_certs = validate_certs

    def request(self, method, path, params=None, body=None, expect=(200, 201, 202, 204)):
        """The decoded JSON body (None when empty) of an answer whose status is in expect."""
        what = "%s %s" % (method, path)
        url = self.url + path + ("?" + urlencode(params) if params else "")
        try:
            status, text = send(url, method, self.api_key, body, self.timeout, self.validate_certs)
        except Unreachable as exc:
            raise SpheronApiError("cannot reach the Spheron API at %s: %s" % (self.url, exc))
        if status in (401, 403):
            raise SpheronApiError("the Spheron API refused the API key (HTTP %d): check SPHERON_API_KEY or api_key" % status, status)
        if status not in expect:
            raise SpheronApiError("the Spheron API answered %s with HTTP %d: %s" % (what, status, text.strip()[:200] or "no body"), status)
        if not text.strip():
            return None
        try:
            return json.loads(text)
        except ValueError:
            raise SpheronApiError("the Spheron API answered %s with something that is not JSON: %s" % (what, text[:200]))

    def deployments(self, page_size=100):
        """Every deployment of the account (all pages)."""
        found = []
        for page in range(1, MAX_PAGES + 1):
            answer = self.request("GET", "/api/deployments", {"page": page, "limit": page_size}, expect=(200,))
            items = deployments_in(answer)
            found.extend(items)
            # A bare list or a short page is the last one.
            if isinstance(answer, list) or len(items) < page_size:
                break
        return found

    def offers(self, gpu_type, instance_type, limit=100):
        """The GPU offers Spheron finds for a GPU type, cheapest first."""
        answer = self.request("GET", "/api/gpu-offers", {
            "search": gpu_type, "instanceType": instance_type, "sortBy": "price", "sortOrder": "asc",
            "page": 1, "limit": limit}, expect=(200,))
        return sorted((offer(item) for item in items_in(answer, "GET /api/gpu-offers", "offers")), key=lambda o: o["hourly_usd"])

    def launch(self, body):
        """POST /api/deployments; the new deployment (with at least its id)."""
        answer = self.request("POST", "/api/deployments", body=body)
        item = answer
        if isinstance(answer, dict) and not answer.get("id"):
            item = next((answer[key] for key in ITEM_KEYS if isinstance(answer.get(key), dict)), answer)
        check_required(item, ("id",), "the new deployment")
        return item

    def terminate(self, deployment_id):
        self.request("DELETE", "/api/deployments/%s" % deployment_id)
