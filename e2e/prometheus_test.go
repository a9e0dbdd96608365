//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	k8sruntime "k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/yaml"

	"github.com/k8s-image-swapper/k8s-image-swapper/internal/testutil/images"
	"github.com/k8s-image-swapper/k8s-image-swapper/internal/testutil/registryproc"
	"github.com/k8s-image-swapper/k8s-image-swapper/internal/testutil/swapperbin"
	"github.com/k8s-image-swapper/k8s-image-swapper/webhook/webhooktest"
)

// TestPrometheus has a real Prometheus (Debian's 2.42) scrape webhooks and node proxies as the
// chart's ServiceMonitor and PodMonitor select them (the same scheme, path and TLS: the
// webhooks serve the chart's own certificate, verified with the chart's CA and server name),
// load the chart's PrometheusRule, and run a workload with each admission decision, a cold
// pull, a warm pull, a pull-time fallback, a copy failure, queue drops, retried 429s, a corrupt
// source, a target that does not answer and a dry run. Then every query of the chart's
// dashboard, with its variables substituted, returns data, and every alert of the rule fires
// (the webhook and a proxy are stopped at the end for the "down" alerts).
//
// Changed from what runs in a cluster, and why: scrape and rule evaluation intervals of 1s and
// each rule's `for` cut to 2s, so the test takes a minute rather than an hour; the admission
// latency budget set to 0.1ms through the chart's value, so that normal latency is above it; the
// share of pulls from the sources that alerts cut from 0.5 to 0.3, because the workload's share
// is about one half (12 of 24 answers), and which side of 0.5 it lands on depended on races.
func TestPrometheus(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	const ns = "swapper"
	bin := swapperbin.Path(t)
	helmBin := kubeTool(t, "helm")
	src := registryproc.Start(t, registryproc.Options{})
	tgt := registryproc.Start(t, registryproc.Options{})
	bad := startFaultRelay(t, src.Addr, "") // flips a byte of every blob: a corrupt source
	bad.corrupt.Store(true)
	slow := startFaultRelay(t, src.Addr, "") // answers each path's first request 429
	seen := map[string]bool{}
	slow.throttle = func(r *http.Request) bool {
		first := !seen[r.Method+r.URL.Path]
		seen[r.Method+r.URL.Path] = true
		return first
	}

	// The chart's monitoring objects and certificate.
	dir := t.TempDir()
	values := filepath.Join(dir, "values.yaml")
	writeKubeFile(t, values, []byte(`serviceMonitor: {enabled: true}
podMonitor: {enabled: true}
proxy: {metrics: {enabled: true}}
prometheusRule: {enabled: true, admissionLatencySeconds: 0.0001, sourceShare: 0.3}
grafanaDashboard: {enabled: true}
hub: {enabled: true}
`))
	out, err := exec.CommandContext(ctx, helmBin, "template", "rel", filepath.Join(repoRoot(), "charts", "k8s-image-swapper"),
		"--namespace", ns, "-f", values).CombinedOutput()
	if err != nil {
		t.Fatalf("helm template: %v\n%s", err, out)
	}
	mon := parseMonitoring(t, out)

	// Three webhooks: the main one, one in dry run, one whose target does not answer.
	platform := "linux/" + runtime.GOARCH
	imgA := images.Image(t, 32<<10, 2, platform)
	wantA := images.Push(t, src.Addr+"/e2e/a:v1", imgA)
	images.Push(t, src.Addr+"/e2e/b:v1", images.Image(t, 32<<10, 1, platform))
	images.Push(t, src.Addr+"/e2e/slow:v1", images.Image(t, 32<<10, 1, platform))
	sources := fmt.Sprintf(`source:
  registries:
    - {type: generic, generic: {registry: %q, insecure: true}}
    - {type: generic, generic: {registry: %q, insecure: true}}
    - {type: generic, generic: {registry: %q, insecure: true}}
  filters:
    - jmespath: "obj.metadata.namespace == 'kube-system'"
`, src.Addr, bad.Addr, slow.Addr)
	generic := func(reg string) string {
		return fmt.Sprintf("target:\n  type: generic\n  generic: {registry: %q, insecure: true}\n", reg)
	}
	hooks := []*chartWebhook{
		startChartWebhook(t, bin, mon.servingTLS, "main", sources+generic(tgt.Addr)+"mirror: {workers: 1, queueSize: 1, maxRetries: 3, retryWaitMax: 2s}\n"),
		startChartWebhook(t, bin, mon.servingTLS, "dry", "dryRun: true\n"+sources+generic(tgt.Addr)),
		startChartWebhook(t, bin, mon.servingTLS, "unreachable", sources+generic(registryproc.FreeAddr(t)), "--target-unreachable-ok"),
	}
	// Two node proxies, each with its metrics listener (the chart's proxy.metrics).
	proxyCfg := fmt.Sprintf("%sproxy:\n  registries: [%q, %q]\n  tagTTL: 1s\n", generic(tgt.Addr), src.Addr, bad.Addr)
	hub := startHubProcess(t, proxyCfg, "")
	proxies := []*proxyProcess{startMetricsProxy(t, proxyCfg), startMetricsProxy(t, proxyCfg),
		startMetricsProxy(t, proxyCfg+fmt.Sprintf("hub: {url: %q}\n", "http://"+hub.Addr))}

	prom := startPrometheus(t, mon.scrapeConfig(t, dir, hooks, proxies, hub), map[string]string{"rules.yml": mon.rules(t, "2s")})
	start := time.Now()
	phase := func(what string) { t.Logf("%6.1fs %s", time.Since(start).Seconds(), what) }
	last := ""
	waitFor(ctx, t, "prometheus scraping every target", func() bool {
		up, err := prom.targetsUp(ctx)
		healthy := 0
		for _, h := range up {
			if strings.HasPrefix(h, "up") {
				healthy++
			}
		}
		// Logged when it changes: a log line per poll once hid this test's failure in CI's output.
		if now := fmt.Sprint(up, err); now != last && ctx.Err() == nil {
			last = now
			phase("targets: " + now)
		}
		return err == nil && healthy == len(hooks)+len(proxies)+1
	})
	phase("every target up")

	// Pulls through the first proxy, as containerd sends them (?ns=).
	px := proxies[0]
	pullAll(t, px.Addr, src.Addr, "e2e/a", "v1", imgA, http.StatusOK) // cold: from the source, copied
	proxyWaitTarget(t, tgt.Addr+"/"+mirrorRepo(src.Addr, "e2e/a")+":v1", wantA)
	pullAll(t, px.Addr, src.Addr, "e2e/a", "v1", imgA, http.StatusOK)                      // warm: from the target
	pullAll(t, px.Addr, tgt.Addr, mirrorRepo(src.Addr, "e2e/b"), "v1", nil, http.StatusOK) // fallback
	pullAll(t, proxies[2].Addr, src.Addr, "e2e/a", "v1", imgA, http.StatusOK)              // through the hub (from its target)
	images.Push(t, src.Addr+"/e2e/viahub:v1", images.Image(t, 32<<10, 1, platform))
	pullAll(t, proxies[2].Addr, src.Addr, "e2e/viahub", "v1", nil, http.StatusOK) // through the hub, from the source
	images.Push(t, src.Addr+"/e2e/corrupt:v1", images.Image(t, 32<<10, 1, platform))
	pullAll(t, px.Addr, bad.Addr, "e2e/corrupt", "v1", nil, -1) // the blob transfer is aborted

	phase("pulls done")

	// Admissions: every decision kind, a copy that fails, 429s retried, queue drops.
	main := hooks[0]
	for _, c := range []struct {
		ns, image string
		labels    map[string]string
		want      string // the image after admission
	}{
		{"apps", src.Addr + "/e2e/a:v1", nil, tgt.Addr + "/" + mirrorRepo(src.Addr, "e2e/a") + ":v1"}, // swapped
		{"apps", src.Addr + "/e2e/missing:v1", nil, ""},                                               // kept_missing, its copy fails
		{"kube-system", src.Addr + "/e2e/a:v1", nil, ""},                                              // filtered
		{"apps", tgt.Addr + "/" + mirrorRepo(src.Addr, "e2e/a") + ":v1", nil, ""},                     // already_target
		{"apps", src.Addr + "/e2e/a:v1", map[string]string{"k8s-image-swapper.io/skip": "true"}, ""},  // skipped
		{"apps", src.Addr + "/Upper/Case:v1", nil, ""},                                                // invalid
		{"apps", "[::1]:5000/e2e/a:v1", nil, ""},                                                      // error: no target name
		{"apps", slow.Addr + "/e2e/slow:v1", nil, ""},                                                 // kept_missing, copied after 429s
	} {
		got := main.admit(t, c.ns, c.image, c.labels)
		if c.want != "" && got != c.want || c.want == "" && got != "" {
			t.Errorf("admit %s in %s: patched to %q, want %q", c.image, c.ns, got, c.want)
		}
	}
	waitFor(ctx, t, "the copy through the throttling source", func() bool {
		return registryStatus(t, tgt.Addr, mirrorRepo(slow.Addr, "e2e/slow"), "manifests", "v1") == http.StatusOK
	})
	var wg sync.WaitGroup // one worker, a queue of one: most of these are dropped
	for i := range 8 {
		wg.Add(1)
		go func() { defer wg.Done(); main.admit(t, "apps", fmt.Sprintf("%s/e2e/burst%d:v1", src.Addr, i), nil) }()
	}
	wg.Wait()
	hooks[1].admit(t, "apps", src.Addr+"/e2e/a:v1", nil) // dry_run
	hooks[2].admit(t, "apps", src.Addr+"/e2e/a:v1", nil) // the target does not answer: kept_missing

	phase("admissions done")

	// Every query of the dashboard has data once Prometheus has the workload's last counts; those
	// the workload feeds for sure show it.
	waitFor(ctx, t, "prometheus to scrape the end of the workload", func() bool {
		got, err := prom.query(ctx, `sum(k8s_image_swapper_image_decisions_total{decision="dry_run"}) > 0 and sum(k8s_image_swapper_copies_total{result="dropped"}) > 0`)
		return err == nil && len(got) > 0
	})
	positive := func(match string) func([]sample) bool {
		return func(got []sample) bool {
			for _, s := range got {
				if s.Value > 0 && strings.Contains(fmt.Sprint(s.Metric), match) {
					return true
				}
			}
			return false
		}
	}
	shows := map[string]func([]sample) bool{
		"Images swapped":                            positive(""),
		"Kept, not in target yet":                   positive(""),
		"Kept because of errors":                    positive(""),
		"Copies":                                    func(g []sample) bool { return positive("failed")(g) && positive("dropped")(g) && positive("copied")(g) },
		"Upstream retries":                          positive("code:429"),
		"Digest mismatches":                         positive(""),
		"Proxy hit ratio":                           positive(""),
		"Bytes saved from the sources":              positive(""),
		"Pulls served from the target, by registry": positive("registry:" + src.Addr),
		"Most pulled images": func(g []sample) bool {
			return slices.ContainsFunc(g, func(s sample) bool { return s.Metric["repository"] == "e2e/a" && s.Value >= 2 })
		},
		"Requests by origin": func(g []sample) bool {
			return positive("fallback")(g) && positive("target")(g) && positive("source")(g)
		},
	}
	queries := mon.dashboardQueries(t)
	subst := strings.NewReplacer("$namespace", ns, "$__rate_interval", "2m", "$__range", "10m")
	var report []string
	// Rates need two scrapes of a change: a few seconds; 90s is ample, and a failure shows the panels.
	qctx, qcancel := context.WithTimeout(ctx, 90*time.Second)
	defer qcancel()
	for {
		report = report[:0]
		ok := true
		for _, q := range queries {
			got, err := prom.query(ctx, subst.Replace(q.expr))
			if err != nil {
				t.Fatalf("panel %q: %v", q.panel, err)
			}
			line, has := describe(got)
			if check := shows[q.panel]; has && check != nil && !check(got) {
				has, line = false, line+" (not what the workload did)"
			}
			ok = ok && has
			report = append(report, fmt.Sprintf("%-42s %s", q.panel, line))
		}
		if ok {
			break
		}
		select {
		case <-qctx.Done():
			t.Fatalf("dashboard queries without data after the workload:\n%s", strings.Join(report, "\n"))
		case <-time.After(time.Second):
		}
	}
	phase(fmt.Sprintf("dashboard queries after the workload (%d):\n%s", len(queries), strings.Join(report, "\n")))

	// Every alert fires: most for the workload's faults, then the "down" ones.
	alerts := mon.alertNames()
	expectFiring := func(names ...string) {
		var states map[string]string // the last answer, for the failure message
		for {
			got, err := prom.alertStates(ctx)
			if err == nil {
				states = got
				if !slices.ContainsFunc(names, func(n string) bool { return got[n] != "firing" }) {
					phase(fmt.Sprintf("alerts firing: %v", names))
					return
				}
			}
			select {
			case <-ctx.Done():
				t.Fatalf("alerts %v not all firing; their states: %v", names, states)
			case <-time.After(100 * time.Millisecond):
			}
		}
	}
	var faults, down []string
	for _, a := range alerts {
		if strings.HasSuffix(a, "Down") {
			down = append(down, a)
		} else {
			faults = append(faults, a)
		}
	}
	expectFiring(faults...)
	proxies[1].Stop()
	hub.Stop()
	for _, h := range hooks {
		h.stop(t)
	}
	expectFiring(down...)
}

