#!/usr/bin/env bash
# Install (when missing) and start the system pieces the real-path tests use:
#   prometheus + promtool (Debian package), docker.io + docker-compose + debootstrap (image builds),
#   iptables + iproute2 (network namespaces and link faults), slurm-wlm + munge (a one-host SLURM cluster the
#   tests start themselves: tests/slurm/cluster.sh; nothing is started here), openssh-server + client (one sshd per
#   network namespace, started by tests/sshd.py; the package's own sshd service is kept from starting here).
# Idempotent; needs root and Debian's apt. Prints what it did, one line each.
set -euo pipefail

need=()
command -v prometheus >/dev/null || need+=(prometheus)
command -v dockerd >/dev/null || need+=(docker.io)
command -v docker-compose >/dev/null || need+=(docker-compose)
command -v debootstrap >/dev/null || need+=(debootstrap)
command -v iptables >/dev/null || need+=(iptables)
command -v ip >/dev/null || need+=(iproute2)
command -v slurmctld >/dev/null && command -v slurmd >/dev/null && command -v sbatch >/dev/null || need+=(slurm-wlm)
command -v munged >/dev/null || need+=(munge)
[ -x /usr/sbin/sshd ] || need+=(openssh-server)
command -v ssh >/dev/null && command -v ssh-keygen >/dev/null || need+=(openssh-client)

if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
    echo "system-deps: missing ${need[*]} and cannot install them (needs root and apt-get)" >&2
    exit 1
  fi
  echo "system-deps: installing ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  # no service starts from a package's install (openssh-server would start sshd on this machine's port 22)
  policy=/usr/sbin/policy-rc.d
  [ -e "$policy" ] || { printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod +x "$policy" && trap 'rm -f "$policy"' EXIT; }
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

# kubectl (offline `kubectl kustomize` of deploy/k8s): Debian has no package, the Kubernetes/Cloud SDK apt
# repository does; best effort, the test that needs it says so when it is missing.
if ! command -v kubectl >/dev/null && [ "$(id -u)" = 0 ] && apt-cache show kubectl >/dev/null 2>&1; then
  echo "system-deps: installing kubectl"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends kubectl >/dev/null || echo "system-deps: kubectl could not be installed" >&2
fi

# dockerd: start it when no engine answers (CI machines start none).
if ! docker info >/dev/null 2>&1; then
  echo "system-deps: starting dockerd"
  (dockerd >/var/log/gossip-dockerd.log 2>&1 &)
  for _ in $(seq 1 60); do
    docker info >/dev/null 2>&1 && break
    sleep 1
  done
  docker info >/dev/null 2>&1 || { echo "system-deps: dockerd did not start; see /var/log/gossip-dockerd.log" >&2; exit 1; }
fi
echo "system-deps: prometheus $(prometheus --version 2>&1 | head -1 | awk '{print $3}'), docker $(docker version --format '{{.Server.Version}}' 2>/dev/null), slurm $(dpkg-query -W -f='${Version}' slurm-wlm 2>/dev/null || echo '?')"
