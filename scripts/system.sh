#!/usr/bin/env bash
# Runs one command with the system parts the notebooks use, then stops what it started.
#
#   scripts/system.sh [--install] -- COMMAND [ARG ...]
#
# As root on Linux (and unless SYSTEM=0):
#   --install  installs the missing Debian/Ubuntu packages first (Docker engine, QEMU, static busybox,
#              debootstrap, Chromium, a local image registry), best effort: each it cannot install is
#              reported (and docker.io is left out where Docker's docker-ce or another engine is there);
#   always     starts the Docker daemon if it is installed and not answering, and a local image registry
#              on 127.0.0.1 at a free port (exported to COMMAND as CLOUDNOTES_REGISTRY).
# Everything it starts is stopped by its own PID when COMMAND ends, whatever its exit status.
# Without root (a laptop with Docker Desktop, say) it uses what is already running and starts nothing.
set -euo pipefail

PACKAGES=(docker.io qemu-system-x86 qemu-user-static busybox-static debootstrap chromium docker-registry iproute2 cpio hyperfine crun kubernetes-client)
install=0
while [ $# -gt 0 ]; do
  case "$1" in
    --install) install=1; shift ;;
    --) shift; break ;;
    *) echo "usage: $0 [--install] -- COMMAND [ARG ...]" >&2; exit 2 ;;
  esac
