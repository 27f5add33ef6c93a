#!/usr/bin/env bash
# Points .cache/<name> of this checkout at a cache shared by every checkout on the machine,
# so a fresh clone (CI clones main afresh for every run) does not download apt packages
# again, rebuild the test model or re-save the vLLM image archive. Sharing is safe: apt
# and pip keep plain download caches, and the model and the image archive are named by
# the hash of their recipe (a changed recipe builds a new one). A .cache/<name> that is
# already a directory of its own is left alone. AI_INFRA_SHARED_CACHE moves the shared
# cache; deleting it (or .cache) is always safe.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
shared="${AI_INFRA_SHARED_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/ai_infra-langgraph_stack}"
mkdir -p "$repo/.cache"
for name in apt-archives pip wheels models images; do
  if [ ! -e "$repo/.cache/$name" ] && [ ! -L "$repo/.cache/$name" ]; then
    mkdir -p "$shared/$name"
    ln -s "$shared/$name" "$repo/.cache/$name"
  fi
done
for suite in bookworm bookworm-2 bookworm-3 trixie trixie-2; do
  mkdir -p "$repo/.cache/apt-archives/$suite/partial"
done
# Second and third hosts of one suite in one scenario (molecule/fleet, molecule/vllm,
# molecule/model_router, molecule/langgraph_server's second replica) have folders of
# their own, given hard links to every download of the first's that they lack, on every
# run (apt replaces files, never edits them; -n keeps what they have).
for extra in bookworm-2 bookworm-3 trixie-2; do
  find "$repo/.cache/apt-archives/${extra%-*}" -maxdepth 1 -name '*.deb' -exec cp -ln -t "$repo/.cache/apt-archives/$extra/" {} + 2>/dev/null || true
done

