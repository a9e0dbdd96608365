# k8s-image-swapper. `make run` starts the node proxy on the embedded local
# store; `make test` runs the unit and integration tests (real registries).
GO       ?= go
BIN      := bin/k8s-image-swapper
# The node proxy alone (-tags nodeproxy): what the chart's proxy DaemonSet runs.
PROXY_BIN := bin/k8s-image-swapper-proxy
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT   ?= $(shell git rev-parse --short HEAD 2>/dev/null || echo unknown)
LDFLAGS  := -s -w -X main.version=$(VERSION) -X main.commit=$(COMMIT)
FUZZTIME ?= 60s
BENCHTIME ?= 1x
export REGISTRY_REQUIRED ?= 1
export PROMTOOL_REQUIRED ?= 1

.PHONY: all build run test e2e conformance bench lint fuzz deps tools clean image image-bins image-tar \
	node-deps e2e-node bench-node release release-dry

# The container image (hack/image, go-containerregistry, no Docker daemon): an OCI index of
# static binaries for IMAGE_PLATFORMS on a scratch base. Every date in it is the commit's, so
# one commit gives one digest. `make image` writes the OCI layout $(IMAGE_DIR)/oci;
# `make image IMAGE=host/repo:tag` also pushes it (INSECURE=1: plain HTTP, which loopback and
# private addresses get anyway); `make image-tar` writes $(IMAGE_TAR).
IMAGE           ?=
INSECURE        ?=
IMAGE_PLATFORMS ?= linux/amd64 linux/arm64
IMAGE_DIR       ?= bin/image
IMAGE_TAR       ?= $(IMAGE_DIR)/k8s-image-swapper.oci.tar
REVISION        ?= $(shell git rev-parse HEAD 2>/dev/null || echo unknown)
SOURCE_DATE_EPOCH ?= $(shell git log -1 --format=%ct 2>/dev/null || echo 0)
IMAGE_BUILD = $(GO) run ./hack/image build \
	$(foreach p,$(IMAGE_PLATFORMS),-binary $(p)=$(IMAGE_DIR)/$(subst /,-,$(p))/k8s-image-swapper \
		-proxy-binary $(p)=$(IMAGE_DIR)/$(subst /,-,$(p))/k8s-image-swapper-proxy) \
	-created $(SOURCE_DATE_EPOCH) -version $(VERSION) -revision $(REVISION) -tag $(VERSION)

all: build

build:
	$(GO) build -trimpath -ldflags "$(LDFLAGS)" -o $(BIN) ./cmd/k8s-image-swapper
	$(GO) build -tags nodeproxy -trimpath -ldflags "$(LDFLAGS)" -o $(PROXY_BIN) ./cmd/k8s-image-swapper

image-bins:
	@for p in $(IMAGE_PLATFORMS); do \
		echo "building $$p" >&2; \
		CGO_ENABLED=0 GOOS=$${p%%/*} GOARCH=$${p##*/} $(GO) build -trimpath -ldflags "$(LDFLAGS)" \
			-o $(IMAGE_DIR)/$$(echo $$p | tr / -)/k8s-image-swapper ./cmd/k8s-image-swapper || exit 1; \
		CGO_ENABLED=0 GOOS=$${p%%/*} GOARCH=$${p##*/} $(GO) build -tags nodeproxy -trimpath -ldflags "$(LDFLAGS)" \
			-o $(IMAGE_DIR)/$$(echo $$p | tr / -)/k8s-image-swapper-proxy ./cmd/k8s-image-swapper || exit 1; \
	done

image: image-bins
	$(IMAGE_BUILD) -layout $(IMAGE_DIR)/oci $(if $(IMAGE),-push $(IMAGE) $(if $(INSECURE),-insecure))

image-tar: image-bins
	$(IMAGE_BUILD) -tar $(IMAGE_TAR)

# The embedded default: a pull-through cache for the public registries into
# ./data, listening on 127.0.0.1:7439. No config and no cloud account needed.
run: build
	$(BIN) proxy --data-dir ./data

