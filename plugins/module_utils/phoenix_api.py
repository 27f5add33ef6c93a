# -*- coding: utf-8 -*-
# Copyright: ai_infra platform team
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""A small client for Arize Phoenix's REST and GraphQL APIs, shared by the phoenix_* modules.

Every failure becomes PhoenixApiError with one sentence that says what went wrong and
where (an unreachable URL, a refused secret, a body that is not what Phoenix sends), so
modules can fail_json with it. GraphQL answers HTTP 200 with an `errors` list when it
refuses (for example "Only admin" for a non-admin key): that is an error here too."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import base64
import json

from ansible.module_utils.common.text.converters import to_text
from ansible.module_utils.six.moves.urllib.parse import urlparse

from ansible_collections.ai_infra.langgraph_stack.plugins.module_utils.json_http import Unreachable, send

# The retention policy Phoenix creates at first start (row 0), as a GraphQL global id.
DEFAULT_RETENTION_POLICY_ID = to_text(base64.b64encode(b"ProjectTraceRetentionPolicy:0"))


class PhoenixApiError(Exception):
    """One sentence for fail_json; status is the HTTP status when Phoenix answered."""

    def __init__(self, message, status=None):
        super(PhoenixApiError, self).__init__(message)
        self.status = status


def check_url(url):
    parsed = urlparse(url)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise PhoenixApiError("url must be an http:// or https:// URL of Phoenix, got %r" % url)
    return url.rstrip("/")


class PhoenixClient(object):
    def __init__(self, url, token, timeout=30, validate_certs=True):
        self.url = check_url(url)
        self.token = token
        self.timeout = timeout
        self.validate_certs = validate_certs

    def request(self, method, path, body=None, expect=(200,)):
        """The decoded JSON body (None when empty) of a response whose status is in expect."""
        try:
            status, text = send(self.url + path, method, self.token, body, self.timeout, self.validate_certs)
        except Unreachable as exc:
            raise PhoenixApiError("cannot reach Phoenix at %s: %s" % (self.url, exc))
        if status in (401, 403):
            raise PhoenixApiError(
                "Phoenix refused the credentials for %s %s (HTTP %s): check the admin secret (%s)"
                % (method, path, status, _detail(text)), status
            )
        if status not in expect:
            raise PhoenixApiError("%s %s answered HTTP %s: %s" % (method, path, status, _detail(text)), status)
        if not text.strip():
            return None
        try:
            return json.loads(text)
        except ValueError:
            raise PhoenixApiError("%s %s answered something that is not JSON: %s" % (method, path, text[:200]))

    def graphql(self, query, variables=None):
        """The `data` of a GraphQL answer; its `errors` (sent with HTTP 200) are failures."""
        answer = self.request("POST", "/graphql", {"query": query, "variables": variables or {}})
        if not isinstance(answer, dict):
            raise PhoenixApiError("/graphql answered %r, not a GraphQL response" % (answer,))
        errors = answer.get("errors")
        if errors:
            messages = "; ".join(to_text(e.get("message", e)) if isinstance(e, dict) else to_text(e) for e in errors)
            raise PhoenixApiError("Phoenix's GraphQL API refused the request: %s" % messages)
        if not isinstance(answer.get("data"), dict):
            raise PhoenixApiError("/graphql answered without data: %s" % json.dumps(answer)[:200])
        return answer["data"]


def _detail(text):
    try:
        body = json.loads(text)
    except ValueError:
        return text.strip()[:200] or "no body"
    if isinstance(body, dict) and "detail" in body:
        return to_text(body["detail"])[:200]
    return text.strip()[:200]


def system_keys(client):
    """[{id, name}] of the system API keys (GET /v1/system/api_keys)."""
    answer = client.request("GET", "/v1/system/api_keys")
    try:
        return [{"id": item["id"], "name": item["name"]} for item in answer["data"]]
    except (KeyError, TypeError):
        raise PhoenixApiError("GET /v1/system/api_keys answered an unexpected shape: %s" % json.dumps(answer)[:200])


def create_system_key(client, name, description=None):
    body = {"data": {"name": name}}
    if description:
        body["data"]["description"] = description
    answer = client.request("POST", "/v1/system/api_keys", body, expect=(201,))
    try:
        return answer["data"]["id"], answer["data"]["key"]
    except (KeyError, TypeError):
        raise PhoenixApiError("POST /v1/system/api_keys answered an unexpected shape (no data.key)")


