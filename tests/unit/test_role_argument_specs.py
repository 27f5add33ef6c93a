"""Every role's defaults and meta/argument_specs.yml must agree (as prometheus-community
checks in CI): each default is declared, each declared option with a default has that
same default, every option is role-prefixed and described, and an option missing from
the defaults is a required one (secrets are required, never defaulted)."""

from __future__ import annotations

import pathlib

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
