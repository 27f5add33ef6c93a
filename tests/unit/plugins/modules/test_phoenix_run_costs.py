"""phoenix_run_costs against a local HTTP server answering with root spans a real Phoenix
20.26.1 returned (fixtures/phoenix, see SOURCES.md)."""

from __future__ import annotations

import http.server
import json
import pathlib
import urllib.parse
from unittest import mock

import pytest
from ansible.module_utils import basic

from ansible_collections.ai_infra.langgraph_stack.plugins.modules import phoenix_run_costs
from ansible_collections.ai_infra.langgraph_stack.tests.unit.plugins.modules.utils import AnsibleFailJson, http_server, run_module

FIXTURES = pathlib.Path(__file__).parent / "fixtures" / "phoenix"
KEY = "a-phoenix-api-key"


class Answers:
    def __init__(self):
        self.status, self.body = 200, (FIXTURES / "root_spans.server.json").read_text()
        self.paths = []
        # cursor -> answer, for a list in pages (window_start); None is the first page.
        self.pages = None


def handler_for(answers):
    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_GET(self):
            answers.paths.append(self.path)
            body = answers.body
            if answers.pages is not None:
                cursor = urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query).get("cursor", [None])[0]
                body = json.dumps(answers.pages[cursor])
            status, body = (answers.status, body) if self.headers.get("Authorization") == "Bearer " + KEY \
                else (401, "Invalid token")
            data = body.encode()
            self.send_response(status)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    return Handler


@pytest.fixture(name="phoenix")
def phoenix_fixture():
    answers = Answers()
    with http_server(handler_for(answers)) as url:
        answers.url = url
        yield answers


def args(phoenix, **overrides):
    result = {"url": phoenix.url, "api_key": KEY}
    result.update(overrides)
    return result


def test_cost_per_run_from_the_root_spans(phoenix):
    result = run_module(phoenix_run_costs.main, args(phoenix, last=5))
    spans = json.loads(phoenix.body)["data"]
    assert not result["changed"] and len(result["runs"]) == len(spans)
    run = result["runs"][0]
    span = spans[0]
    assert run["thread_id"] == span["attributes"]["metadata.thread_id"]
    assert run["run_id"] == span["attributes"]["metadata.run_id"]
    assert run["graph_id"] == "smoke" and run["gpu_instance_type"] == "molecule-cpu"
    start = phoenix_run_costs.epoch_microseconds(span["start_time"])
    end = phoenix_run_costs.epoch_microseconds(span["end_time"])
    assert run["duration_s"] == (end - start) / 1e6
    price = span["attributes"]["gpu.hourly_usd"]
    assert run["cost_usd"] == pytest.approx(price / 3600 * (end - start) / 1e6)
    assert result["total_cost_usd"] == pytest.approx(sum(r["cost_usd"] for r in result["runs"]))
    assert result["runs_without_price"] == 0
    assert run["run_id"] in result["table"][1]
    query = urllib.parse.parse_qs(urllib.parse.urlsplit(phoenix.paths[0]).query)
    assert query == {"parent_id": ["null"], "sort": ["start_time"], "order": ["desc"], "limit": ["5"]}
    assert phoenix.paths[0].startswith("/v1/projects/langgraph/spans?")


def test_the_graph_of_an_aegra_run_from_its_span_enrichment(phoenix):
    """Aegra has no graph_id in the run's metadata; its SpanEnrichmentProcessor (added by
    the server's tracing hook) sets langfuse.trace.metadata.graph_id on every span."""
    answer = json.loads(phoenix.body)
    attributes = answer["data"][0]["attributes"]
    attributes["langfuse.trace.metadata.graph_id"] = attributes.pop("metadata.graph_id")
    phoenix.body = json.dumps(answer)
    result = run_module(phoenix_run_costs.main, args(phoenix, last=5))
    assert result["runs"][0]["graph_id"] == "smoke"


def test_one_thread_only_is_a_string_attribute_filter(phoenix):
    run_module(phoenix_run_costs.main, args(phoenix, thread_id="42", project="my project"))
    path = phoenix.paths[0]
    assert path.startswith("/v1/projects/my%20project/spans?")
    assert urllib.parse.parse_qs(urllib.parse.urlsplit(path).query)["attribute"] == ['metadata.thread_id:"42"']


def test_runs_without_a_price_are_counted_not_costed(phoenix):
    body = json.loads(phoenix.body)
    for span in body["data"]:
        del span["attributes"]["gpu.hourly_usd"]
    phoenix.body = json.dumps(body)
    result = run_module(phoenix_run_costs.main, args(phoenix))
    assert result["runs_without_price"] == len(body["data"]) and result["total_cost_usd"] == 0
    assert all(run["cost_usd"] is None for run in result["runs"])


