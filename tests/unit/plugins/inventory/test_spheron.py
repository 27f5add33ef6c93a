"""The spheron inventory plugin on answers constructed from Spheron's documentation
(fixtures/spheron/SOURCES.md): hosts, variables, groups, compose/keyed_groups, paging,
the inventory cache, and one sentence for each failure."""

from __future__ import annotations

import json
import pathlib
from unittest import mock

import pytest
import requests
from ansible.errors import AnsibleError, AnsibleParserError
from ansible.inventory.data import InventoryData
from ansible.parsing.dataloader import DataLoader
from ansible.plugins.loader import inventory_loader

FIXTURES = pathlib.Path(__file__).parent / "fixtures" / "spheron"
KEY = "spheron-test-key"


def answer(status=200, body=None, text=None):
    response = mock.Mock(spec=requests.Response)
    response.status_code = status
    response.text = text if text is not None else json.dumps(body)
    if text is not None:
        response.json.side_effect = ValueError("not JSON")
    else:
        response.json.return_value = body
    return response


def deployments():
    return json.loads((FIXTURES / "deployments.json").read_text())


def run(tmp_path, responses, config=None, cache=False, api_key=KEY):
    """Parse an inventory file for the plugin with requests' get answering `responses`."""
    settings = {"plugin": "ai_infra.langgraph_stack.spheron"}
    if api_key:
        settings["api_key"] = api_key
    settings.update(config or {})
    path = tmp_path / "spheron.yml"
    path.write_text(json.dumps(settings))
    plugin = inventory_loader.get("ai_infra.langgraph_stack.spheron")
    inventory = InventoryData()
    with mock.patch.object(requests.Session, "get", side_effect=responses) as get:
        plugin.parse(inventory, DataLoader(), str(path), cache=cache)
    # What Ansible's InventoryManager does after each parse: write the cache back (a
    # plugin without a cache configured has none to write).
    try:
        plugin.update_cache_if_changed()
    except AttributeError:
        pass
    return inventory, get


def host_vars(inventory, name):
    return inventory.get_host(name).get_vars()


def group_hosts(inventory, group):
    return sorted(h.name for h in inventory.groups[group].get_hosts())


def test_running_deployments_become_hosts_with_their_variables(tmp_path):
    inventory, get = run(tmp_path, [answer(body=deployments())])
    assert sorted(inventory.hosts) == ["prod-edge-obs-1", "prod-gpu-1", "prod-gpu-2", "prod-state-1", "spheron-dep-e1f2"]
    state = host_vars(inventory, "prod-state-1")
    assert state["ansible_host"] == "203.0.113.10" and state["ansible_user"] == "root"
    assert state["spheron_private_ip"] == "10.0.0.10" and state["spheron_id"] == "dep-1a2b"
    worker = host_vars(inventory, "prod-gpu-2")
    assert worker["gpu_type"] == "L40S" and worker["gpu_count"] == 2
    assert worker["spheron_instance_type"] == "SPOT" and worker["spheron_region"] == "FIN-01"
    assert worker["gpu_hourly_usd"] == 1.78 and worker["gpu_instance_type"] == "2x-l40s-spot"
    assert host_vars(inventory, "prod-gpu-1")["gpu_hourly_usd"] == 1.49  # sent as a string
    assert "gpu_hourly_usd" not in host_vars(inventory, "spheron-dep-e1f2")  # no price sent
    # One request, with the key as a bearer token and paging parameters.
    assert get.call_args.kwargs["params"] == {"page": 1, "limit": 100}
    assert get.call_args.args[0] == "https://app.spheron.ai/api/deployments"


def test_groups_by_name_convention_gpu_type_instance_type_and_region(tmp_path):
    inventory, get = run(tmp_path, [answer(body=deployments())])
    assert group_hosts(inventory, "state") == ["prod-state-1"]
    assert group_hosts(inventory, "gpu_workers") == ["prod-gpu-1", "prod-gpu-2"]
    assert group_hosts(inventory, "edge") == ["prod-edge-obs-1"]
    assert group_hosts(inventory, "observability") == ["prod-edge-obs-1"]
    assert group_hosts(inventory, "spheron_spot") == ["prod-gpu-1", "prod-gpu-2"]
    assert group_hosts(inventory, "spheron_dedicated") == ["prod-edge-obs-1", "prod-state-1", "spheron-dep-e1f2"]
    assert group_hosts(inventory, "spheron_gpu_h100_pcie") == ["prod-gpu-1"]
    assert group_hosts(inventory, "spheron_region_fin_01") == ["prod-gpu-1", "prod-gpu-2"]


def test_all_in_one_name_and_own_words(tmp_path):
    body = deployments()
    body["deployments"][5]["name"] = "lab-all-1"
    inventory, get = run(tmp_path, [answer(body=body)], {"name_groups": {"gpu_workers": "worker", "state": "db"}})
    assert group_hosts(inventory, "gpu_workers") == ["lab-all-1"]
    assert group_hosts(inventory, "state") == ["lab-all-1"]


def test_statuses_option(tmp_path):
    inventory, get = run(tmp_path, [answer(body=deployments())], {"statuses": ["deploying"]})
    assert sorted(inventory.hosts) == ["prod-gpu-3"]


