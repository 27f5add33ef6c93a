"""spheron_instance against a local stand-in for Spheron's API that answers with the fields
Spheron documents (constructed answers: tests/unit/plugins/inventory/fixtures/spheron/SOURCES.md
says why), keeping deployments as the API would: launched, found by name, removed."""

from __future__ import annotations

import http.server
import json
import urllib.parse

import pytest

from ansible_collections.ai_infra.langgraph_stack.plugins.modules import spheron_instance
from ansible_collections.ai_infra.langgraph_stack.tests.unit.plugins.modules.utils import AnsibleFailJson, http_server, run_module

KEY = "spheron-test-key-0123456789"
OFFERS = [
    {"id": "off-h100-spot-fin", "provider": "data-crunch", "gpuType": "H100-PCIe", "gpuCount": 1, "region": "FIN-01",
     "instanceType": "SPOT", "pricePerHour": "1.49", "available": True},
    {"id": "off-h100-spot-us", "provider": "voltage-park", "gpuType": "H100-PCIe", "gpuCount": 1, "region": "us-central-1",
     "instanceType": "SPOT", "pricePerHour": 1.39, "available": False},
    {"id": "off-h100-spot-us-2", "provider": "tensordock", "gpuType": "H100-PCIe", "gpuCount": 1, "region": "us-east-1",
     "instanceType": "SPOT", "pricePerHour": 1.55, "available": True},
    {"id": "off-h100-dedicated", "provider": "voltage-park", "gpuType": "H100-PCIe", "gpuCount": 1, "region": "us-central-1",
     "instanceType": "DEDICATED", "pricePerHour": 2.01, "available": True},
    {"id": "off-h100x8", "provider": "voltage-park", "gpuType": "H100-PCIe", "gpuCount": 8, "region": "us-central-1",
     "instanceType": "SPOT", "pricePerHour": 11.2, "available": True},
    {"id": "off-l40s", "provider": "data-crunch", "gpuType": "L40S", "gpuCount": 1, "region": "FIN-01",
     "instanceType": "SPOT", "pricePerHour": 0.80},
]


class FakeSpheron:
    def __init__(self):
        self.deployments = [
            {"id": "dep-state", "name": "prod-state-1", "status": "RUNNING", "instanceType": "DEDICATED", "gpuType": "RTX-4090",
             "gpuCount": 1, "pricePerHour": 0.55, "ipAddress": "127.0.0.1"},
            {"id": "dep-old", "name": "prod-gpu-spot-1", "status": "EVICTED", "instanceType": "SPOT", "gpuType": "H100-PCIe",
             "gpuCount": 1, "pricePerHour": 1.49, "ipAddress": "203.0.113.9"},
        ]
        self.offers = [dict(o) for o in OFFERS]
        self.requests = []
        self.posted = []
        self.starts_after = 0  # GET /api/deployments answers before a new deployment runs
        self.answer_override = None  # (status, body) for every request


def handler_for(state):
    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def reply(self, code, body):
            data = body.encode() if isinstance(body, str) else json.dumps(body).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def checked(self):
            url = urllib.parse.urlparse(self.path)
            state.requests.append((self.command, url.path, dict(urllib.parse.parse_qsl(url.query))))
            if state.answer_override:
                self.reply(*state.answer_override)
                return None
            if self.headers.get("Authorization") != "Bearer " + KEY:
                self.reply(401, {"message": "Unauthorized"})
                return None
            return url

        def do_GET(self):
            url = self.checked()
            if url is None:
                return
            query = dict(urllib.parse.parse_qsl(url.query))
            if url.path == "/api/deployments":
                for deployment in state.deployments:
                    if deployment["status"] == "DEPLOYING":
                        deployment["polls"] = deployment.get("polls", 0) + 1
                        if deployment["polls"] > state.starts_after:
                            deployment.update(status="RUNNING", ipAddress="127.0.0.1")
                page, limit = int(query.get("page", 1)), int(query.get("limit", 100))
                shown = [{k: v for k, v in d.items() if k != "polls"} for d in state.deployments]
                return self.reply(200, {"deployments": shown[(page - 1) * limit:page * limit]})
            if url.path == "/api/gpu-offers":
                search = query.get("search", "").lower()
                return self.reply(200, {"offers": [o for o in state.offers if search in o["gpuType"].lower()] or state.offers})
            self.reply(404, {"message": "Not Found"})

        def do_POST(self):
            url = self.checked()
            if url is None:
                return
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            state.posted.append(body)
            offer = next(o for o in state.offers if o["id"] == body["offerId"])
            deployment = {"id": "dep-%d" % (len(state.deployments) + 1), "name": body["name"], "status": "DEPLOYING",
                          "provider": body["provider"], "region": body["region"], "instanceType": body["instanceType"],
                          "gpuType": body["gpuType"], "gpuCount": body["gpuCount"], "pricePerHour": offer["pricePerHour"],
                          "operatingSystem": body["operatingSystem"]}
            state.deployments.append(deployment)
            self.reply(201, {"deployment": deployment})

        def do_DELETE(self):
            url = self.checked()
            if url is None:
                return
            deployment_id = url.path.rsplit("/", 1)[-1]
            for deployment in state.deployments:
                if deployment["id"] == deployment_id:
                    deployment["status"] = "TERMINATED"
                    return self.reply(200, {"message": "terminated"})
            self.reply(404, {"message": "no such deployment"})

    return Handler


