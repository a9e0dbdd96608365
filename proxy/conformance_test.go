package proxy

import (
	"os"
	"os/exec"
	"testing"

	"github.com/k8s-image-swapper/k8s-image-swapper/internal/testutil/registryproc"
)

// TestConformance runs the OCI distribution-spec conformance suite against
// the proxy in front of a local target: the suite pushes its content (the
// local store takes authenticated pushes through the proxy, target.local.push)
// and pulls it back through the proxy's read path. hack/conformance.sh builds the suite and runs this.
func TestConformance(t *testing.T) {
	bin := os.Getenv("OCI_CONFORMANCE_BIN")
	if bin == "" {
		t.Skip("OCI_CONFORMANCE_BIN is unset: run hack/conformance.sh")
	}
	// A real source behind the proxy, so that misses get a source's 404.
	src := registryproc.Start(t, registryproc.Options{})
	// Pushes need target.local.push and its credentials.
	e := newLocalEnvWith(t, withPush(t), func(o *setup) { o.Registries = []string{src.Addr} })
	results := os.Getenv("OCI_RESULTS_DIR")
	if results == "" {
		results = t.TempDir()
	}
	cmd := exec.Command(bin)
	cmd.Env = append(os.Environ(),
		"OCI_REGISTRY="+e.addr,
		"OCI_TLS=disabled",
		"OCI_REPO1=conformance/repo1",
		"OCI_REPO2=conformance/repo2",
		"OCI_USERNAME="+pushUser,
		"OCI_PASSWORD="+pushPass,
		"OCI_RESULTS_DIR="+results,
		"OCI_VERSION=1.1",
		"OCI_LOG=warn",
		// Every workflow (pull, push, content discovery, content
		// management), every data kind, and the optional APIs too. Not
		// sparse manifests (OCI_DATA_SPARSE, off by default): the store
		// takes a manifest only when the content it names is there.
		"OCI_API_PULL=true", "OCI_API_PUSH=true", "OCI_API_TAGS_LIST=true", "OCI_API_REFERRER=true",
		"OCI_API_TAGS_DELETE=true", "OCI_API_MANIFESTS_DELETE=true", "OCI_API_BLOBS_DELETE=true",
		"OCI_API_BLOBS_UPLOAD_CANCEL=true", "OCI_API_BLOBS_DIGEST_HEADER=true",
		"OCI_API_MANIFESTS_DIGEST_HEADER=true", "OCI_API_MANIFESTS_TAG_PARAM=true",
	)
	out, err := cmd.CombinedOutput()
	t.Logf("conformance suite output (reports in %s):\n%s", results, out)
	if err != nil {
		t.Fatalf("conformance suite: %v", err)
	}
}