# Test prerequisites that are Debian packages: a real registry for the tests, and
# Prometheus (promtool for the chart's alert rules, the server for the e2e).
deps:
	@need=""; \
	command -v docker-registry >/dev/null 2>&1 || need="$$need docker-registry"; \
	command -v promtool >/dev/null 2>&1 || need="$$need prometheus"; \
	if [ -n "$$need" ]; then echo "installing$$need (apt)"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$need >/dev/null; fi

test: deps
	$(GO) test -count=1 ./...

# Heavy tools (etcd, kube-apiserver and the node components, CoreDNS, helm, crictl,
# containerd 2.x) built once
# per machine into ~/.cache/k8s-image-swapper/tools.
tools:
	bash hack/tools.sh

e2e: deps tools build
	E2E_REQUIRED=1 K8S_IMAGE_SWAPPER_BIN=$(CURDIR)/$(BIN) K8S_IMAGE_SWAPPER_PROXY_BIN=$(CURDIR)/$(PROXY_BIN) $(GO) test -count=1 -tags e2e -timeout 30m -skip '^TestNode' ./e2e/...

# What a real node needs from Debian: CNI plugins, iptables for kube-proxy, a static busybox
# for the test's pause and workload images.
NODE_PKGS := containernetworking-plugins iptables busybox-static
node-deps: deps
	@missing=$$(for p in $(NODE_PKGS); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then echo "installing $$missing (apt)"; apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; fi

# A real single-node cluster (etcd, kube-apiserver, kube-controller-manager, kube-scheduler,
# kubelet, kube-proxy, CoreDNS; containerd 1.6 and 2.x) and `helm install` of the chart from
# the image `make image` wrote ($(IMAGE_DIR)/oci), pushed into the node's registry.
e2e-node: node-deps tools image
	E2E_REQUIRED=1 K8S_IMAGE_SWAPPER_IMAGE_LAYOUT=$(CURDIR)/$(IMAGE_DIR)/oci $(GO) test -count=1 -tags e2e -timeout 30m \
		-run '^TestNode' ./e2e/

# Pod start on that node (BENCHMARKS.md): BENCHCOUNT runs, each on a node of its own.
bench-node: node-deps tools image
	@mkdir -p $(BENCHDIR)
	E2E_REQUIRED=1 K8S_IMAGE_SWAPPER_IMAGE_LAYOUT=$(CURDIR)/$(IMAGE_DIR)/oci $(GO) test -count=1 -tags e2e -timeout 60m \
		-c -o $(BENCHDIR)/e2e.test ./e2e/
	@( while :; do cat /proc/loadavg; sleep 5; done ) > $(BENCHDIR)/load-node.txt & sampler=$$!; \
	( cd e2e && E2E_REQUIRED=1 K8S_IMAGE_SWAPPER_IMAGE_LAYOUT=$(CURDIR)/$(IMAGE_DIR)/oci $(CURDIR)/$(BENCHDIR)/e2e.test \
		-test.run '^$$' -test.bench '^BenchmarkPodStart$$' -test.benchtime 1x -test.count $(BENCHCOUNT) -test.timeout 60m ) \
		> $(BENCHDIR)/bench-node.txt 2>&1; rc=$$?; kill $$sampler; \
	if [ $$rc -ne 0 ]; then grep -v '^        ' $(BENCHDIR)/bench-node.txt | tail -n 40 >&2; exit $$rc; fi
	@grep -v '^        ' $(BENCHDIR)/bench-node.txt | $(GO) run ./hack/benchtable -load $(BENCHDIR)/load-node.txt

# A release: the image pushed to $(RELEASE_REGISTRY)/k8s-image-swapper:$(RELEASE_VERSION),
# the chart packaged and indexed into $(RELEASE_DIR) and pushed to oci://$(RELEASE_REGISTRY)/charts.
# The workflow .github/workflows/release.yml runs it on a tag; release-dry runs all of it into
# a registry on loopback (CI runs that).
RELEASE_REGISTRY ?= ghcr.io/k8s-image-swapper
RELEASE_VERSION  ?= $(shell sed -n 's/^appVersion: *"\{0,1\}\([^"]*\)"\{0,1\}/\1/p' charts/k8s-image-swapper/Chart.yaml)
RELEASE_DIR      ?= bin/release
CHART_URL        ?= https://github.com/k8s-image-swapper/k8s-image-swapper/releases/download/v$(RELEASE_VERSION)
release:
	RELEASE_REGISTRY=$(RELEASE_REGISTRY) RELEASE_VERSION=$(RELEASE_VERSION) RELEASE_DIR=$(RELEASE_DIR) \
		CHART_URL=$(CHART_URL) INSECURE=$(INSECURE) bash hack/release.sh

release-dry: deps
	bash hack/release-dry.sh

# The OCI distribution-spec conformance suite (every workflow) against the
# proxy in front of the local store.
conformance:
	bash hack/conformance.sh

# The benchmark table of BENCHMARKS.md: each benchmark BENCHCOUNT times
# (one run each, -benchtime 1x), one package at a time, with the 1-minute
# load average sampled while they run; then hack/benchtable prints the
# medians, references and ratios. Raw output in $(BENCHDIR)/bench.txt.
BENCHCOUNT ?= 5
BENCHDIR   ?= bin/bench
BENCHRUN   ?= ^Benchmark(Pull|ColdPull10|ColdPullSmall|Peers|CopyVsRead|CopyCommand|Admission|HubColdPull)$$
BENCHPKGS  := proxy internal/mirror webhook proxy/hub
bench: deps build
	@command -v skopeo >/dev/null 2>&1 || { echo "installing skopeo (apt), the copy benchmark's reference"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends skopeo >/dev/null; }
	@mkdir -p $(BENCHDIR)
	$(GO) test -c -o $(BENCHDIR)/ $(addprefix ./,$(BENCHPKGS))
	@echo "running $(BENCHCOUNT) runs of each benchmark (several minutes; raw output in $(BENCHDIR)/bench.txt)" >&2
	@: > $(BENCHDIR)/bench.txt; \
	( while :; do cat /proc/loadavg; sleep 5; done ) > $(BENCHDIR)/load.txt & sampler=$$!; \
	rc=0; for p in $(BENCHPKGS); do \
		echo "  $$p" >&2; \
		( cd $$p && K8S_IMAGE_SWAPPER_BIN=$(CURDIR)/$(BIN) K8S_IMAGE_SWAPPER_PROXY_BIN=$(CURDIR)/$(PROXY_BIN) $(CURDIR)/$(BENCHDIR)/$$(basename $$p).test \
			-test.run '^$$' -test.bench '$(BENCHRUN)' -test.benchtime $(BENCHTIME) -test.count $(BENCHCOUNT) \
			-test.timeout 30m ) >> $(BENCHDIR)/bench.txt 2>&1 || { rc=$$?; break; }; \
	done; \
	kill $$sampler; \
	if [ $$rc -ne 0 ]; then tail -n 40 $(BENCHDIR)/bench.txt >&2; exit $$rc; fi
	@$(GO) run ./hack/benchtable -load $(BENCHDIR)/load.txt $(BENCHDIR)/bench.txt

lint:
	@out=$$(gofmt -l $$(find . -name '*.go' -not -path './.git/*')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(GO) vet -tags nodeproxy ./cmd/...
	$(GO) vet -tags e2e ./e2e/...

# Each fuzz target for FUZZTIME; new corpus entries land in testdata/fuzz.
fuzz:
	$(GO) test -run '^$$' -fuzz '^FuzzParse$$' -fuzztime $(FUZZTIME) ./internal/config/
	$(GO) test -run '^$$' -fuzz '^FuzzMapping$$' -fuzztime $(FUZZTIME) ./internal/imageref/
	$(GO) test -run '^$$' -fuzz '^FuzzWrite$$' -fuzztime $(FUZZTIME) ./proxy/

clean:
	rm -rf bin