def test_key_from_a_file(phoenix, tmp_path):
    (tmp_path / "key").write_text(KEY + "\n")
    assert run_module(phoenix_run_costs.main, {"url": phoenix.url, "api_key_file": str(tmp_path / "key")})["runs"]


@pytest.mark.parametrize("timestamp, microseconds", [
    ("2026-11-24T09:47:21.267330+00:00", 1795513641267330),
    ("2026-11-24T10:47:21.5+01:00", 1795513641500000),
    ("2026-11-24T04:17:21.1234567-05:30", 1795513641123456),
    ("2026-11-24T09:47:21Z", 1795513641000000),
    ("2026-11-24 09:47:21", 1795513641000000),
])
def test_timestamps(timestamp, microseconds):
    assert phoenix_run_costs.epoch_microseconds(timestamp) == microseconds


@pytest.mark.parametrize("status, body, overrides, message", [
    (200, "", {"api_key": "wrong"}, "Phoenix refused the credentials for GET /v1/projects/langgraph/spans"),
    (404, '{"detail": "Not Found"}', {}, "answered HTTP 404: Not Found"),
    (200, "<html>proxy error</html>", {}, "answered something that is not JSON"),
    (200, '{"data": {"spans": []}}', {}, "answered an unexpected shape"),
    (200, '{"data": [{"start_time": "yesterday", "end_time": "today"}]}', {}, "cannot read (not an ISO 8601 timestamp"),
    (200, '{"data": [{"start_time": "2026-11-24T09:47:21Z", "end_time": "2026-11-24T09:47:22Z",'
          ' "attributes": {"gpu.hourly_usd": "cheap"}}]}', {}, "gpu.hourly_usd is not a number"),
    (200, "{}", {"last": 0}, "last must be between 1 and 1000"),
    (200, "{}", {"last": 1001}, "last must be between 1 and 1000"),
    (200, "{}", {"project": "a/b"}, "project must be a Phoenix project name"),
    (200, "{}", {"url": "phoenix:6006"}, "url must be an http:// or https:// URL"),
    (200, "{}", {"url": "http://127.0.0.1:1"}, "cannot reach Phoenix at http://127.0.0.1:1"),
])
def test_bad_input_and_answers_fail_with_a_message(phoenix, status, body, overrides, message):
    phoenix.status, phoenix.body = status, body
    with pytest.raises(AnsibleFailJson) as failure:
        run_module(phoenix_run_costs.main, args(phoenix, **overrides))
    assert message in failure.value.result["msg"]


def test_missing_or_empty_key_file(phoenix, tmp_path):
    with pytest.raises(AnsibleFailJson) as failure:
        run_module(phoenix_run_costs.main, {"url": phoenix.url, "api_key_file": str(tmp_path / "none")})
    assert "cannot read api_key_file" in failure.value.result["msg"]
    (tmp_path / "empty").write_text("\n")
    with pytest.raises(AnsibleFailJson) as failure:
        run_module(phoenix_run_costs.main, {"url": phoenix.url, "api_key_file": str(tmp_path / "empty")})
    assert "is empty" in failure.value.result["msg"]


def test_key_or_key_file_required(phoenix):
    with pytest.raises(AnsibleFailJson) as failure:
        run_module(phoenix_run_costs.main, {"url": phoenix.url})
    assert "one of the following is required: api_key, api_key_file" in failure.value.result["msg"]


def test_a_project_without_traces_yet_is_no_runs_and_a_warning(phoenix):
    phoenix.status, phoenix.body = 404, "Project with name nosuch not found"
    with mock.patch.object(basic.AnsibleModule, "warn") as warn:
        result = run_module(phoenix_run_costs.main, args(phoenix, project="nosuch"))
    assert result["runs"] == [] and result["total_cost_usd"] == 0
    assert "no project 'nosuch'" in warn.call_args[0][0]


# --- window_start: each run's share of the GPUs' time --------------------------------------
# Model call spans as the builtin app's model pools write them (apps/builtin/agent/model_pools.py),
# in the shape Phoenix's span list returns (flat attribute keys, as in root_spans.server.json).

