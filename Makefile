# podagent: `make run` and `make test` are all a fresh Debian 12 host (as root) needs.
SHELL := /bin/bash
GO ?= go
BIN := bin
GOFLAGS_STATIC := CGO_ENABLED=0

.PHONY: all build images deps containerd run test e2e unit lint bench clean openapi

all: build

build: $(BIN)/podagent $(BIN)/podagent-logger images

$(BIN)/podagent: $(shell find . -name '*.go' -not -path './bin/*') go.mod go.sum
	$(GOFLAGS_STATIC) $(GO) build -trimpath -o $@ ./cmd/podagent

# The log driver each container's shim runs, found beside bin/podagent: stripped, since one runs
# per container and its pages are what a container's log costs.
$(BIN)/podagent-logger: $(shell find cmd/podagent-logger logs -name '*.go') go.mod go.sum
	$(GOFLAGS_STATIC) $(GO) build -trimpath -ldflags=-s -o $@ ./cmd/podagent-logger

# The pause, kubia and busybox images, built from this repo and Debian's busybox-static, never downloaded.
images: $(BIN)/images/images.tar
$(BIN)/images/images.tar: $(shell find cmd/pause hack/images internal/testimages runtime/ociarchive -name '*.go')
	$(GO) run ./hack/mkimages -out $(BIN)/images

# Installs what is missing from Debian's packages.
deps:
	hack/install-deps.sh

# Starts containerd when no socket answers.
containerd: deps
	hack/containerd.sh

run: deps build containerd
	hack/run.sh

# Unit tests everywhere; root/containerd end-to-end tests where this runs as root (they skip
# with a clear message elsewhere). -p 1: the e2e packages share one containerd and would only
# contend for the machine's two cores.
test: lint
	@if [ "$$(id -u)" = 0 ]; then $(MAKE) --no-print-directory containerd controlplane; fi
	$(GO) test -count=1 -p 1 -timeout 20m ./...

unit:
	$(GO) test -count=1 -short ./...

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	  if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

# Regenerates apiserver/openapi/*.json.gz from the kube-apiserver's OpenAPI documents of the
# k8s.io/kubernetes release matching go.mod's k8s.io/api (see hack/openapi).
openapi:
	cd apiserver && $(GO) generate -run hack/openapi .

# podagent beside containerd's CRI (crictl) and podman kube play, in one run; writes BENCHMARKS.md.
# BENCH_PODS, BENCH_SINGLE, BENCH_PEERS: see hack/bench/bench.sh.
bench: deps
	GO=$(GO) hack/bench/bench.sh

clean:
	rm -rf $(BIN)

.PHONY: controlplane controlplane-e2e

# kube-apiserver, kube-controller-manager and kube-scheduler of the k8s.io/kubernetes release
# matching go.mod's k8s.io/api, built from the Go module proxy into /var/cache/podagent (a no-op once
# built), and Debian's etcd-server: what internal/controlplane runs. See hack/controlplane/build.sh.
controlplane:
	hack/controlplane/deps.sh
	hack/controlplane/build.sh

# The upstream e2e binary (e2e.test) and agnhost, from the same module, into the same cache.
controlplane-e2e: controlplane
	hack/controlplane/build.sh e2e.test agnhost

.PHONY: install uninstall

# podagent as a systemd service: builds, installs the binary, the images, the units and a default
# /etc/podagent/config.yaml (kept if present). As root; see hack/install.sh.
install:
	hack/install.sh install

# Removes the binary, the images and the units; never the pods, their state or /etc/podagent.
uninstall:
	hack/install.sh uninstall
