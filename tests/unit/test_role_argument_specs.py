"""Every role's defaults and meta/argument_specs.yml must agree (as prometheus-community
checks in CI): each default is declared, each declared option with a default has that
same default, every option is role-prefixed and described, and an option missing from
the defaults is a required one (secrets are required, never defaulted)."""

from __future__ import annotations

import pathlib
import re

import pytest
import yaml

COLLECTION = pathlib.Path(__file__).resolve().parents[2]
ROLES = sorted(p.parent.parent for p in COLLECTION.glob("roles/*/meta/argument_specs.yml"))


def load(path: pathlib.Path):
    return yaml.safe_load(path.read_text()) or {}


def test_every_role_has_argument_specs():
    roles = sorted(p for p in COLLECTION.glob("roles/*") if p.is_dir())
    assert roles, "no roles found"
    assert [r.name for r in roles] == [r.name for r in ROLES]


@pytest.mark.parametrize("role", ROLES, ids=lambda r: r.name)
def test_defaults_match_argument_specs(role):
    defaults = load(role / "defaults" / "main.yml")
    options = load(role / "meta" / "argument_specs.yml")["argument_specs"]["main"]["options"]

    assert sorted(set(defaults) - set(options)) == [], "defaults not declared in argument_specs"
    # Secrets are required rather than defaulted: the only options allowed without a value
    # in defaults/main.yml.
    undefaulted = sorted(n for n in set(options) - set(defaults) if not options[n].get("required"))
    assert undefaulted == [], "declared options with neither a default nor required: true"
    for name, spec in options.items():
        assert name.startswith(role.name + "_"), f"{name} is not prefixed with {role.name}_"
        assert spec.get("description"), f"{name} has no description"
        if "default" in spec:
            assert spec["default"] == defaults[name], f"{name}: argument_specs and defaults differ"


# Option names that carry a secret (not a path to one, nor a setting about secrets).
SECRET_NAME = re.compile(r"(secret|password|token|api_key)(s|_env|_environment)?$")


@pytest.mark.parametrize("role", ROLES, ids=lambda r: r.name)
def test_every_secret_option_is_no_log(role):
    """Argument validation prints the values it refused: a secret's must be hidden."""
    specs = load(role / "meta" / "argument_specs.yml")["argument_specs"]
    for entry_point, spec in specs.items():
        for name, option in (spec.get("options") or {}).items():
            if SECRET_NAME.search(name):
                assert option.get("no_log") is True, f"{entry_point}: {name} carries a secret but has no no_log: true"


def secrets_checked(role: pathlib.Path) -> set:
    """The variables a role hands to base's secrets_check, from its task files."""
    checked = set()
    for tasks in role.glob("tasks/*.yml"):
        for task in load(tasks) or []:
            include = task.get("ansible.builtin.include_role") or {}
            if include.get("tasks_from") == "secrets_check":
                checked |= set(task["vars"]["base_secrets"])
    return checked


@pytest.mark.parametrize("role", [r for r in ROLES if r.name != "reprovision_schedule"], ids=lambda r: r.name)
def test_every_secret_is_checked_for_placeholders(role):
    """Each role refuses the example vault's placeholders for every secret it takes
    (reprovision_schedule's secret environment holds other services' keys, whatever they
    look like)."""
    options = load(role / "meta" / "argument_specs.yml")["argument_specs"]["main"]["options"]
    secrets = {name for name in options if SECRET_NAME.search(name) and options[name].get("type") != "dict"}
    assert secrets <= secrets_checked(role), f"not handed to secrets_check: {sorted(secrets - secrets_checked(role))}"


def test_the_example_vault_is_refused_by_the_secret_check():
    """Every value of the example vault is a placeholder the roles refuse: copied as it is,
    it cannot reach a host."""
    from ansible_collections.ai_infra.langgraph_stack.plugins.filter.secret_problems import FilterModule

    secret_problems = FilterModule().filters()["secret_problems"]
    vault = load(COLLECTION / "inventories" / "spheron" / "group_vars" / "all" / "vault.yml.example")
    filled = {name: value for name, value in vault.items() if value}
    assert len(filled) >= 9
    for name, value in filled.items():
        assert secret_problems({name: value}, 12), f"{name} passes the secret check as it is in the example"


def _called_entry_points():
    """(role, entry point, where) for every include_role/import_role of one of our roles
    with tasks_from, in the roles and playbooks: what other code calls is an interface."""
    sources = sorted(COLLECTION.glob("roles/*/tasks/*.yml")) + sorted(COLLECTION.glob("playbooks/*.yml"))
    pattern = re.compile(r"name: ai_infra\.langgraph_stack\.(\w+)\s*\n\s*tasks_from: \"?([^\"\n]+)\"?")
    for source in sources:
        for role, tasks_from in pattern.findall(source.read_text()):
            # A templated name ("install-{{ method }}") calls any of the files it can expand to.
            if "{{" in tasks_from:
                stem = tasks_from.split("{{")[0]
                names = [p.stem for p in (COLLECTION / "roles" / role / "tasks").glob(stem + "*.yml")]
                assert names, f"{source.relative_to(COLLECTION)}: no task file matches {tasks_from}"
            else:
                names = [tasks_from.removesuffix(".yml")]
            for name in names:
                yield role, name, str(source.relative_to(COLLECTION))


def test_entry_points_that_other_code_calls_have_argument_specs():
    called = sorted(set(_called_entry_points()))
    assert called, "found no tasks_from at all: the pattern is wrong"
    missing = sorted({f"{role}.{name} (called from {where} and maybe elsewhere)" for role, name, where in called
                      if name not in load(COLLECTION / "roles" / role / "meta" / "argument_specs.yml")["argument_specs"]})
    assert missing == [], "entry points without an argument spec: " + ", ".join(missing)


@pytest.mark.parametrize("role", ROLES, ids=lambda r: r.name)
def test_entry_point_options_agree_with_main(role):
    """An option an entry point shares with the main one is the same option: same type and
    default (entry points get no defaults of their own; the role's defaults apply)."""
    specs = load(role / "meta" / "argument_specs.yml")["argument_specs"]
    main = specs["main"]["options"]
    for entry_point, spec in specs.items():
        for name, option in (spec.get("options") or {}).items():
            assert option.get("description"), f"{entry_point}: {name} has no description"
            if name in main and entry_point != "main":
                for key in ("type", "default", "elements", "choices"):
                    assert option.get(key) == main[name].get(key), f"{entry_point}: {name}'s {key} differs from main's"