def model_call_span(number, run, worker, pool, price, start, seconds, trace="t"):
    def stamp(offset):
        whole = int(offset)
        return "2026-12-04T10:%02d:%02d.%06d+00:00" % (whole // 60, whole % 60, round((offset - whole) * 1e6))
    attributes = {"model_call.pool": pool, "model_call.pool_wanted": pool, "model_call.run_id": run,
                  "model_call.thread_id": "thread-" + run, "model_call.node": "worker"}
    if worker:
        attributes.update({"model_call.worker": worker, "model_call.hourly_usd": price})
    return {"id": "U3Bhbjo%d" % number, "name": "model call", "context": {"trace_id": trace + run, "span_id": "%016x" % number},
            "span_kind": "UNKNOWN", "parent_id": "%016x" % (number + 1000), "start_time": stamp(start), "end_time": stamp(start + seconds),
            "status_code": "OK" if worker else "ERROR", "status_message": "", "events": [], "attributes": attributes}


def test_a_window_shares_each_worker_bill_by_gpu_time_over_pages(phoenix):
    first = [model_call_span(1, "run-a", "gpu-spot-1", "spot", 0.8, 0, 30),
             model_call_span(2, "run-b", "gpu-spot-1", "spot", 0.8, 0, 10)]
    second = [model_call_span(3, "run-b", "gpu-ondemand-1", "ondemand", 2.01, 12, 4),
              model_call_span(4, "run-b", None, "spot", None, 11, 0.01)]
    phoenix.pages = {None: {"data": first, "next_cursor": "U3Bhbjoy"}, "U3Bhbjoy": {"data": second, "next_cursor": None}}
    result = run_module(phoenix_run_costs.main, args(phoenix, window_start="2026-12-04T10:00:00Z"))
    paths = phoenix.paths
    window = result["window"]
    assert window["start"] == "2026-12-04T10:00:00+00:00" and window["end"] == "2026-12-04T11:00:00+00:00"
    runs = {run["run_id"]: run for run in window["runs"]}
    assert runs["run-a"]["cost_usd"] == pytest.approx(0.8 * 25 / 30)
    assert runs["run-b"]["cost_usd"] == pytest.approx(0.8 * 5 / 30 + 2.01)
    assert runs["run-b"]["pools"] == {"spot": pytest.approx(0.8 * 5 / 30), "ondemand": pytest.approx(2.01)}
    assert runs["run-b"]["thread_id"] == "thread-run-b"
    assert window["pools"] == {"spot": pytest.approx(0.8), "ondemand": pytest.approx(2.01)}
    assert window["bill_usd"] == pytest.approx(2.81) and window["cost_usd"] == pytest.approx(2.81)
    assert window["seed_guide_usd"] == pytest.approx(0.8 / 3600 * 40 + 2.01 / 3600 * 4)
    assert window["calls_without_worker"] == 1 and window["workers"]["gpu-spot-1"]["calls"] == 2
    assert any("seed guide" in line for line in result["table"])
    first_query = urllib.parse.parse_qs(urllib.parse.urlsplit(paths[0]).query)
    assert first_query["name"] == ["model call"] and first_query["end_time"] == ["2026-12-04T11:00:00+00:00"]
    # Calls that began up to 15 min before the window may still run in it.
    assert first_query["start_time"] == ["2026-12-04T09:45:00+00:00"]
    assert urllib.parse.parse_qs(urllib.parse.urlsplit(paths[1]).query)["cursor"] == ["U3Bhbjoy"]


def test_last_hour_is_the_last_whole_hour():
    assert phoenix_run_costs.window_bounds("last_hour", 3600, now=1796005000.5) == (1796000400, 1796004000)


@pytest.mark.parametrize("overrides, message", [
    ({"window_start": "yesterday"}, "window_start must be an ISO 8601 timestamp or last_hour"),
    ({"window_start": "last_hour", "window_seconds": 30}, "window_seconds must be between 60 and 86400"),
    ({"window_start": "last_hour", "thread_id": "42"}, "parameters are mutually exclusive: window_start|thread_id"),
])
def test_bad_windows_fail_with_a_message(phoenix, overrides, message):
    with pytest.raises(AnsibleFailJson) as failure:
        run_module(phoenix_run_costs.main, args(phoenix, **overrides))
    assert message in failure.value.result["msg"]


def test_a_model_call_span_with_a_bad_price_fails_with_a_message(phoenix):
    span = model_call_span(1, "run-a", "gpu-spot-1", "spot", "cheap", 0, 30)
    phoenix.body = json.dumps({"data": [span], "next_cursor": None})
    with pytest.raises(AnsibleFailJson) as failure:
        run_module(phoenix_run_costs.main, args(phoenix, window_start="2026-12-04T10:00:00Z"))
    assert "model call span this module cannot read: model_call.hourly_usd is not a number" in failure.value.result["msg"]
