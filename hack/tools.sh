#!/usr/bin/env bash
# Builds the heavy test tools once per machine into
# ~/.cache/k8s-image-swapper/tools/<name>-<version>/ and reuses them.
# Usage: hack/tools.sh [name...]   (default: all). Prints nothing for tools already built.
set -euo pipefail

TOOLS_DIR="${K8S_IMAGE_SWAPPER_TOOLS:-$HOME/.cache/k8s-image-swapper/tools}"
ETCD_VERSION=v3.6.16
KUBE_VERSION=v1.37.2
HELM_VERSION=v3.22.0
CRICTL_VERSION=v1.37.0
CRANE_VERSION=v0.22.1
CONTAINERD_VERSION=v2.4.2
# @grafana/schema whose types describe the dashboard's schemaVersion (39: Grafana 10.4).
GRAFANA_SCHEMA_VERSION=10.4.0
TYPESCRIPT_VERSION=5.6.3

mkdir -p "$TOOLS_DIR"
log() { echo "tools: $*" >&2; }

# quiet runs a command, showing its output only when it fails.
quiet() {
  local out; out=$(mktemp)
  if ! "$@" >"$out" 2>&1; then cat "$out" >&2; rm -f "$out"; return 1; fi
  rm -f "$out"
}

# build_module NAME VERSION MODULE@VER PKG [ldflags] [extra go.mod lines]
# A throwaway module that requires MODULE so `go build` works where
# `go install` is refused (modules with replace directives).
build_in_module() {
  local name=$1 version=$2 require=$3 pkg=$4 ldflags=${5:-} extra=${6:-}
  local dir="$TOOLS_DIR/$name-$version"
  [ -x "$dir/$name" ] && return 0
  log "building $name $version (once per machine)"
  local work; work=$(mktemp -d)
  mkdir -p "$dir"
  (
    cd "$work"
    cat > go.mod <<MOD
module tools.local/$name

go 1.26

require ${require/@/ }
$extra
MOD
    printf 'package tools\n\nimport _ "%s"\n' "$pkg" > tools.go
    GOFLAGS=-mod=mod go mod tidy >/dev/null 2>&1 || true
    quiet env GOFLAGS=-mod=mod go build -trimpath -ldflags "$ldflags" -o "$dir/$name.tmp" "$pkg"
    mv "$dir/$name.tmp" "$dir/$name"
  )
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

kube_apiserver() {
  local v=${KUBE_VERSION#v} minor staging replace=""
  minor=$(echo "$v" | cut -d. -f2)
  # The staging modules of k8s.io/kubernetes, each mapped to its published v0.x tag.
  staging="api apiextensions-apiserver apimachinery apiserver cli-runtime client-go cloud-provider cluster-bootstrap code-generator component-base component-helpers controller-manager cri-api cri-client csi-translation-lib dynamic-resource-allocation endpointslice externaljwt kms kube-aggregator kube-controller-manager kube-proxy kube-scheduler kubectl kubelet metrics mount-utils pod-security-admission sample-apiserver sample-cli-plugin sample-controller streaming"
  for m in $staging; do replace+="replace k8s.io/$m => k8s.io/$m v0.$minor.${v##*.}"$'\n'; done
  build_in_module kube-apiserver "$KUBE_VERSION" "k8s.io/kubernetes@$KUBE_VERSION" k8s.io/kubernetes/cmd/kube-apiserver \
    "-s -w -X k8s.io/component-base/version.gitVersion=$KUBE_VERSION -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=$minor" \
    "$replace"
}

helm() { go_install helm "$HELM_VERSION" helm.sh/helm/v3/cmd/helm; }
crictl() { go_install crictl "$CRICTL_VERSION" sigs.k8s.io/cri-tools/cmd/crictl; }
crane() { go_install crane "$CRANE_VERSION" github.com/google/go-containerregistry/cmd/crane; }

containerd2() {
  local dir="$TOOLS_DIR/containerd-$CONTAINERD_VERSION" c
  mkdir -p "$dir"
  for c in containerd containerd-shim-runc-v2 ctr; do
    [ -x "$dir/$c" ] && continue
    build_in_module "$c" "$CONTAINERD_VERSION.build" "github.com/containerd/containerd/v2@$CONTAINERD_VERSION" \
      "github.com/containerd/containerd/v2/cmd/$c"
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
    containerd) echo "$TOOLS_DIR/containerd-$CONTAINERD_VERSION" ;;
    grafana-schema) echo "$TOOLS_DIR/grafana-schema-$GRAFANA_SCHEMA_VERSION" ;;
    *) echo "unknown tool $1" >&2; return 2 ;;
  esac
}

if [ "${1:-}" = path ]; then shift; path "$1"; exit; fi
if [ $# -eq 0 ]; then set -- etcd kube-apiserver helm crictl containerd grafana-schema; fi
for t in "$@"; do
  case $t in
    etcd) etcd ;; kube-apiserver) kube_apiserver ;; helm) helm ;; crictl) crictl ;; crane) crane ;;
    containerd) containerd2 ;;
    grafana-schema) grafana_schema ;;
    *) echo "unknown tool $t" >&2; exit 2 ;;
  esac
done