// describe summarises a query's answer; has is false when it has no series or only NaN values.
func describe(got []sample) (line string, has bool) {
	var parts []string
	for _, s := range got {
		if !math.IsNaN(s.Value) {
			has = true
		}
		var labels []string
		for k, v := range s.Metric {
			if k != "__name__" {
				labels = append(labels, k+"="+v)
			}
		}
		sort.Strings(labels)
		parts = append(parts, fmt.Sprintf("{%s} %.4g", strings.Join(labels, ","), s.Value))
	}
	sort.Strings(parts)
	if len(parts) > 4 {
		parts = append(parts[:4], fmt.Sprintf("(+%d more)", len(parts)-4))
	}
	if len(parts) == 0 {
		return "(no series)", false
	}
	return strings.Join(parts, " "), has
}

// pullAll GETs a manifest by tag and, given img, its blobs, as containerd asks a mirror; want
// is the status each must have (-1: any).
func pullAll(t *testing.T, proxy, ns, repo, ref string, img interface{ RawManifest() ([]byte, error) }, want int) {
	t.Helper()
	get := func(path string) {
		resp, err := http.Get("http://" + proxy + "/v2/" + repo + "/" + path + "?ns=" + ns)
		if err != nil {
			if want >= 0 {
				t.Fatalf("GET %s: %v", path, err)
			}
			return
		}
		body := new(bytes.Buffer)
		_, _ = body.ReadFrom(resp.Body)
		resp.Body.Close()
		if want >= 0 && resp.StatusCode != want {
			t.Fatalf("GET %s/%s?ns=%s: %s, want %d", repo, path, ns, resp.Status, want)
		}
		if strings.HasPrefix(path, "manifests/") && img == nil && resp.StatusCode == http.StatusOK {
			var m struct {
				Config struct{ Digest string }
				Layers []struct{ Digest string }
			}
			if json.Unmarshal(body.Bytes(), &m) == nil && m.Config.Digest != "" {
				for _, d := range append([]string{m.Config.Digest}, digestsOf(m.Layers)...) {
					r, err := http.Get("http://" + proxy + "/v2/" + repo + "/blobs/" + d + "?ns=" + ns)
					if err == nil {
						_, _ = new(bytes.Buffer).ReadFrom(r.Body)
						r.Body.Close()
						if want >= 0 && r.StatusCode != want {
							t.Fatalf("GET %s/blobs/%s: %s", repo, d, r.Status)
						}
					}
				}
			}
		}
	}
	get("manifests/" + ref)
	if img != nil {
		raw, err := img.RawManifest()
		if err != nil {
			t.Fatal(err)
		}
		var m struct {
			Config struct{ Digest string }
			Layers []struct{ Digest string }
		}
		if err := json.Unmarshal(raw, &m); err != nil {
			t.Fatal(err)
		}
		for _, d := range append([]string{m.Config.Digest}, digestsOf(m.Layers)...) {
			get("blobs/" + d)
		}
	}
}