def delete_system_key(client, key_id):
    client.request("DELETE", "/v1/system/api_keys/%s" % key_id, expect=(204, 404))


def key_works(url, key, timeout=30, validate_certs=True):
    """Whether Phoenix accepts key (GET /v1/projects): False on 401/403, errors otherwise raise."""
    try:
        PhoenixClient(url, key, timeout, validate_certs).request("GET", "/v1/projects?limit=1")
    except PhoenixApiError as exc:
        if "refused the credentials" in str(exc):
            return False
        raise
    return True


RETENTION_QUERY = """
query ($id: ID!) {
  node(id: $id) {
    ... on ProjectTraceRetentionPolicy {
      name
      rule {
        __typename
        ... on TraceRetentionRuleMaxDays { maxDays }
        ... on TraceRetentionRuleMaxCount { maxCount }
        ... on TraceRetentionRuleMaxDaysOrCount { maxDays maxCount }
      }
    }
  }
}
"""

RETENTION_PATCH = """
mutation ($id: ID!, $days: Float!) {
  patchProjectTraceRetentionPolicy(input: {id: $id, rule: {maxDays: {maxDays: $days}}}) {
    node { id }
  }
}
"""


def retention_rule(client, policy_id=DEFAULT_RETENTION_POLICY_ID):
    """The policy's rule as {"type": ..., "max_days": ..., "max_count": ...}."""
    node = client.graphql(RETENTION_QUERY, {"id": policy_id}).get("node")
    if not node or "rule" not in node:
        raise PhoenixApiError("Phoenix has no trace retention policy with id %s" % policy_id)
    rule = node["rule"] or {}
    return {
        "type": rule.get("__typename"),
        "max_days": rule.get("maxDays"),
        "max_count": rule.get("maxCount"),
    }


def set_retention_days(client, days, policy_id=DEFAULT_RETENTION_POLICY_ID):
    client.graphql(RETENTION_PATCH, {"id": policy_id, "days": float(days)})


def span_page(client, project, query):
    """One page of GET /v1/projects/{project}/spans: (spans, next cursor); None when Phoenix
    has no such project (it makes one when its first span arrives: none yet is no runs yet)."""
    from ansible.module_utils.six.moves.urllib.parse import quote, urlencode

    path = "/v1/projects/%s/spans?%s" % (quote(project, safe=""), urlencode(query))
    try:
        answer = client.request("GET", path)
    except PhoenixApiError as exc:
        if exc.status == 404 and "not found" in str(exc):
            return None
        raise
    spans = answer.get("data") if isinstance(answer, dict) else None
    if not isinstance(spans, list) or not all(isinstance(s, dict) for s in spans):
        raise PhoenixApiError("GET /v1/projects/%s/spans answered an unexpected shape: %s" % (project, json.dumps(answer)[:200]))
    return spans, answer.get("next_cursor")


def root_spans(client, project, limit, thread_id=None):
    """The newest `limit` root spans (one per trace: a graph run) of a project, newest
    first; None when Phoenix has no such project (no span has arrived for it)."""
    query = [("parent_id", "null"), ("sort", "start_time"), ("order", "desc"), ("limit", str(limit))]
    if thread_id:
        # Phoenix parses the value as JSON: quoted, it is always compared as a string.
        query.append(("attribute", "metadata.thread_id:" + json.dumps(thread_id)))
    page = span_page(client, project, query)
    return None if page is None else page[0]


def named_spans(client, project, name, start_time, end_time, page_size=1000):
    """Every span called `name` that started in [start_time, end_time) (ISO 8601), all pages;
    None when Phoenix has no such project."""
    found, cursor = [], None
    while True:
        query = [("name", name), ("start_time", start_time), ("end_time", end_time), ("limit", str(page_size))]
        if cursor:
            query.append(("cursor", cursor))
        page = span_page(client, project, query)
        if page is None:
            return None
        spans, cursor = page
        found.extend(spans)
        if not cursor or not spans:
            return found


def phoenix_argument_spec():
    """The options every phoenix_* module has (documented in doc_fragments/phoenix.py)."""
    return dict(
        url=dict(type="str", required=True),
        timeout=dict(type="int", default=30),
        validate_certs=dict(type="bool", default=True),
    )