def test_compose_groups_and_keyed_groups(tmp_path):
    config = {
        "compose": {"private_ip": "spheron_private_ip | default(ansible_host)"},
        "groups": {"cheap": "gpu_hourly_usd is defined and gpu_hourly_usd < 1"},
        "keyed_groups": [{"key": "spheron_provider", "prefix": "provider"}],
    }
    inventory, get = run(tmp_path, [answer(body=deployments())], config)
    assert host_vars(inventory, "prod-state-1")["private_ip"] == "10.0.0.10"
    assert host_vars(inventory, "prod-gpu-1")["private_ip"] == "203.0.113.21"
    assert group_hosts(inventory, "cheap") == ["prod-edge-obs-1"]
    assert group_hosts(inventory, "provider_data_crunch") == ["prod-gpu-1", "prod-gpu-2"]


def test_pages_until_a_short_one(tmp_path):
    all_of_them = deployments()["deployments"]
    pages = [answer(body={"data": all_of_them[:2]}), answer(body={"data": all_of_them[2:4]}), answer(body={"data": all_of_them[4:5]})]
    inventory, get = run(tmp_path, pages, {"page_size": 2})
    assert [c.kwargs["params"]["page"] for c in get.call_args_list] == [1, 2, 3]
    assert sorted(inventory.hosts) == ["prod-edge-obs-1", "prod-gpu-1", "prod-gpu-2", "prod-state-1"]


def test_bare_list_answer(tmp_path):
    inventory, get = run(tmp_path, [answer(body=deployments()["deployments"])], {"page_size": 2})
    assert get.call_count == 1 and len(inventory.hosts) == 5


def test_duplicate_names_get_their_id(tmp_path):
    body = deployments()
    body["deployments"][2]["name"] = "prod-gpu-1"
    inventory, get = run(tmp_path, [answer(body=body)])
    assert "prod-gpu-1" in inventory.hosts and "prod-gpu-1-dep-5e6f" in inventory.hosts


def test_inventory_cache_spares_the_second_request(tmp_path):
    config = {"cache": True, "cache_plugin": "ansible.builtin.jsonfile", "cache_connection": str(tmp_path / "cache")}
    first, get = run(tmp_path, [answer(body=deployments())], config, cache=True)
    assert get.call_count == 1
    second, get = run(tmp_path, [], config, cache=True)
    assert get.call_count == 0 and sorted(second.hosts) == sorted(first.hosts)
    # cache=False (ansible-inventory --flush-cache) asks again.
    third, get = run(tmp_path, [answer(body=deployments())], config, cache=False)
    assert get.call_count == 1


@pytest.mark.parametrize("response, message", [
    (answer(401, text="Unauthorized"), "the Spheron API refused the API key (HTTP 401)"),
    (answer(403, text="Forbidden"), "the Spheron API refused the API key (HTTP 403)"),
    (answer(500, text="upstream error"), "answered GET /api/deployments with HTTP 500: upstream error"),
    (answer(200, text="<html>maintenance</html>"), "something that is not JSON: <html>maintenance</html>"),
    (answer(body={"message": "ok"}), "not a list of deployments"),
    (answer(body="deployments"), "answered GET /api/deployments with str, not a list"),
    (answer(body={"deployments": [{"id": "dep-1", "status": "RUNNING"}]}), "a deployment in Spheron's answer lacks ipAddress"),
    (answer(body={"deployments": [{"id": "dep-1", "status": "RUNNING", "ipAddress": "203.0.113.9", "pricePerHour": "cheap"}]}),
     "deployment dep-1 has a price that is not a number: 'cheap'"),
    (requests.ConnectionError("Name or service not known"), "cannot reach the Spheron API at https://app.spheron.ai/api/deployments"),
])
def test_failures_say_what_went_wrong(tmp_path, response, message):
    with pytest.raises(AnsibleParserError) as failure:
        run(tmp_path, [response])
    assert message in str(failure.value)


def test_missing_api_key(tmp_path, monkeypatch):
    monkeypatch.delenv("SPHERON_API_KEY", raising=False)
    with pytest.raises(AnsibleError) as failure:
        run(tmp_path, [], api_key=None)
    assert "api_key" in str(failure.value)


def test_only_its_own_files(tmp_path):
    plugin = inventory_loader.get("ai_infra.langgraph_stack.spheron")
    (tmp_path / "hosts.yml").write_text("all: {}")
    (tmp_path / "spheron.yml").write_text("plugin: ai_infra.langgraph_stack.spheron")
    assert not plugin.verify_file(str(tmp_path / "hosts.yml"))
    assert plugin.verify_file(str(tmp_path / "spheron.yml"))


def test_a_worker_pools_yml_launched_carries_its_pool(tmp_path):
    body = deployments()
    renamed = next(item for item in body["deployments"] if item["name"] == "prod-gpu-2")
    renamed["name"] = "prod-gpu-spot-2"
    inventory, _get = run(tmp_path, [answer(body=body)])
    assert host_vars(inventory, "prod-gpu-spot-2")["spheron_pool"] == "spot"
    assert "spheron_pool" not in host_vars(inventory, "prod-gpu-1")
    assert "prod-gpu-spot-2" in group_hosts(inventory, "gpu_workers")