done
[ $# -gt 0 ] || { echo "usage: $0 [--install] -- COMMAND [ARG ...]" >&2; exit 2; }

say() { echo "[system] $*" >&2; }
state=$(mktemp -d "${TMPDIR:-/tmp}/cloudnotes-system.XXXXXX")
dockerd_pid=""
registry_pid=""

manage=1
if [ "${SYSTEM:-1}" = 0 ]; then
  manage=0; say "SYSTEM=0: using only what is already installed and running"
elif [ "$(uname -s)" != Linux ] || [ "$(id -u)" != 0 ]; then
  manage=0; say "not root on Linux: using only what is already installed and running"
fi

stop_pid() {  # stop_pid PID NAME: TERM, wait up to 30 s, then KILL
  local pid=$1 name=$2 i
  kill -0 "$pid" 2>/dev/null || return 0
  say "stopping $name (pid $pid)"
  kill -TERM "$pid" 2>/dev/null || true
  for i in $(seq 300); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.1; done
  say "$name did not stop in 30 s: killing it"
  kill -KILL "$pid" 2>/dev/null || true
}

cleanup() {
  local rc=$?
  [ -n "$registry_pid" ] && stop_pid "$registry_pid" "image registry"
  [ -n "$dockerd_pid" ] && stop_pid "$dockerd_pid" "Docker daemon"
  rm -rf "$state"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }

# Best effort: one `apt-get update`, then every missing package in one `apt-get install`; if that fails,
# each package on its own, so that one the distribution lacks (Ubuntu's Chromium is a snap, not a deb) or
# one that would conflict cannot stop the others. Never fails the run: what is missing is reported, each
# with the reason, and summed up in one line; the notebooks that need it say so and skip their live part.
install_packages() {
  command -v apt-get >/dev/null && command -v dpkg-query >/dev/null || {
    say "no apt-get here: not installing system packages (need: ${PACKAGES[*]})"; return 0; }
  local missing=() failed=() skipped=() p
  for p in "${PACKAGES[@]}"; do
    installed "$p" && continue
    if [ "$p" = docker.io ]; then
      # Docker's own packages (docker-ce, containerd.io) conflict with docker.io; any engine already here will do.
      if installed docker-ce || installed moby-engine; then
        skipped+=("docker.io (Docker's docker-ce is installed)"); continue
      elif command -v dockerd >/dev/null; then
        skipped+=("docker.io (a dockerd is already at $(command -v dockerd))"); continue
      elif command -v docker >/dev/null && docker_answers; then
        skipped+=("docker.io (a Docker engine already answers, e.g. Docker Desktop)"); continue
      fi
    fi
    if [ "$p" = kubernetes-client ] && command -v kubectl >/dev/null; then
      skipped+=("kubernetes-client (a kubectl is already at $(command -v kubectl))"); continue
    fi
    missing+=("$p")
  done
  for p in "${skipped[@]}"; do say "not installing $p"; done
  if [ ${#missing[@]} -gt 0 ]; then
    say "installing ${missing[*]}"
    # Keep package scripts from starting their own services: we start what we need, by PID.
    local policy=/usr/sbin/policy-rc.d made_policy=0
    if [ ! -e "$policy" ]; then
      printf '#!/bin/sh\nexit 101\n' >"$policy"; chmod +x "$policy"; made_policy=1
    fi
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >"$state/apt.log" 2>&1 \
      || { say "apt-get update failed (installing from the package lists already here):"; tail -n 5 "$state/apt.log" >&2; }
    if apt-get install -y -qq --no-install-recommends "${missing[@]}" >>"$state/apt.log" 2>&1; then
      say "installed ${missing[*]}"
    else
      [ ${#missing[@]} -gt 1 ] && say "installing them together failed: trying one at a time"
      for p in "${missing[@]}"; do
        if apt-get install -y -qq --no-install-recommends "$p" >"$state/apt-$p.log" 2>&1; then
          say "installed $p"
        elif ! apt-cache show "$p" >/dev/null 2>&1 || [ -z "$(apt-cache policy "$p" | sed -n 's/^ *Candidate: //p' | grep -v '(none)')" ]; then
          say "could not install $p: this distribution's archive has no such package"
          failed+=("$p (not in the archive)")
        else
          say "could not install $p; apt-get said:"; { grep -E '^(E:|W:| )' "$state/apt-$p.log" || cat "$state/apt-$p.log"; } | tail -n 5 >&2 || true
          failed+=("$p (apt-get failed)")
        fi
      done
    fi
    [ $made_policy = 1 ] && rm -f "$policy"
  fi
  if [ ${#failed[@]} -eq 0 ] && [ ${#skipped[@]} -eq 0 ]; then
    say "system packages: all present (${PACKAGES[*]})"
  else
    local summary=() item
    for item in "${failed[@]}"; do summary+=("$item"); done
    for item in "${skipped[@]}"; do summary+=("skipped $item"); done
    local joined; joined=$(printf '%s, ' "${summary[@]}")
    say "system packages not installed: ${joined%, }; the notebooks that need them will say so"
  fi
  return 0
}

docker_answers() { timeout 10 docker info >/dev/null 2>&1; }

start_docker() {
  if command -v docker >/dev/null && docker_answers; then say "Docker daemon already answering"; return 0; fi
  command -v dockerd >/dev/null || { say "no dockerd installed: Docker notebooks will say so"; return 0; }
  [ -S /var/run/docker.sock ] && ! docker_answers && rm -f /var/run/docker.sock
  setsid dockerd >"$state/dockerd.log" 2>&1 </dev/null &
  dockerd_pid=$!
  local i
  for i in $(seq 300); do
    if docker_answers; then say "started the Docker daemon (pid $dockerd_pid)"; return 0; fi
    kill -0 "$dockerd_pid" 2>/dev/null || break
    sleep 0.1
  done
  say "the Docker daemon did not come up; its log ends with:"; tail -n 20 "$state/dockerd.log" >&2
  return 1
}

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
registry_answers() { python3 -c 'import sys, urllib.request; urllib.request.urlopen(f"http://{sys.argv[1]}/v2/", timeout=2)' "$1" 2>/dev/null; }

start_registry() {
  if [ -n "${CLOUDNOTES_REGISTRY:-}" ] && registry_answers "$CLOUDNOTES_REGISTRY"; then
    say "image registry already answering at $CLOUDNOTES_REGISTRY"; return 0; fi
  command -v docker-registry >/dev/null || { say "no docker-registry installed: registry lessons will say so"; return 0; }
  local port; port=$(free_port)
  mkdir -p "$state/registry"
  cat >"$state/registry.yml" <<YAML
version: 0.1
log: {level: warn}
storage:
  filesystem: {rootdirectory: $state/registry}
  delete: {enabled: true}
http:
  addr: 127.0.0.1:$port
YAML
  setsid docker-registry serve "$state/registry.yml" >"$state/registry.log" 2>&1 </dev/null &
  registry_pid=$!
  local i
  for i in $(seq 100); do
    if registry_answers "127.0.0.1:$port"; then
      export CLOUDNOTES_REGISTRY="127.0.0.1:$port"
      say "started an image registry at $CLOUDNOTES_REGISTRY (pid $registry_pid)"; return 0
    fi
    kill -0 "$registry_pid" 2>/dev/null || break
    sleep 0.1
  done
  say "the image registry did not come up; its log ends with:"; tail -n 20 "$state/registry.log" >&2
  return 1
}

if [ $manage = 1 ]; then
  [ $install = 1 ] && install_packages
  start_docker
  start_registry
fi

set +e
"$@"
rc=$?
set -e
exit $rc