@pytest.fixture
def api():
    state = FakeSpheron()
    with http_server(handler_for(state)) as url:
        state.url = url
        # The stand-in's own port answers the SSH check (a launched instance's address is 127.0.0.1).
        state.port = int(url.rsplit(":", 1)[1])
        yield state


def args(api, **extra):
    base = {"api_key": KEY, "api_url": api.url, "name": "prod-gpu-spot-1", "gpu_type": "h100-pcie", "instance_type": "SPOT",
            "ssh_key_id": "key-1", "ssh_port": api.port, "poll_interval": 0, "wait_timeout": 30}
    base.update(extra)
    return base


def fails(api, check_mode=False, **extra):
    with pytest.raises(AnsibleFailJson) as failure:
        run_module(spheron_instance.main, args(api, **extra), check_mode=check_mode)
    return failure.value.result["msg"]


def test_launches_the_cheapest_available_offer_and_waits_until_it_serves(api):
    api.starts_after = 2
    result = run_module(spheron_instance.main, args(api, max_fleet_hourly_usd=10))
    assert result["changed"] is True
    # The US spot offer is cheaper but taken; dedicated and 8-GPU offers do not fit.
    assert result["offer"]["offer_id"] == "off-h100-spot-fin" and result["offer"]["hourly_usd"] == 1.49
    assert api.posted == [{"provider": "data-crunch", "offerId": "off-h100-spot-fin", "gpuType": "H100-PCIe", "gpuCount": 1,
                           "region": "FIN-01", "operatingSystem": "ubuntu-22.04", "instanceType": "SPOT", "sshKeyId": "key-1",
                           "name": "prod-gpu-spot-1"}]
    instance = result["instance"]
    assert instance["spheron_status"] == "RUNNING" and instance["ansible_host"] == "127.0.0.1"
    assert instance["gpu_instance_type"] == "1x-h100-pcie-spot" and instance["gpu_hourly_usd"] == 1.49
    # The evicted one of that name holds no machine: it counted for nothing.
    assert result["fleet_hourly_usd"] == pytest.approx(0.55 + 1.49)
    offers_asked = [query for method, path, query in api.requests if path == "/api/gpu-offers"]
    assert offers_asked == [{"search": "h100-pcie", "instanceType": "SPOT", "sortBy": "price", "sortOrder": "asc",
                             "page": "1", "limit": "100"}]


def test_a_running_instance_is_found_and_nothing_launched(api):
    run_module(spheron_instance.main, args(api))
    again = run_module(spheron_instance.main, args(api))
    assert again["changed"] is False and again["instance"]["spheron_name"] == "prod-gpu-spot-1"
    assert len(api.posted) == 1


def test_check_mode_says_what_it_would_launch_and_launches_nothing(api):
    result = run_module(spheron_instance.main, args(api), check_mode=True)
    assert result["changed"] is True and result["offer"]["offer_id"] == "off-h100-spot-fin" and result["instance"] == {}
    assert api.posted == []


def test_region_and_provider_narrow_the_offers(api):
    result = run_module(spheron_instance.main, args(api, region="US-EAST-1"), check_mode=True)
    assert result["offer"]["offer_id"] == "off-h100-spot-us-2"
    result = run_module(spheron_instance.main, args(api, gpu_count=8, provider="voltage-park"), check_mode=True)
    assert result["offer"]["offer_id"] == "off-h100x8"


def test_absent_removes_only_the_named_instance(api):
    run_module(spheron_instance.main, args(api))
    removed = run_module(spheron_instance.main, args(api, state="absent"))
    assert removed["changed"] is True and removed["instance"]["spheron_id"] == "dep-3"
    assert [(m, p) for m, p, q in api.requests if m == "DELETE"] == [("DELETE", "/api/deployments/dep-3")]
    assert [d["status"] for d in api.deployments] == ["RUNNING", "EVICTED", "TERMINATED"]
    assert run_module(spheron_instance.main, args(api, state="absent"))["changed"] is False
    # In check mode nothing is removed.
    assert run_module(spheron_instance.main, args(api, state="absent", name="prod-state-1"), check_mode=True)["changed"] is True
    assert api.deployments[0]["status"] == "RUNNING"


