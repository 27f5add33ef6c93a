"""One written form of the check-mode guard.

In --check a task that would change a host changes nothing, so what comes after it cannot
rely on it (a package not installed, a unit file not written). Every such guard is written

    when: not (ansible_check_mode and __step is changed)
    when: not (ansible_check_mode and (__step_a is changed or __step_b is changed))

naming each earlier step of the chain that --check did not apply: the step that would
change, and any step that the same guard skipped because of it (a skipped step is never
"changed", so it has to be followed back to the step that would change). Tasks that cannot
run in --check at all say `not ansible_check_mode`. This test keeps every role and
playbook to those forms."""

from __future__ import annotations

import pathlib
import re

import pytest

COLLECTION = pathlib.Path(__file__).resolve().parents[2]
FILES = sorted(
    [*COLLECTION.glob("roles/*/*/*.yml"), *COLLECTION.glob("playbooks/*.yml"), COLLECTION / "site.yml"]
)

STEP = r"__\w+ is changed"
GUARD = re.compile(rf"not \(ansible_check_mode and ({STEP}|\({STEP}( or {STEP})+\))\)")


def guards(text):
    """Each `(ansible_check_mode and ...` in a file (with the `not ` before it), its lines
    joined as YAML folds them."""
    flat = re.sub(r"\s*\n\s*", " ", text)
    for match in re.finditer(r"\(ansible_check_mode and", flat):
        yield flat[max(0, match.start() - 4): match.start() + 400]


def test_the_files_are_found():
    assert len(FILES) > 50


@pytest.mark.parametrize("path", FILES, ids=lambda p: str(p.relative_to(COLLECTION)))
def test_check_mode_guards_have_one_form(path):
    for guard in guards(path.read_text()):
        assert GUARD.match(guard), f"not the guard's form: {guard[:160]}"


@pytest.mark.parametrize(
    "text",
    [
        "when: not (ansible_check_mode and (__x_install is changed or __x_install is skipped))",
        "when: not (ansible_check_mode and __x_source | default({}) is changed)",
        "when: not (ansible_check_mode and __x_enabled | bool and __x_install is changed)",
    ],
)
def test_other_forms_are_refused(text):
    assert not all(GUARD.match(g) for g in guards(text))


def test_a_chain_over_two_lines_is_one_guard():
    text = "when: >-\n  not (ansible_check_mode and (__x_source is changed\n    or __x_install is changed))\n"
    assert [GUARD.match(g) is not None for g in guards(text)] == [True]
