#!/usr/bin/env bash
# make bench: podagent, containerd's CRI plugin (driven with crictl) and podman kube play, side by
# side in one run, each on its own containerd socket (podman: its own storage) and its own pod
# subnet; hack/bench (Go) measures them and writes BENCHMARKS.md. Everything it starts is stopped
# and everything it makes removed when it ends, however it ends.
#   BENCH_PODS (100) pods in the density run, BENCH_PARALLEL (8) at a time, BENCH_SINGLE (12)
#   single-pod rounds, BENCH_PEERS (podagent,cri,podman), BENCH_OUT (BENCHMARKS.md).
set -euo pipefail
cd "$(dirname "$0")/../.."
GO=${GO:-go}
command -v "$GO" >/dev/null || GO=/usr/local/go/bin/go
pods=${BENCH_PODS:-100} parallel=${BENCH_PARALLEL:-8} single=${BENCH_SINGLE:-12}
peers=${BENCH_PEERS:-podagent,cri,podman} out=${BENCH_OUT:-BENCHMARKS.md}
[ "$(id -u)" = 0 ] || { echo "bench: run as root" >&2; exit 1; }
for p in containerd ctr runc iptables; do command -v $p >/dev/null || hack/install-deps.sh; done
if [[ $peers == *podman* ]] && ! command -v podman >/dev/null; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq podman >/dev/null
fi

W=$(mktemp -d /var/tmp/podagent-bench.XXXXXX)
R=/run/podagent-bench-${W##*.}
mkdir -p "$R"
daemons=()
cleanup() {
  set +e
  # Pods first, through their own runtimes, so that CNI DEL runs and nothing is left on the host.
  if [ -n "${agent:-}" ]; then
    rm -f "$W"/pa/manifests/*.json
    for _ in $(seq 1 300); do
      [ -z "$(ctr -a "$R/pa/containerd.sock" -n podagent-bench c ls -q 2>/dev/null)" ] && break
      sleep 0.1
    done
    kill "$agent"; wait "$agent" 2>/dev/null
  fi
  if [ -S "$R/cri/containerd.sock" ] && [ -x bin/bench/crictl ]; then
    bin/bench/crictl -r "unix://$R/cri/containerd.sock" rmp -a -f >/dev/null 2>&1
  fi
  if [ -n "${podman_net:-}" ]; then
    podman pod rm -a -f -t 0 >/dev/null 2>&1
    podman network rm -f "$podman_net" >/dev/null 2>&1
    podman system reset -f >/dev/null 2>&1 # only the bench's storage (CONTAINERS_STORAGE_CONF)
  fi
  [ -n "${mirror:-}" ] && kill "$mirror"
  for d in "${daemons[@]}"; do kill "$d"; wait "$d" 2>/dev/null; done
  # Shims outlive their containerd: stop those of the bench's sockets, by their own pids.
  for pid in $(grep -l -a -s "$R/" /proc/[0-9]*/cmdline | cut -d/ -f3); do
    [ "$pid" != $$ ] && kill -9 "$pid" 2>/dev/null
  done
  for m in $(awk -v r="$R" -v w="$W" '$5 ~ "^(" r "|" w ")" {print $5}' /proc/self/mountinfo | sort -r); do
    umount -l "$m" 2>/dev/null
  done
  for br in pabench0 cribench0; do ip link del "$br" 2>/dev/null; done
  rm -rf "$W" "$R"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

make --no-print-directory build GO="$GO"
if [[ $peers == *cri* ]] && [ ! -x bin/bench/crictl ]; then
  echo "bench: building crictl (cri-tools) from the Go module proxy"
  GOBIN=$PWD/bin/bench CGO_ENABLED=0 "$GO" install sigs.k8s.io/cri-tools/cmd/crictl@v1.34.0
fi
"$GO" build -o "$W/bench" ./hack/bench

# start_containerd NAME [CRI]: a containerd of the bench's own, on $R/NAME/containerd.sock.
start_containerd() {
  local n=$1 cri=${2:-}
  local cfg=$W/$n.toml
  mkdir -p "$W/$n" "$R/$n"
  {
    echo 'version = 2'
    echo "root = \"$W/$n/root\""
    echo "state = \"$R/$n/state\""
    echo "[grpc]"; echo "  address = \"$R/$n/containerd.sock\""
    echo "[ttrpc]"; echo "  address = \"$R/$n/containerd.sock.ttrpc\""
    if [ -z "$cri" ]; then
      echo 'disabled_plugins = ["io.containerd.grpc.v1.cri"]'
    else
      # restrict_oom_score_adj: this sandbox lacks CAP_SYS_RESOURCE (see DESIGN.md).
      cat <<TOML
[plugins."io.containerd.grpc.v1.cri"]
  restrict_oom_score_adj = true
  sandbox_image = "localhost/podagent/pause:1.0"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$W/$n/cni"
TOML
    fi
  } >"$cfg"
  containerd --config "$cfg" >"$W/$n/containerd.log" 2>&1 &
  daemons+=($!)
  for _ in $(seq 1 100); do
    ctr -a "$R/$n/containerd.sock" version >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  echo "bench: containerd $n did not start:"; tail "$W/$n/containerd.log"; exit 1
}

args=(-pods "$pods" -parallel "$parallel" -single "$single" -out "$out"
  -command "BENCH_PODS=$pods BENCH_SINGLE=$single BENCH_PEERS=$peers make bench")

# podagent: static pods in a manifest directory.
start_containerd pa
mkdir -p "$W/pa/manifests"
bin/podagent serve --root-dir "$W/pa/root" --run-dir "$R/pa/run" --log-dir "$W/pa/logs" \
  --containerd-address "$R/pa/containerd.sock" --containerd-namespace podagent-bench \
  --pod-cidr 10.252.0.0/16 --bridge-name pabench0 --node-name bench --listen "" \
  --manifest-dir "$W/pa/manifests" >"$W/pa/agent.log" 2>&1 &
agent=$!
for _ in $(seq 1 300); do
  ctr -a "$R/pa/containerd.sock" -n podagent-bench images ls -q 2>/dev/null | grep -q kubia && break
  sleep 0.1
done
args+=(-podagent-manifests "$W/pa/manifests" -podagent-logs "$W/pa/logs" -podagent-containerd "$R/pa/containerd.sock"
  -podagent-node bench -podagent-pid "$agent")

if [[ $peers == *cri* ]]; then
  start_containerd cri cri
  mkdir -p "$W/cri/cni" "$W/cri/work"
  cat >"$W/cri/cni/10-bench.conflist" <<JSON
{"cniVersion": "0.4.0", "name": "cribench", "plugins": [
  {"type": "bridge", "bridge": "cribench0", "isGateway": true, "ipMasq": true,
   "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.253.0.0/16"}]], "dataDir": "$W/cri/ipam"}},
  {"type": "portmap", "capabilities": {"portMappings": true}}]}