func digestsOf(ls []struct{ Digest string }) []string {
	var out []string
	for _, l := range ls {
		out = append(out, l.Digest)
	}
	return out
}

// startMetricsProxy is startProxyProcess with the proxy's metrics on an address of their own.
func startMetricsProxy(t *testing.T, cfg string) *proxyProcess {
	t.Helper()
	addr := registryproc.FreeAddr(t)
	p := startProxyProcess(t, cfg, "--metrics-address", addr)
	p.MetricsAddr = addr
	return p
}

// monitoring is what the chart renders for monitoring: the objects the test turns into a
// Prometheus config, and the certificate the webhook serves.
type monitoring struct {
	servingTLS
	serviceName  string
	serviceMon   map[string]any // spec.endpoints[0] of the webhook's ServiceMonitor
	serviceMonNS string
	hubMon       map[string]any // spec.endpoints[0] of the hub's
	hubService   string
	podMon       map[string]any // spec.podMetricsEndpoints[0]
	podMonJob    string
	ruleGroups   []any
	dashboard    string
}

func parseMonitoring(t *testing.T, out []byte) *monitoring {
	t.Helper()
	m := &monitoring{}
	secrets := map[string]map[string]string{}
	for _, doc := range bytes.Split(out, []byte("\n---")) {
		var o map[string]any
		if err := yaml.Unmarshal(doc, &o); err != nil || o == nil {
			continue
		}
		meta, _ := o["metadata"].(map[string]any)
		name, _ := meta["name"].(string)
		nsName, _ := meta["namespace"].(string)
		spec, _ := o["spec"].(map[string]any)
		switch o["kind"] {
		case "Secret":
			data := map[string]string{}
			d, _ := o["data"].(map[string]any)
			for k, v := range d {
				b, err := base64.StdEncoding.DecodeString(fmt.Sprint(v))
				if err != nil {
					t.Fatal(err)
				}
				data[k] = string(b)
			}
			secrets[name] = data
		case "ServiceMonitor":
			eps, _ := spec["endpoints"].([]any)
			if strings.HasSuffix(name, "-hub") {
				m.hubMon, _ = eps[0].(map[string]any)
				m.hubService = name // the hub's Service has the ServiceMonitor's name
				continue
			}
			m.serviceMon, _ = eps[0].(map[string]any)
			m.serviceMonNS = nsName
		case "PodMonitor":
			eps, _ := spec["podMetricsEndpoints"].([]any)
			m.podMon, _ = eps[0].(map[string]any)
			m.podMonJob = nsName + "/" + name // the operator's job label for a PodMonitor
		case "PrometheusRule":
			m.ruleGroups, _ = spec["groups"].([]any)
		case "ConfigMap":
			if d, ok := o["data"].(map[string]any); ok {
				if j, ok := d["k8s-image-swapper.json"].(string); ok {
					m.dashboard = j
				}
			}
		case "MutatingWebhookConfiguration":
			whs, _ := o["webhooks"].([]any)
			wh, _ := whs[0].(map[string]any)
			cc, _ := wh["clientConfig"].(map[string]any)
			svc, _ := cc["service"].(map[string]any)
			m.serviceName, _ = svc["name"].(string) // the operator's job label for a ServiceMonitor
		}
	}
	tlsCfg, _ := m.serviceMon["tlsConfig"].(map[string]any)
	ca, _ := tlsCfg["ca"].(map[string]any)
	caSecret, _ := ca["secret"].(map[string]any)
	s := secrets[fmt.Sprint(caSecret["name"])]
	m.caPEM, m.certPEM, m.keyPEM = []byte(s[fmt.Sprint(caSecret["key"])]), []byte(s["tls.crt"]), []byte(s["tls.key"])
	m.name = fmt.Sprint(tlsCfg["serverName"]) // what the ServiceMonitor verifies the certificate for
	if m.serviceMon == nil || m.hubMon == nil || m.podMon == nil || m.ruleGroups == nil || m.dashboard == "" || m.serviceName == "" || len(m.caPEM) == 0 || len(m.certPEM) == 0 {
		t.Fatalf("the chart did not render its monitoring objects and certificate: %+v", m)
	}
	return m
}

