"""What is wrong with the secrets a role was given, named by variable, never by value.

Every role that takes a secret refuses the same things: the example vault's placeholders
(they are public), secrets shorter than the role's minimum, and strings too uniform to
have come from a generator. They are decided here once, so a placeholder that one role
refuses is refused by all of them.
"""

from __future__ import annotations

from collections.abc import Mapping

from ansible.errors import AnsibleFilterError

DOCUMENTATION = r"""
name: secret_problems
short_description: The problems of a role's secrets, one sentence each, naming only the variable
description:
  - For each secret, whether it is missing, shorter than its minimum, a known placeholder
    (the example vault's C(change-me) values and common words), or too uniform (fewer than
    C(min_distinct) different characters). An empty secret is a problem unless the role
    marks it optional.
  - The answer names variables only; no value, or part of one, ever appears in it.
options:
  _input:
    description: Variable name to its value (a string, or a list of C({name, token}) entries for token lists).
    type: dict
    required: true
  min_length:
    description: The shortest secret accepted, or a dict of variable name to its own minimum (others get 16).
    type: raw
    default: 16
  optional:
    description: Variables that may be empty (an unused feature's secret); when set they are checked like the others.
    type: list
    elements: str
    default: []
  min_distinct:
    description: The fewest different characters a secret may have.
    type: int
    default: 8
"""

EXAMPLES = r"""
- name: Refuse placeholder, short or uniform secrets
  ansible.builtin.assert:
    that: __problems | length == 0
    fail_msg: "{{ __problems | join(' ') }}"
    quiet: true
  vars:
    __problems: >-
      {{ {'redis_app_password': redis_app_password, 'redis_admin_password': redis_admin_password}
         | ai_infra.langgraph_stack.secret_problems(16) }}
"""

RETURN = r"""
_value:
  description: One sentence per problem, naming the variable; empty when every secret is fine.
  type: list
  elements: str
"""

DEFAULT_MIN_LENGTH = 16
# Substrings that mark a value someone was told to replace (the example vault's among them).
PLACEHOLDER_MARKS = ("change-me", "changeme", "change_me", "replace-me", "replaceme", "placeholder",
                     "your-secret", "your_secret", "example")
# Whole values that are words, not secrets (compared without case, digits and punctuation kept).
PLACEHOLDER_WORDS = {"password", "passw0rd", "secret", "admin", "administrator", "letmein", "qwerty",
                     "default", "token", "test", "testing", "root", "postgres", "redis", "phoenix",
                     "langgraph", "12345678", "123456789", "1234567890", "0123456789"}


def problems_of(name: str, value, min_length: int, min_distinct: int, optional: bool) -> list[str]:
    if value is None or value == "":
        return [] if optional else [f"{name} is empty: set it (ansible-vault)."]
    if not isinstance(value, str):
        raise AnsibleFilterError(f"secret_problems: {name} must be a string, got {type(value).__name__}")
    lowered = value.lower()
    if lowered.strip("!. ") in PLACEHOLDER_WORDS or any(mark in lowered for mark in PLACEHOLDER_MARKS):
        return [f"{name} is a placeholder or a common word: generate one (openssl rand -hex 32)."]
    found = []
    if len(value) < min_length:
        found.append(f"{name} is shorter than {min_length} characters.")
    if len(set(value)) < min_distinct:
        found.append(f"{name} has fewer than {min_distinct} different characters: generate one (openssl rand -hex 32).")
    return found


def secret_problems(secrets, min_length=DEFAULT_MIN_LENGTH, optional=None, min_distinct=8):
    if not isinstance(secrets, Mapping):
        raise AnsibleFilterError(f"secret_problems expects a dict of variable name to secret, got {type(secrets).__name__}")
    optional = set(optional or [])
    found: list[str] = []
    for name, value in secrets.items():
        minimum = min_length.get(name, DEFAULT_MIN_LENGTH) if isinstance(min_length, Mapping) else min_length
        try:
            minimum = int(minimum)
        except (TypeError, ValueError):
            raise AnsibleFilterError(f"secret_problems: the minimum length for {name} is {minimum!r}, not a number") from None
        if isinstance(value, (list, tuple)):
            # Token lists: [{name, token}], each token checked under the entry's name.
            for index, entry in enumerate(value):
                if not isinstance(entry, Mapping):
                    raise AnsibleFilterError(f"secret_problems: {name}[{index}] must be a dict with a token")
                label = f"{name}[{entry.get('name', index)}].token"
                found += problems_of(label, entry.get("token"), minimum, min_distinct, False)
            if not value and name not in optional:
                found.append(f"{name} is empty: set it (ansible-vault).")
            continue
        found += problems_of(name, value, minimum, min_distinct, name in optional)
    return found


class FilterModule:
    def filters(self):
        return {"secret_problems": secret_problems}
