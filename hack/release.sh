#!/usr/bin/env bash
# Publishes a release: the image, the packaged chart and its index. Run by `make release`
# (on a tag, by .github/workflows/release.yml) and by `make release-dry` against a registry
# on loopback; the same steps either way.
#
#   RELEASE_REGISTRY  where the image and the chart go (ghcr.io/k8s-image-swapper)
#   RELEASE_VERSION   the version, without v (2.0.0); Chart.yaml must say the same
#   RELEASE_DIR       the folder of the chart package and index.yaml
#   CHART_URL         the URL index.yaml gives the package (the GitHub release's downloads)
#   CHART_REGISTRY    the registry the chart's default image.repository names (ghcr.io/k8s-image-swapper)
#   INSECURE          1: plain HTTP to RELEASE_REGISTRY
set -euo pipefail
cd "$(dirname "$0")/.."
: "${RELEASE_REGISTRY:?}" "${RELEASE_VERSION:?}" "${RELEASE_DIR:?}" "${CHART_URL:?}"
CHART_REGISTRY=${CHART_REGISTRY:-ghcr.io/k8s-image-swapper}
chart=charts/k8s-image-swapper
image="$RELEASE_REGISTRY/k8s-image-swapper:$RELEASE_VERSION"
plain=()
[ "${INSECURE:-}" = 1 ] && plain=(--plain-http)
log() { echo "release: $*" >&2; }
fail() { echo "release: $*" >&2; exit 1; }

bash hack/tools.sh helm
helm="$(bash hack/tools.sh path helm)/helm"

# The committed chart must say what this release publishes: a user's `helm install` pulls
# image.repository at appVersion.
field() { sed -n "s/^$1: *\"\{0,1\}\([^\"]*\)\"\{0,1\} *$/\1/p" "$chart/Chart.yaml"; }
[ "$(field version)" = "$RELEASE_VERSION" ] || fail "Chart.yaml version is $(field version), not $RELEASE_VERSION"
[ "$(field appVersion)" = "$RELEASE_VERSION" ] || fail "Chart.yaml appVersion is $(field appVersion), not $RELEASE_VERSION"
repo=$(sed -n '/^image:/,/^[^ ]/s/^  repository: *//p' "$chart/values.yaml")
[ "$repo" = "$CHART_REGISTRY/k8s-image-swapper" ] || fail "values.yaml image.repository is $repo, not $CHART_REGISTRY/k8s-image-swapper"

log "image $image"
make --no-print-directory image IMAGE="$image" VERSION="$RELEASE_VERSION" INSECURE="${INSECURE:-}"
go run ./hack/image verify -platform linux/amd64 -platform linux/arm64 \
  -version "$RELEASE_VERSION" -revision "$(git rev-parse HEAD)" $([ "${INSECURE:-}" = 1 ] && echo -insecure) "$image" \
  | tee "$RELEASE_DIR.image.txt"

log "chart $RELEASE_VERSION into $RELEASE_DIR"
rm -rf "$RELEASE_DIR"
mkdir -p "$RELEASE_DIR"
mv "$RELEASE_DIR.image.txt" "$RELEASE_DIR/image.txt"
"$helm" lint "$chart" >/dev/null
"$helm" package "$chart" --version "$RELEASE_VERSION" --app-version "$RELEASE_VERSION" -d "$RELEASE_DIR"
"$helm" repo index "$RELEASE_DIR" --url "$CHART_URL"
pkg="$RELEASE_DIR/k8s-image-swapper-$RELEASE_VERSION.tgz"
"$helm" push "$pkg" "oci://$RELEASE_REGISTRY/charts" "${plain[@]}"

# What a user gets: the pushed chart, pointed at this registry, runs only the pushed image.
rendered=$("$helm" template rel "oci://$RELEASE_REGISTRY/charts/k8s-image-swapper" --version "$RELEASE_VERSION" \
  "${plain[@]}" --set image.repository="$RELEASE_REGISTRY/k8s-image-swapper")
images=$(echo "$rendered" | sed -n 's/^ *image: *"\{0,1\}\([^"]*\)"\{0,1\}$/\1/p' | sort -u)
[ "$images" = "$image" ] || fail "the released chart runs $images, not only $image"
grep -q "k8s-image-swapper-$RELEASE_VERSION.tgz" "$RELEASE_DIR/index.yaml" || fail "index.yaml does not list the package"
log "done: $(cat "$RELEASE_DIR/image.txt"); $(ls "$RELEASE_DIR" | tr '\n' ' ')"