def test_the_spend_ceiling_refuses_a_launch_that_would_pass_it(api):
    api.deployments.append({"id": "dep-big", "name": "prod-gpu-8", "status": "RUNNING", "pricePerHour": 8.0, "ipAddress": "203.0.113.8"})
    assert fails(api, max_fleet_hourly_usd=10) == (
        "launching prod-gpu-spot-1 (off-h100-spot-fin at 1.49 USD/h) would bring the account's live deployments to "
        "10.04 USD/h, over max_fleet_hourly_usd 10.00")
    assert fails(api, check_mode=True, max_fleet_hourly_usd=10).startswith("launching prod-gpu-spot-1")
    assert api.posted == []


@pytest.mark.parametrize("extra, message", [
    ({"gpu_type": "B200"}, "Spheron offers no GPU type B200 (it offers H100-PCIe, L40S)"),
    ({"region": "ap-south-1"}, "no capacity: no available SPOT offer of 1 x h100-pcie in ap-south-1 now "
                               "(5 offer(s) of that type elsewhere or taken)"),
    ({"gpu_count": 2}, "no capacity: no available SPOT offer of 2 x h100-pcie now (5 offer(s) of that type elsewhere or taken)"),
    ({"ssh_key_id": None}, "prod-gpu-spot-1 is not launched yet; launching it needs ssh_key_id"),
    ({"gpu_type": None, "ssh_key_id": None}, "prod-gpu-spot-1 is not launched yet; launching it needs gpu_type and ssh_key_id"),
    ({"gpu_count": 0}, "gpu_count must be at least 1, got 0"),
    ({"api_key": "wrong-key-0123456789"}, "the Spheron API refused the API key (HTTP 401): check SPHERON_API_KEY or api_key"),
    ({"api_url": "app.spheron.ai"}, "api_url must be an http:// or https:// URL of Spheron's API, got 'app.spheron.ai'"),
])
def test_each_refusal_is_one_sentence(api, extra, message):
    assert fails(api, **extra) == message
    assert api.posted == []


def test_an_instance_that_never_runs_times_out(api):
    api.starts_after = 10 ** 6
    message = fails(api, wait_timeout=1, poll_interval=1)
    assert message == ("timed out after 1 s waiting for prod-gpu-spot-1 (deployment dep-3, status DEPLOYING, "
                       "no address yet) to run and answer on SSH")


def test_an_instance_reclaimed_while_it_starts(api):
    api.deployments = ReclaimingList(api.deployments)
    assert fails(api) == "deployment dep-3 of prod-gpu-spot-1 ended as RECLAIMED while it started"


class ReclaimingList(list):
    """Deployments whose new entries the provider reclaims at once."""

    def append(self, item):
        item["status"] = "RECLAIMED"
        super().append(item)


def test_two_live_deployments_of_one_name_are_refused(api):
    api.deployments.append(dict(api.deployments[0], id="dep-twin"))
    assert fails(api, name="prod-state-1") == ("2 live deployments are named prod-state-1 (dep-state, dep-twin): "
                                               "remove the extra ones by hand")


@pytest.mark.parametrize("answer, message", [
    ((500, "upstream error"), "the Spheron API answered GET /api/deployments with HTTP 500: upstream error"),
    ((200, "<html>maintenance</html>"), "the Spheron API answered GET /api/deployments with something that is not JSON: "
                                        "<html>maintenance</html>"),
    ((200, {"message": "ok"}), "the Spheron API answered GET /api/deployments with an object with keys ['message'], "
                               "not a list of deployments"),
    ((200, {"deployments": [{"name": "x"}]}), "a deployment in Spheron's answer lacks id, status: {'name': 'x'}"),
])
def test_malformed_answers_are_one_sentence(api, answer, message):
    api.answer_override = answer
    assert fails(api) == message


def test_a_malformed_offer_is_one_sentence(api):
    api.offers.append({"id": "off-bad", "gpuType": "H100-PCIe", "pricePerHour": "cheap"})
    assert fails(api) == "offer off-bad has a price that is not a number: 'cheap'"


def test_an_unreachable_api(api):
    message = fails(api, api_url="http://127.0.0.1:9")
    assert message.startswith("cannot reach the Spheron API at http://127.0.0.1:9: ")


def test_the_key_comes_from_the_environment_and_never_back(api, monkeypatch):
    monkeypatch.setenv("SPHERON_API_KEY", KEY)
    extra = args(api)
    del extra["api_key"]
    result = run_module(spheron_instance.main, extra)
    assert KEY not in json.dumps(result)
    monkeypatch.delenv("SPHERON_API_KEY")
    with pytest.raises(AnsibleFailJson) as failure:
        run_module(spheron_instance.main, extra)
    assert "api_key" in failure.value.result["msg"]
