#!/usr/bin/env bash
# Runs ansible-test on a copy of the collection laid out as
# ansible_collections/ai_infra/langgraph_stack, which ansible-test insists on (it reads
# the real working directory, so a symlink is not enough). The copy holds exactly what
# git would commit (tracked files plus new files not ignored).
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# Outside the repository: inside it, ansible-test would ask git for the file list and get
# nothing, since .cache is ignored.
cache="${XDG_CACHE_HOME:-$HOME/.cache}/ai_infra-ansible-test"
work="$cache/$(echo "$repo" | sha256sum | cut -c1-8)"
work="$work/ansible_collections/ai_infra/langgraph_stack"
rm -rf "$work"
mkdir -p "$work"
cd "$repo"
git ls-files -z --cached --others --exclude-standard \
  | tar --null --files-from=- -cf - | tar -x -C "$work"

# ansible-test --venv bootstraps pip from ci-files.testing.ansible.com, which is not
# reachable here, so the test requirements go into a venv of our own instead, kept apart
# from .venv because ansible-test pins its own pylint, yamllint and so on.
core_pin="$(grep -E '^ansible-core==' "$repo/requirements.txt")"
venv="$cache/venv-${core_pin#ansible-core==}"
if [ ! -x "$venv/bin/ansible-test" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q "$core_pin"
fi
export PATH="$venv/bin:$PATH"

# Each sanity test gets a venv of its own that ansible-test bootstraps with its pinned pip;
# give it the offline bootstrap script and the official pip wheel from PyPI.
pip_version="$(python3 - "$venv" <<'PY'
import glob, re, sys
src = glob.glob(sys.argv[1] + "/lib/python3*/site-packages/ansible_test/_internal/python_requirements.py")[0]
print(re.search(r"pip='([0-9.]+)'", open(src).read()).group(1))
PY
)"
bootstrap="$HOME/.ansible/test/cache/get_pip_${pip_version//./_}.py"
if [ ! -f "$bootstrap" ]; then
  mkdir -p "$(dirname "$bootstrap")"
  "$venv/bin/pip" download -q --no-deps --only-binary=:all: -d "$(dirname "$bootstrap")" "pip==$pip_version"
  cp "$repo/scripts/get_pip_offline.py" "$bootstrap"
fi
cd "$work"
exec ansible-test "$@" --requirements --color no
