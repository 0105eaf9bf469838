#!/usr/bin/env bash
# Installs what the test control plane needs beyond Go, from Debian's packages, only when missing:
# etcd-server (etcd 3.4, for kube-apiserver) and openssl. Never downloads binaries.
set -euo pipefail

need=()
have_pkg() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }
for pkg in etcd-server openssl; do
	have_pkg "$pkg" || need+=("$pkg")
done
[ ${#need[@]} -eq 0 ] && exit 0
if [ "$(id -u)" != 0 ]; then
	echo "the test control plane needs these Debian packages: ${need[*]} (run as root to install them)" >&2
	exit 1
fi
echo "installing ${need[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
# Debian's package enables and starts an etcd service on 127.0.0.1:2379; the tests start their own
# etcd on free ports and need no system one.
if command -v systemctl >/dev/null && systemctl is-active --quiet etcd 2>/dev/null; then
	systemctl disable --now etcd >/dev/null 2>&1 || true
fi
