#!/usr/bin/env bash
# Builds the heavy test tools once per machine into
# ~/.cache/k8s-image-swapper/tools/<name>-<version>/ and reuses them.
# Usage: hack/tools.sh [name...]   (default: all). Prints nothing for tools already built.
set -euo pipefail

TOOLS_DIR="${K8S_IMAGE_SWAPPER_TOOLS:-$HOME/.cache/k8s-image-swapper/tools}"
HACK="$(cd "$(dirname "$0")" && pwd)"
ETCD_VERSION=v3.6.16
KUBE_VERSION=v1.37.2
HELM_VERSION=v3.22.0
CRICTL_VERSION=v1.37.0
CRANE_VERSION=v0.22.1
# cosign signs and verifies in e2e/signatures_test.go (offline: a key pair, no Rekor or Fulcio).
COSIGN_VERSION=v3.1.3
CONTAINERD_VERSION=v2.4.2
# @grafana/schema whose types describe the dashboard's schemaVersion (39: Grafana 10.4).
GRAFANA_SCHEMA_VERSION=10.4.0
TYPESCRIPT_VERSION=5.6.3
COREDNS_VERSION=v1.15.0
# The node components `make e2e-node` runs, built like kube-apiserver.
KUBE_NODE="kubelet kube-controller-manager kube-scheduler kube-proxy"

mkdir -p "$TOOLS_DIR"
log() { echo "tools: $*" >&2; }

# quiet runs a command, showing its output only when it fails.
quiet() {
  local out; out=$(mktemp)
  if ! "$@" >"$out" 2>&1; then cat "$out" >&2; rm -f "$out"; return 1; fi
  rm -f "$out"
}

# build_in_module NAME VERSION MODULE@VER PKG [ldflags] [extra go.mod lines]
# A throwaway module that requires MODULE so `go build` works where
# `go install` is refused (modules with replace directives).
build_in_module() {
  local name=$1 version=$2 require=$3 pkg=$4 ldflags=${5:-} extra=${6:-}
  local dir="$TOOLS_DIR/$name-$version"
  [ -x "$dir/$name" ] && return 0
  log "building $name $version (once per machine)"
  build_many "$version" "$require" "$ldflags" "$extra" "$name=$pkg"
}

