#!/usr/bin/env bash
# Builds the Kubernetes binaries podagent's node-mode tests run against, from the Go module proxy
# (this directory's go.mod requires k8s.io/kubernetes and pins its staging modules), into a cache
# outside the repository. Idempotent: a binary whose stamp matches go.mod, the Go version
# and the flags below is not built again, so a warm call costs well under a second.
#
#   hack/controlplane/build.sh                  # kube-apiserver kube-controller-manager kube-scheduler
#   hack/controlplane/build.sh e2e.test agnhost # the upstream e2e binary and its test image's binary
#
# Environment:
#   PODAGENT_K8S_BIN  where the binaries go (default /var/cache/podagent/kubernetes-v1.37.2/bin);
#                     internal/controlplane reads the same variable.
#   BUILD_P           go build -p (default 2, the machine's cores; 1 for e2e.test, whose build peaks
#                     near 2 GB). Builds run under nice so that other work on the machine goes first.
set -euo pipefail

K8S_VERSION=v1.37.2
K8S_MINOR=37
here=$(cd "$(dirname "$0")" && pwd)
out=${PODAGENT_K8S_BIN:-/var/cache/podagent/kubernetes-${K8S_VERSION}/bin}
export PATH=$PATH:/usr/local/go/bin
command -v go >/dev/null || { echo "build.sh: Go is needed (/usr/local/go/bin/go)" >&2; exit 1; }

grep -q "^require k8s.io/kubernetes ${K8S_VERSION}\$\|^	k8s.io/kubernetes ${K8S_VERSION} " "$here/go.mod" ||
	{ echo "build.sh: $here/go.mod does not require k8s.io/kubernetes ${K8S_VERSION}" >&2; exit 1; }

# Version stamps, as Kubernetes' own hack/lib/version.sh sets them; unstamped binaries say v0.0.0
# and kubectl and the e2e framework then warn about skew.
ldflags="-s -w"
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
	ldflags+=" -X ${pkg}.gitVersion=${K8S_VERSION} -X ${pkg}.gitMajor=1 -X ${pkg}.gitMinor=${K8S_MINOR}"
	ldflags+=" -X ${pkg}.gitTreeState=clean -X ${pkg}.buildDate=1970-01-01T00:00:00Z"
done

declare -A pkgs=(
	[kube-apiserver]=k8s.io/kubernetes/cmd/kube-apiserver
	[kube-controller-manager]=k8s.io/kubernetes/cmd/kube-controller-manager
	[kube-scheduler]=k8s.io/kubernetes/cmd/kube-scheduler
	[agnhost]=k8s.io/kubernetes/test/images/agnhost
	[e2e.test]=k8s.io/kubernetes/test/e2e
)
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(kube-apiserver kube-controller-manager kube-scheduler)
for name in "${targets[@]}"; do
	[ -n "${pkgs[$name]:-}" ] || { echo "build.sh: unknown binary $name (know: ${!pkgs[*]})" >&2; exit 2; }
done

mkdir -p "$out"
# One build at a time per cache: make targets and test runs may call this concurrently.
exec 9>"$out/.lock"
flock 9

# go.mod pins every module version (go.sum only gains lines when e2e.test's test-only imports are
# first resolved, which must not rebuild the rest).
key=$( { cat "$here/go.mod"; go version; echo "$ldflags"; } | sha256sum | cut -d' ' -f1)
cd "$here"
for name in "${targets[@]}"; do
	stamp="$out/.$name.stamp"
	# agnhost goes into a test image that has no libc: static, as Kubernetes builds it.
	cgo=1
	[ "$name" != agnhost ] || cgo=0
	want="$key cgo=$cgo"
	if [ -x "$out/$name" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; then
		echo "$out/$name: up to date"
		continue
	fi
	p=${BUILD_P:-2}
	[ "$name" != e2e.test ] || p=${BUILD_P:-1}
	echo "building $name ${K8S_VERSION} into $out (go build -p $p)"
	start=$(date +%s)
	rm -f "$stamp"
	if [ "$name" = e2e.test ]; then
		# A test binary: its test-only imports are not in go.sum until built once with -mod=mod.
		nice go test -c -p "$p" -mod=mod -trimpath -ldflags "$ldflags" -o "$out/.$name.tmp" "${pkgs[$name]}"
	else
		CGO_ENABLED=$cgo nice go build -p "$p" -trimpath -ldflags "$ldflags" -o "$out/.$name.tmp" "${pkgs[$name]}"
	fi
	mv -f "$out/.$name.tmp" "$out/$name"
	echo "$want" >"$stamp"
	echo "built $out/$name in $(($(date +%s) - start))s ($(du -h "$out/$name" | cut -f1))"
done
