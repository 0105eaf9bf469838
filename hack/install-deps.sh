#!/usr/bin/env bash
# Installs what podagent needs from Debian's packages, only what is missing. Never downloads binaries.
set -euo pipefail

need=()
have_pkg() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }
for pkg in containerd runc containernetworking-plugins iptables iproute2 busybox-static; do
  have_pkg "$pkg" || need+=("$pkg")
done
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "podagent needs these Debian packages: ${need[*]} (run as root to install them)" >&2
    exit 1
  fi
  echo "installing ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
if ! command -v go >/dev/null && [ -x /usr/local/go/bin/go ]; then
  echo "note: Go is at /usr/local/go/bin; add it to PATH" >&2
fi
command -v go >/dev/null || [ -x /usr/local/go/bin/go ] || { echo "podagent needs Go 1.26 or newer to build (https://go.dev/doc/install)" >&2; exit 1; }
