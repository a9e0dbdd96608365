#!/usr/bin/env bash
# Runs the OCI distribution-spec conformance suite against the node proxy in
# front of a local target (proxy/conformance_test.go). Builds the suite once
# per machine into ~/.cache/k8s-image-swapper/tools/conformance-<version>/.
# Usage: hack/conformance.sh [results-dir]
set -euo pipefail

VERSION=v0.0.0-20260831232431-97274622c111
TOOLS_DIR="${K8S_IMAGE_SWAPPER_TOOLS:-$HOME/.cache/k8s-image-swapper/tools}"
DIR="$TOOLS_DIR/conformance-$VERSION"
if [ ! -x "$DIR/conformance" ]; then
  echo "conformance: building the suite $VERSION (once per machine)" >&2
  mkdir -p "$DIR"
  GOBIN="$DIR" go install "github.com/opencontainers/distribution-spec/conformance@$VERSION"
fi
RESULTS="${1:-$(mktemp -d)}"
mkdir -p "$RESULTS"
cd "$(dirname "$0")/.."
OCI_CONFORMANCE_BIN="$DIR/conformance" OCI_RESULTS_DIR="$(cd "$RESULTS" && pwd)" \
  go test -count=1 -run '^TestConformance$' -v ./proxy/
echo "conformance: reports (report.html, results.yaml, junit.xml) in $RESULTS" >&2
