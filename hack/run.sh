#!/usr/bin/env bash
# make run: the agent in the foreground with a working default. Ctrl-C stops the agent; pods keep running.
#
# There is no registry here, so the images `make build` made (pause, luksa/kubia, busybox) are
# served by `podagent mirror` on 127.0.0.1 and the agent uses it as the mirror of docker.io: the
# seed's manifests (`image: luksa/kubia`, pull policy Always by default) run verbatim, offline.
set -euo pipefail
cd "$(dirname "$0")/.."
manifests=${PODAGENT_MANIFEST_DIR:-/etc/podagent/manifests}
mirror_addr=${PODAGENT_MIRROR_ADDR:-127.0.0.1:5000}
mkdir -p "$manifests"

bin/podagent mirror --listen "$mirror_addr" --image-archive bin/images/images.tar &
mirror_pid=$!
trap 'kill $mirror_pid 2>/dev/null || true' EXIT
for _ in $(seq 50); do
  (exec 3<>"/dev/tcp/${mirror_addr%:*}/${mirror_addr##*:}") 2>/dev/null && break
  kill -0 $mirror_pid 2>/dev/null || { echo "podagent: the image mirror did not start (is $mirror_addr taken? set PODAGENT_MIRROR_ADDR)" >&2; exit 1; }
  sleep 0.1
done

cat <<MSG
podagent: static pods are read from $manifests (drop a Pod manifest there).
podagent: docker.io images are pulled from the local mirror at http://$mirror_addr.
MSG
bin/podagent serve --manifest-dir "$manifests" --registry-mirror "docker.io=http://$mirror_addr" "$@" &
agent_pid=$!
# Ctrl-C reaches both through the terminal; a plain SIGTERM to this script is passed on, so that
# neither outlives it. The agent stopping leaves the pods running, as the kubelet does.
trap 'kill -TERM $agent_pid $mirror_pid 2>/dev/null || true' INT TERM
status=0
wait $agent_pid || status=$?
if [ "$status" -gt 128 ]; then
  # The trapped signal interrupted wait before the agent finished stopping: wait for its own status.
  wait $agent_pid 2>/dev/null && status=0 || { s=$?; [ "$s" -ne 127 ] && status=$s; }
fi
exit "$status"
