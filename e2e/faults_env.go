//go:build e2e

package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/k8s-image-swapper/k8s-image-swapper/daemonset/hoststoml"
	"github.com/k8s-image-swapper/k8s-image-swapper/internal/testutil/swapperbin"
)

// faultNode is a containerd whose pulls of registries go through a proxy
// process first (hosts.toml written by the daemonset package).
func faultNode(ctx context.Context, t *testing.T, proxyAddr string, hosts ...string) *containerdNode {
	t.Helper()
	node := startContainerd(t)
	plain := map[string]bool{}
	var hs []hoststoml.Host
	for _, h := range hosts {
		plain[h] = true
		hs = append(hs, hoststoml.Host{Name: h})
	}
	if _, err := hoststoml.Apply(ctx, hoststoml.Options{
		CertsDir: node.HostsDir, ProxyURL: "http://" + proxyAddr, ContainerdConfig: node.Config,
		Hosts: hs, PlainHTTP: plain,
	}); err != nil {
		t.Fatal(err)
	}
	return node
}

// faultProxyConfig is a proxy config for one plain-HTTP source and target.
func faultProxyConfig(target, source string, upstreamTimeout time.Duration) string {
	return fmt.Sprintf(`logLevel: debug
target:
  type: generic
  generic:
    registry: %q
    insecure: true
proxy:
  registries: [%q]
  tagTTL: 1s
  upstreamTimeout: %s
`, target, source, upstreamTimeout)
}

// mirrorRepo is where the target keeps source repository repo of host.
func mirrorRepo(host, repo string) string {
	return strings.Replace(host, ":", "_", 1) + "/" + repo
}

// registryStatus is the status a plain-HTTP registry answers to a HEAD.
func registryStatus(t *testing.T, host, repo, kind, ref string) int {
	t.Helper()
	req, _ := http.NewRequest(http.MethodHead, "http://"+host+"/v2/"+repo+"/"+kind+"/"+ref, nil)
	req.Header.Set("Accept", "application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json, application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.list.v2+json")
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		t.Fatalf("HEAD %s: %v", req.URL, err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// registryGet GETs a registry path and decodes JSON into out.
func registryGet(t *testing.T, url string, out any) int {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	req.Header.Set("Accept", "application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json")
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusOK && out != nil {
		if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
			t.Fatalf("GET %s: %v", url, err)
		}
	}
	return resp.StatusCode
}

// registryIntact checks that every tagged manifest in a registry has all
// its blobs, and returns how many manifests it checked.
func registryIntact(t *testing.T, host string) int {
	t.Helper()
	var cat struct{ Repositories []string }
	if code := registryGet(t, "http://"+host+"/v2/_catalog", &cat); code != http.StatusOK {
		t.Fatalf("catalog of %s: %d", host, code)
	}
	n := 0
	for _, repo := range cat.Repositories {
		var tags struct{ Tags []string }
		registryGet(t, "http://"+host+"/v2/"+repo+"/tags/list", &tags)
		for _, tag := range tags.Tags {
			var m v1.Manifest
			if code := registryGet(t, "http://"+host+"/v2/"+repo+"/manifests/"+tag, &m); code != http.StatusOK {
				t.Errorf("%s/%s:%s is listed but its manifest answers %d", host, repo, tag, code)
				continue
			}
			n++
			for _, d := range append([]v1.Hash{m.Config.Digest}, layerDigests(&m)...) {
				if code := registryStatus(t, host, repo, "blobs", d.String()); code != http.StatusOK {
					t.Errorf("%s/%s:%s references blob %s, which answers %d", host, repo, tag, d, code)
				}
			}
		}
	}
	return n
}

// copyCommand runs the binary's `copy` with a config for one source and target.
func copyCommand(t *testing.T, source, target string, images ...string) *exec.Cmd {
	t.Helper()
	cfg := filepath.Join(t.TempDir(), "config.yaml")
	body := fmt.Sprintf(`logLevel: debug
source:
  registries:
    - type: generic
      generic: {registry: %q, insecure: true}
target:
  type: generic
  generic: {registry: %q, insecure: true}
`, source, target)
	if err := os.WriteFile(cfg, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return exec.Command(swapperbin.Path(t), append([]string{"copy", "--config", cfg, "--timeout", "5m"}, images...)...)
}

// procStatus reads one field (in kB) of /proc/<pid>/status.
func procStatus(pid int, field string) (int64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), field+":"); ok {
			return strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		}
	}
	return 0, fmt.Errorf("no %s in /proc/%d/status", field, pid)
}

// scrapeGauge reads an unlabelled sample from a /metrics endpoint.
func scrapeGauge(c *http.Client, url, metric string) (float64, error) {
	resp, err := c.Get(url)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), metric+" "); ok {
			return strconv.ParseFloat(strings.TrimSpace(v), 64)
		}
	}
	return 0, fmt.Errorf("%s not in %s", metric, url)
}
