"""phoenix_api_key and phoenix_retention against a local HTTP server that answers with the
bodies a real Phoenix 20.26.1 gave (fixtures/phoenix, see SOURCES.md), keeping keys and the
retention rule as Phoenix does."""

from __future__ import annotations

import http.server
import json
import os
import pathlib

import pytest

from ansible_collections.ai_infra.langgraph_stack.plugins.modules import phoenix_api_key, phoenix_retention
from ansible_collections.ai_infra.langgraph_stack.tests.unit.plugins.modules.utils import AnsibleFailJson, http_server, run_module

FIXTURES = pathlib.Path(__file__).parent / "fixtures" / "phoenix"
ADMIN = "admin0123456789abcdefghijklmnopqrstuv"


def fixture(name):
    return (FIXTURES / name).read_text()


class FakePhoenix:
    """Keys and the default retention rule, answered with the recorded bodies."""

    def __init__(self):
        listed = json.loads(fixture("system_api_keys.list.json"))["data"]
        self.keys = {}  # id -> (name, value)
        self.template = listed[0]
        self.next_id = 10
        self.max_days = json.loads(fixture("retention.query.json"))["data"]["node"]["rule"]["maxDays"]
        self.graphql_override = None  # a recorded body to answer every GraphQL call with
        self.requests = []

    def add_key(self, name):
        key_id, value = "U3lzdGVtQXBpS2V5OjE%d" % self.next_id, "value-%d" % self.next_id
        self.next_id += 1
        self.keys[key_id] = (name, value)
        return key_id, value


def handler_for(state):
    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def reply(self, code, body, content_type="application/json"):
            data = body.encode()
            self.send_response(code)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def token(self):
            return self.headers.get("Authorization", "").removeprefix("Bearer ")

        def refuse(self):
            self.reply(401, fixture("system_api_keys.401.json"), "text/plain")

        def do_GET(self):
            state.requests.append(("GET", self.path))
            if self.path == "/v1/system/api_keys":
                if self.token() != ADMIN:
                    return self.refuse()
                data = [dict(state.template, id=key_id, name=name) for key_id, (name, value) in state.keys.items()]
                return self.reply(200, json.dumps({"data": data}))
            if self.path.startswith("/v1/projects"):
                if self.token() not in [value for name, value in state.keys.values()]:
                    return self.refuse()
                return self.reply(200, fixture("projects.json"))
            self.reply(404, '{"detail":"Not Found"}')

        def do_POST(self):
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            state.requests.append(("POST", self.path))
            if self.path == "/v1/system/api_keys":
                if self.token() != ADMIN:
                    return self.refuse()
                key_id, value = state.add_key(body["data"]["name"])
                created = json.loads(fixture("system_api_keys.create.json"))
                created["data"].update(id=key_id, name=body["data"]["name"], key=value)
                return self.reply(201, json.dumps(created))
            if self.path == "/graphql":
                if state.graphql_override:
                    return self.reply(200, fixture(state.graphql_override))
                if self.token() != ADMIN:
                    return self.reply(200, fixture("retention.patch_system_key.json"))
                if "mutation" in body["query"]:
                    state.max_days = body["variables"]["days"]
                    return self.reply(200, fixture("retention.patch.json"))
                answer = json.loads(fixture("retention.query.json"))
                answer["data"]["node"]["rule"]["maxDays"] = state.max_days
                return self.reply(200, json.dumps(answer))
            self.reply(404, '{"detail":"Not Found"}')

        def do_DELETE(self):
            state.requests.append(("DELETE", self.path))
            if self.token() != ADMIN:
                return self.refuse()
            key_id = self.path.rsplit("/", 1)[-1]
            if state.keys.pop(key_id, None) is None:
                return self.reply(404, '{"detail":"System API key not found"}')
            self.send_response(204)
            self.end_headers()

    return Handler


@pytest.fixture(name="phoenix")
def phoenix_fixture():
    state = FakePhoenix()
    with http_server(handler_for(state)) as url:
        state.url = url
        yield state


def key_args(phoenix, tmp_path, **overrides):
    args = {"url": phoenix.url, "admin_secret": ADMIN, "name": "langgraph-servers", "key_file": str(tmp_path / "ingest.key")}
    args.update(overrides)
    return args


def test_creates_the_key_once_and_finds_it_again(phoenix, tmp_path):
    first = run_module(phoenix_api_key.main, key_args(phoenix, tmp_path))
    assert first["changed"] and first["created"] and first["deleted"] == 0
    stored = (tmp_path / "ingest.key").read_text().strip()
    assert stored in [value for name, value in phoenix.keys.values()]
    assert os.stat(tmp_path / "ingest.key").st_mode & 0o777 == 0o600
    assert stored not in json.dumps(first)
    second = run_module(phoenix_api_key.main, key_args(phoenix, tmp_path))
    assert not second["changed"] and second["reason"] == "the stored key is accepted"
    assert len(phoenix.keys) == 1