# build_many VERSION MODULE@VER LDFLAGS EXTRA NAME=PKG... builds several commands of one module
# in one `go build` (they share its compilation) into $TOOLS_DIR/NAME-VERSION/NAME.
build_many() {
  local version=$1 require=$2 ldflags=$3 extra=$4; shift 4
  local work out item pkgs=(); work=$(mktemp -d); out="$work/out"
  for item in "$@"; do pkgs+=("${item#*=}"); done
  mkdir -p "$out"
  (
    cd "$work"
    cat > go.mod <<MOD
module tools.local/build

go 1.26

require ${require/@/ }
$extra
MOD
    { echo 'package tools'; echo; for p in "${pkgs[@]}"; do printf 'import _ "%s"\n' "$p"; done; } > tools.go
    GOFLAGS=-mod=mod go mod tidy >/dev/null 2>&1 || true
    if [ $# -eq 1 ]; then
      quiet env GOFLAGS=-mod=mod go build -trimpath -ldflags "$ldflags" -o "$out/${1%%=*}" "${pkgs[0]}"
    else
      # Several packages: go names each binary after its import path's last element.
      quiet env GOFLAGS=-mod=mod go build -trimpath -ldflags "$ldflags" -o "$out/" "${pkgs[@]}"
    fi
  )
  for item in "$@"; do
    local name=${item%%=*}
    mkdir -p "$TOOLS_DIR/$name-$version"
    mv "$out/$name" "$TOOLS_DIR/$name-$version/$name"
  done
  rm -rf "$work"
}

go_install() {
  local name=$1 version=$2 pkg=$3
  local dir="$TOOLS_DIR/$name-$version"
  [ -x "$dir/$name" ] && return 0
  log "installing $name $version (once per machine)"
  mkdir -p "$dir"
  quiet env GOBIN="$dir" go install "$pkg@$version"
}

etcd() { build_in_module etcd "$ETCD_VERSION" "go.etcd.io/etcd/server/v3@$ETCD_VERSION" go.etcd.io/etcd/server/v3; }

# kube_build NAME... builds commands of k8s.io/kubernetes: a throwaway module whose replace
# block maps each staging module to its published v0.x tag, as k8s.io/kubernetes' go.mod does.
kube_build() {
  local v=${KUBE_VERSION#v} minor staging replace="" todo=() c
  minor=$(echo "$v" | cut -d. -f2)
  staging="api apiextensions-apiserver apimachinery apiserver cli-runtime client-go cloud-provider cluster-bootstrap code-generator component-base component-helpers controller-manager cri-api cri-client cri-streaming csi-translation-lib dynamic-resource-allocation endpointslice externaljwt kms kube-aggregator kube-controller-manager kube-proxy kube-scheduler kubectl kubelet metrics mount-utils pod-security-admission sample-apiserver sample-cli-plugin sample-controller streaming"
  for m in $staging; do replace+="replace k8s.io/$m => k8s.io/$m v0.$minor.${v##*.}"$'\n'; done
  for c in "$@"; do
    [ -x "$TOOLS_DIR/$c-$KUBE_VERSION/$c" ] || todo+=("$c=k8s.io/kubernetes/cmd/$c")
  done
  [ ${#todo[@]} -eq 0 ] && return 0
  log "building ${todo[*]%%=*} $KUBE_VERSION (once per machine)"
  build_many "$KUBE_VERSION" "k8s.io/kubernetes@$KUBE_VERSION" \
    "-s -w -X k8s.io/component-base/version.gitVersion=$KUBE_VERSION -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=$minor" \
    "$replace" "${todo[@]}"
}

kube_apiserver() { kube_build kube-apiserver; }
# shellcheck disable=SC2086
kube_node() { kube_build $KUBE_NODE; }
# coredns: CoreDNS with only the plugins hack/coredns/main.go names, the way CoreDNS documents a
# custom build; `go install github.com/coredns/coredns` would link every plugin (cloud DNS SDKs,
# tracers) for a Corefile that uses four of them.
coredns() {
  local dir="$TOOLS_DIR/coredns-$COREDNS_VERSION" work
  [ -x "$dir/coredns" ] && return 0
  log "building coredns $COREDNS_VERSION with e2e's plugins (once per machine)"
  work=$(mktemp -d)
  grep -v '^//go:build ignore' "$HACK/coredns/main.go" > "$work/main.go"
  printf 'module tools.local/coredns\n\ngo 1.26\n\nrequire github.com/coredns/coredns %s\n' "$COREDNS_VERSION" > "$work/go.mod"
  mkdir -p "$dir"
  ( cd "$work" && quiet env GOFLAGS=-mod=mod go mod tidy &&
    quiet env GOFLAGS=-mod=mod go build -trimpath -ldflags "-s -w" -o "$dir/coredns" . )
  rm -rf "$work"
}

helm() { go_install helm "$HELM_VERSION" helm.sh/helm/v3/cmd/helm; }
crictl() { go_install crictl "$CRICTL_VERSION" sigs.k8s.io/cri-tools/cmd/crictl; }
crane() { go_install crane "$CRANE_VERSION" github.com/google/go-containerregistry/cmd/crane; }
cosign() { go_install cosign "$COSIGN_VERSION" github.com/sigstore/cosign/v3/cmd/cosign; }

containerd2() {
  local dir="$TOOLS_DIR/containerd-$CONTAINERD_VERSION" c todo=()
  for c in containerd containerd-shim-runc-v2 ctr; do
    [ -x "$dir/$c" ] || todo+=("$c=github.com/containerd/containerd/v2/cmd/$c")
  done
  [ ${#todo[@]} -eq 0 ] && return 0
  log "building ${todo[*]%%=*} $CONTAINERD_VERSION (once per machine)"
  build_many "$CONTAINERD_VERSION.build" "github.com/containerd/containerd/v2@$CONTAINERD_VERSION" "" "" "${todo[@]}"
  mkdir -p "$dir"
  for c in "${todo[@]}"; do
    c=${c%%=*}
    mv "$TOOLS_DIR/$c-$CONTAINERD_VERSION.build/$c" "$dir/$c"
    rmdir "$TOOLS_DIR/$c-$CONTAINERD_VERSION.build"
  done
}

# grafana_schema: Grafana's dashboard types and the TypeScript compiler that checks the chart's
# dashboard against them (charts/charttest, TestDashboardSchema), from the npm registry.
grafana_schema() {
  local dir="$TOOLS_DIR/grafana-schema-$GRAFANA_SCHEMA_VERSION"
  [ -x "$dir/node_modules/.bin/tsc" ] && return 0
  log "installing @grafana/schema $GRAFANA_SCHEMA_VERSION and typescript $TYPESCRIPT_VERSION (npm, once per machine)"
  mkdir -p "$dir"
  quiet npm install --prefix "$dir" --no-audit --no-fund --no-save \
    "@grafana/schema@$GRAFANA_SCHEMA_VERSION" "typescript@$TYPESCRIPT_VERSION"
}

# path NAME: the folder holding NAME's binary.
path() {
  case $1 in
    etcd) echo "$TOOLS_DIR/etcd-$ETCD_VERSION" ;;
    kube-apiserver) echo "$TOOLS_DIR/kube-apiserver-$KUBE_VERSION" ;;
    helm) echo "$TOOLS_DIR/helm-$HELM_VERSION" ;;
    crictl) echo "$TOOLS_DIR/crictl-$CRICTL_VERSION" ;;
    crane) echo "$TOOLS_DIR/crane-$CRANE_VERSION" ;;
    cosign) echo "$TOOLS_DIR/cosign-$COSIGN_VERSION" ;;
    containerd) echo "$TOOLS_DIR/containerd-$CONTAINERD_VERSION" ;;
    grafana-schema) echo "$TOOLS_DIR/grafana-schema-$GRAFANA_SCHEMA_VERSION" ;;
    coredns) echo "$TOOLS_DIR/coredns-$COREDNS_VERSION" ;;
    kubelet|kube-controller-manager|kube-scheduler|kube-proxy) echo "$TOOLS_DIR/$1-$KUBE_VERSION" ;;
    *) echo "unknown tool $1" >&2; return 2 ;;
  esac
}

if [ "${1:-}" = path ]; then shift; path "$1"; exit; fi
# kube: kube-apiserver and the node components in one build.
if [ $# -eq 0 ]; then set -- etcd kube helm crictl containerd coredns grafana-schema cosign; fi
for t in "$@"; do
  started=$SECONDS
  case $t in
    etcd) etcd ;; kube-apiserver) kube_apiserver ;; helm) helm ;; crictl) crictl ;; crane) crane ;; cosign) cosign ;;
    containerd) containerd2 ;;
    grafana-schema) grafana_schema ;;
    kube-node) kube_node ;; coredns) coredns ;;
    # shellcheck disable=SC2086
    kube) kube_build kube-apiserver $KUBE_NODE ;;
    kubelet|kube-controller-manager|kube-scheduler|kube-proxy) kube_build "$t" ;;
    *) echo "unknown tool $t" >&2; exit 2 ;;
  esac
  # A cold machine spends most of CI here: say which tool took the time.
  [ $((SECONDS - started)) -lt 2 ] || log "$t: $((SECONDS - started))s"
done
