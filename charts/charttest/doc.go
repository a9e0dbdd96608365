// Package charttest holds the tests of the Helm chart in charts/k8s-image-swapper:
//
//   - helm lint (and --strict) is clean for the defaults and every values file under ci/;
//   - every rendering decodes strictly into the Kubernetes API types (client-go's scheme), and
//     the fields that matter are what they must be: the webhook's failurePolicy, sideEffects,
//     selectors and certificate, the least-privilege RBAC, the DaemonSet's node setup, the
//     config checksums; the rendered config file parses with the binary's own parser and every
//     flag the chart passes is one the binary has;
//   - values.schema.json accepts the original chart's values and refuses typos, and its config
//     section matches internal/config;
//   - the Grafana dashboard only queries metrics (and labels) that internal/metrics defines;
//   - the chart README lists every value (go test ./charts/charttest -run TestReadme -update
//     rewrites its table from values.yaml).
//
// helm comes from $HELM_BIN, else the folder hack/tools.sh builds it into, else $PATH. Without
// it the helm tests skip, unless E2E_REQUIRED is set: then it is built (once per machine) and a
// failure fails. Server-side dry runs against a real kube-apiserver are in e2e/chart_test.go.
package charttest