def test_lost_key_file_replaces_the_key(phoenix, tmp_path):
    run_module(phoenix_api_key.main, key_args(phoenix, tmp_path))
    (tmp_path / "ingest.key").unlink()
    result = run_module(phoenix_api_key.main, key_args(phoenix, tmp_path))
    assert result["changed"] and result["deleted"] == 1 and "shown only once" in result["reason"]
    assert len(phoenix.keys) == 1


def test_refused_key_is_replaced(phoenix, tmp_path):
    run_module(phoenix_api_key.main, key_args(phoenix, tmp_path))
    (tmp_path / "ingest.key").write_text("a-key-phoenix-no-longer-accepts\n")
    result = run_module(phoenix_api_key.main, key_args(phoenix, tmp_path))
    assert result["created"] and "PHOENIX_SECRET" in result["reason"]


def test_check_mode_creates_nothing(phoenix, tmp_path):
    result = run_module(phoenix_api_key.main, key_args(phoenix, tmp_path), check_mode=True)
    assert result["changed"] and not result["created"]
    assert not phoenix.keys and not (tmp_path / "ingest.key").exists()


def test_keys_of_other_names_are_left_alone(phoenix, tmp_path):
    phoenix.add_key("someone-elses")
    run_module(phoenix_api_key.main, key_args(phoenix, tmp_path))
    assert sorted(name for name, value in phoenix.keys.values()) == ["langgraph-servers", "someone-elses"]


@pytest.mark.parametrize("overrides, message", [
    ({"admin_secret": "wrong"}, "refused the credentials for GET /v1/system/api_keys (HTTP 401): check the admin secret (Invalid token)"),
    ({"url": "http://127.0.0.1:1"}, "cannot reach Phoenix at http://127.0.0.1:1"),
    ({"url": "ftp://phoenix"}, "url must be an http:// or https:// URL"),
    ({"name": " "}, "name must not be empty"),
])
def test_bad_input_fails_with_a_message(phoenix, tmp_path, overrides, message):
    with pytest.raises(AnsibleFailJson) as failure:
        run_module(phoenix_api_key.main, key_args(phoenix, tmp_path, **overrides))
    assert message in failure.value.result["msg"]


def test_missing_key_directory_fails_with_a_message(phoenix, tmp_path):
    with pytest.raises(AnsibleFailJson) as failure:
        run_module(phoenix_api_key.main, key_args(phoenix, tmp_path, key_file=str(tmp_path / "nope" / "k")))
    assert "directory of key_file does not exist" in failure.value.result["msg"]


def retention_args(phoenix, **overrides):
    args = {"url": phoenix.url, "admin_secret": ADMIN, "days": 14}
    args.update(overrides)
    return args


def test_retention_unchanged_when_it_already_matches(phoenix):
    result = run_module(phoenix_retention.main, retention_args(phoenix))  # the recording says 14.0
    assert not result["changed"] and result["before"]["max_days"] == 14.0


def test_retention_changed_and_read_back(phoenix):
    result = run_module(phoenix_retention.main, retention_args(phoenix, days=30))
    assert result["changed"] and result["before"]["max_days"] == 14.0 and result["after"]["max_days"] == 30.0
    assert phoenix.max_days == 30.0
    assert not run_module(phoenix_retention.main, retention_args(phoenix, days=30))["changed"]


def test_retention_check_mode_changes_nothing(phoenix):
    result = run_module(phoenix_retention.main, retention_args(phoenix, days=30), check_mode=True)
    assert result["changed"] and result["after"]["max_days"] == 30.0
    assert phoenix.max_days == 14.0


def test_retention_reads_errors_from_a_200_answer(phoenix):
    """A system key, not the admin secret: GraphQL answers 200 with "Only admin"."""
    with pytest.raises(AnsibleFailJson) as failure:
        run_module(phoenix_retention.main, retention_args(phoenix, admin_secret="a-system-key", days=30))
    assert failure.value.result["msg"] == "Phoenix's GraphQL API refused the request: Only admin can perform this action"


def test_retention_unknown_policy(phoenix):
    phoenix.graphql_override = "retention.query_unknown_id.json"
    with pytest.raises(AnsibleFailJson) as failure:
        run_module(phoenix_retention.main, retention_args(phoenix, policy_id="UHJvamVjdFRyYWNlUmV0ZW50aW9uUG9saWN5Ojk5"))
    assert "refused the request: an unexpected error occurred" in failure.value.result["msg"]


@pytest.mark.parametrize("days", [0, -3])
def test_retention_days_must_be_positive(phoenix, days):
    with pytest.raises(AnsibleFailJson) as failure:
        run_module(phoenix_retention.main, retention_args(phoenix, days=days))
    assert "days must be more than 0" in failure.value.result["msg"]


def test_retention_not_json(phoenix, tmp_path):
    phoenix.graphql_override = "system_api_keys.401.json"  # a plain-text body with HTTP 200
    with pytest.raises(AnsibleFailJson) as failure:
        run_module(phoenix_retention.main, retention_args(phoenix))
    assert "not JSON" in failure.value.result["msg"]
