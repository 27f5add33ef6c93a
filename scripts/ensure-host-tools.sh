#!/usr/bin/env bash
# Installs and starts what `make stack` and `make test` need on a fresh Debian 12 machine:
# Docker engine (Debian's docker.io), debootstrap, shellcheck, Node.js with npm. Safe to run again: it only acts
# on what is missing. The machines we run on have no systemd as PID 1, so the engine is
# started by hand when it is not answering.
set -euo pipefail

need=()
command -v dockerd >/dev/null 2>&1 || need+=(docker.io)
command -v debootstrap >/dev/null 2>&1 || need+=(debootstrap)
# ansible-test sanity checks our shell scripts with it (and skips the check without it).
command -v shellcheck >/dev/null 2>&1 || need+=(shellcheck)
# molecule/langgraph_server drives the stack with the official JS SDK (from npm).
command -v node >/dev/null 2>&1 || need+=(nodejs)
command -v npm >/dev/null 2>&1 || need+=(npm)

if ((${#need[@]})); then
  echo "installing ${need[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

if ! docker info >/dev/null 2>&1; then
  if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
    systemctl start docker
  else
    echo "starting dockerd" >&2
    nohup dockerd >/var/log/dockerd.log 2>&1 &
  fi
  for _ in $(seq 60); do
    docker info >/dev/null 2>&1 && break
    sleep 1
  done
  docker info >/dev/null 2>&1 || { echo "dockerd did not start; see /var/log/dockerd.log" >&2; exit 1; }
fi
