#!/usr/bin/env bash
# `make release-dry`: the whole release (hack/release.sh) into a docker-registry on loopback
# and bin/release-dry, as CI runs it. Stops the registry when done.
set -euo pipefail
cd "$(dirname "$0")/.."
dir=$(mktemp -d)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
cat > "$dir/config.yml" <<CFG
version: 0.1
log: {level: warn, accesslog: {disabled: true}}
storage:
  filesystem: {rootdirectory: $dir/data}
  delete: {enabled: true}
http: {addr: 127.0.0.1:$port, secret: release-dry}
CFG
docker-registry serve "$dir/config.yml" >"$dir/registry.log" 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null || true; rm -rf "$dir"' EXIT
for _ in $(seq 50); do curl -fsS "http://127.0.0.1:$port/v2/" >/dev/null 2>&1 && break; sleep 0.1; done
curl -fsS "http://127.0.0.1:$port/v2/" >/dev/null || { cat "$dir/registry.log"; exit 1; }
make --no-print-directory release RELEASE_REGISTRY="127.0.0.1:$port" RELEASE_DIR=bin/release-dry INSECURE=1