// servingTLS is a webhook's certificate, its CA, and the name clients verify it for.
type servingTLS struct {
	caPEM, certPEM, keyPEM []byte
	name                   string
}

func (s servingTLS) serverName() string { return s.name }

// newServingTLS is a certificate for 127.0.0.1 from a CA of the test's.
func newServingTLS(t *testing.T) servingTLS {
	t.Helper()
	ca, err := webhooktest.NewCA("e2e CA")
	if err != nil {
		t.Fatal(err)
	}
	cert, key, err := ca.Issue("127.0.0.1", "127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	return servingTLS{caPEM: ca.CertPEM, certPEM: cert, keyPEM: key, name: "127.0.0.1"}
}

// scrapeConfig is what the Prometheus operator makes of the chart's ServiceMonitor and
// PodMonitor, with static targets for the processes (no pods here) and their labels.
func (m *monitoring) scrapeConfig(t *testing.T, dir string, hooks []*chartWebhook, proxies []*proxyProcess, hub *proxyProcess) string {
	t.Helper()
	writeKubeFile(t, filepath.Join(dir, "ca.crt"), m.caPEM)
	var b strings.Builder
	b.WriteString("global: {scrape_interval: 1s, scrape_timeout: 1s, evaluation_interval: 1s}\nrule_files: [rules.yml]\nscrape_configs:\n")
	fmt.Fprintf(&b, "  - job_name: serviceMonitor/%s/webhook/0\n    scheme: %s\n    metrics_path: %s\n", m.serviceMonNS, m.serviceMon["scheme"], m.serviceMon["path"])
	fmt.Fprintf(&b, "    tls_config: {ca_file: %q, server_name: %q}\n", filepath.Join(dir, "ca.crt"), m.serverName())
	b.WriteString("    static_configs:\n")
	for _, h := range hooks {
		fmt.Fprintf(&b, "      - targets: [%q]\n        labels: {job: %q, namespace: %q, service: %q, endpoint: %q, pod: %q, container: webhook}\n",
			h.addr, m.serviceName, m.serviceMonNS, m.serviceName, m.serviceMon["port"], "webhook-"+h.name)
	}
	fmt.Fprintf(&b, "  - job_name: serviceMonitor/%s/hub/0\n    metrics_path: %s\n    static_configs:\n", m.serviceMonNS, m.hubMon["path"])
	fmt.Fprintf(&b, "      - targets: [%q]\n        labels: {job: %q, namespace: %q, service: %q, endpoint: %q, pod: hub-0, container: hub}\n",
		hub.Addr, m.hubService, m.serviceMonNS, m.hubService, m.hubMon["port"])
	fmt.Fprintf(&b, "  - job_name: podMonitor/%s/0\n    metrics_path: %s\n    static_configs:\n", m.podMonJob, m.podMon["path"])
	for i, p := range proxies {
		fmt.Fprintf(&b, "      - targets: [%q]\n        labels: {job: %q, namespace: %q, endpoint: %q, pod: %q, container: proxy}\n",
			p.MetricsAddr, m.podMonJob, m.serviceMonNS, m.podMon["port"], fmt.Sprintf("proxy-%d", i))
	}
	return b.String()
}

// rules is the PrometheusRule's groups as a rule file, each `for` cut to forDuration.
func (m *monitoring) rules(t *testing.T, forDuration string) string {
	t.Helper()
	for _, g := range m.ruleGroups {
		rules, _ := g.(map[string]any)["rules"].([]any)
		for _, r := range rules {
			if rr := r.(map[string]any); rr["for"] != nil {
				rr["for"] = forDuration
			}
		}
	}
	b, err := yaml.Marshal(map[string]any{"groups": m.ruleGroups})
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func (m *monitoring) alertNames() []string {
	var out []string
	for _, g := range m.ruleGroups {
		rules, _ := g.(map[string]any)["rules"].([]any)
		for _, r := range rules {
			out = append(out, fmt.Sprint(r.(map[string]any)["alert"]))
		}
	}
	return out
}

type panelQuery struct{ panel, expr string }

func (m *monitoring) dashboardQueries(t *testing.T) []panelQuery {
	t.Helper()
	var d struct {
		Panels []struct {
			Title   string
			Targets []struct{ Expr string }
		}
	}
	if err := json.Unmarshal([]byte(m.dashboard), &d); err != nil {
		t.Fatal(err)
	}
	var out []panelQuery
	for _, p := range d.Panels {
		for _, tg := range p.Targets {
			out = append(out, panelQuery{p.Title, tg.Expr})
		}
	}
	if len(out) == 0 {
		t.Fatal("the dashboard has no queries")
	}
	return out
}

// chartWebhook is the webhook binary serving the chart's certificate.
type chartWebhook struct {
	name, addr string
	client     *http.Client
	proc       *webhookProc
}

func startChartWebhook(t *testing.T, bin string, m servingTLS, name, cfg string, extra ...string) *chartWebhook {
	t.Helper()
	dir := t.TempDir()
	cert, key, config := filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key"), filepath.Join(dir, "config.yml")
	writeKubeFile(t, cert, m.certPEM)
	writeKubeFile(t, key, m.keyPEM)
	writeKubeFile(t, config, []byte(cfg))
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(m.caPEM) {
		t.Fatal("the chart's ca.crt holds no certificate")
	}
	h := &chartWebhook{name: name, addr: registryproc.FreeAddr(t), client: &http.Client{Timeout: 10 * time.Second,
		Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, ServerName: m.serverName()}}}}
	h.proc = &webhookProc{cmd: exec.Command(bin, append([]string{"webhook", "--config", config, "--listen-address", h.addr,
		"--tls-cert-file", cert, "--tls-key-file", key}, extra...)...), done: make(chan struct{})}
	h.proc.cmd.Stdout, h.proc.cmd.Stderr = h.proc, h.proc
	if err := h.proc.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { _ = h.proc.cmd.Wait(); close(h.proc.done) }()
	t.Cleanup(func() {
		h.stop(t)
		if t.Failed() || os.Getenv("E2E_LOG") != "" {
			t.Logf("webhook %s log:\n%s", name, h.proc.logText())
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := h.client.Get("https://" + h.addr + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return h
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("webhook %s not ready over the chart's certificate: %v\n%s", name, err, h.proc.logText())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (h *chartWebhook) stop(t *testing.T) { h.proc.stop(t) }

var patchedImage = regexp.MustCompile(`"value":"([^"]+)"`)

// admit sends a pod with one container to the webhook and returns the image the answer's
// patch sets ("" when none).
func (h *chartWebhook) admit(t *testing.T, ns, image string, labels map[string]string) string {
	t.Helper()
	pod := corev1.Pod{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"},
		ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: ns, Labels: labels},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: image}}}}
	raw, err := json.Marshal(pod)
	if err != nil {
		t.Fatal(err)
	}
	review := admissionv1.AdmissionReview{TypeMeta: metav1.TypeMeta{APIVersion: "admission.k8s.io/v1", Kind: "AdmissionReview"},
		Request: &admissionv1.AdmissionRequest{UID: types.UID(fmt.Sprint(time.Now().UnixNano())),
			Kind:     metav1.GroupVersionKind{Version: "v1", Kind: "Pod"},
			Resource: metav1.GroupVersionResource{Version: "v1", Resource: "pods"},
			Name:     "p", Namespace: ns, Operation: admissionv1.Create, Object: k8sruntime.RawExtension{Raw: raw}}}
	body, err := json.Marshal(review)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := h.client.Post("https://"+h.addr+"/webhook", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatalf("admit %s: %v", image, err)
	}
	defer resp.Body.Close()
	var answer admissionv1.AdmissionReview
	if err := json.NewDecoder(resp.Body).Decode(&answer); err != nil || answer.Response == nil {
		t.Fatalf("admit %s: %s: %v", image, resp.Status, err)
	}
	if m := patchedImage.FindSubmatch(answer.Response.Patch); m != nil {
		return string(m[1])
	}
	return ""
}