JSON
  ctr -a "$R/cri/containerd.sock" -n k8s.io images import bin/images/images.tar >/dev/null
  args+=(-crictl bin/bench/crictl -cri-containerd "$R/cri/containerd.sock" -cri-dir "$W/cri/work")
fi

if [[ $peers == *podman* ]]; then
  mkdir -p "$W/podman/work"
  # Its own storage, and ulimits within this sandbox's hard limits (no CAP_SYS_RESOURCE).
  export CONTAINERS_STORAGE_CONF=$W/podman/storage.conf CONTAINERS_CONF=$W/podman/containers.conf
  printf '[storage]\ndriver = "overlay"\ngraphroot = "%s"\nrunroot = "%s"\n' "$W/podman/root" "$R/podman" >"$CONTAINERS_STORAGE_CONF"
  printf '[containers]\ndefault_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]\n' >"$CONTAINERS_CONF"
  podman_net=podagent-bench
  podman network create --subnet 10.254.0.0/16 "$podman_net" >/dev/null
  # The images, from the archive through a registry on loopback: podman loads one image an archive.
  bin/podagent mirror --listen 127.0.0.1:5991 --image-archive bin/images/images.tar >"$W/podman/mirror.log" 2>&1 &
  mirror=$!
  for img in luksa/kubia:latest library/busybox:latest; do
    for _ in $(seq 1 50); do podman pull -q --tls-verify=false "127.0.0.1:5991/$img" >/dev/null 2>&1 && break; sleep 0.1; done
    podman tag "127.0.0.1:5991/$img" "docker.io/$img"
  done
  kill "$mirror"; mirror=
  args+=(-podman-network "$podman_net" -podman-dir "$W/podman/work")
fi

"$W/bench" "${args[@]}"
