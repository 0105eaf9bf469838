#!/usr/bin/env bash
# make run: the agent in the foreground with a working default. Ctrl-C stops the agent; pods keep running.
set -euo pipefail
cd "$(dirname "$0")/.."
manifests=${PODAGENT_MANIFEST_DIR:-/etc/podagent/manifests}
mkdir -p "$manifests"
cat <<MSG
podagent: static pods are read from $manifests (drop a Pod manifest there).
podagent: the Kubernetes API for kubectl is not served yet in this version.
MSG
exec bin/podagent serve --manifest-dir "$manifests" "$@"
