//go:build e2e

package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/k8s-image-swapper/k8s-image-swapper/internal/testutil/registryproc"
)

// prometheusServer is Debian's prometheus with a config the test writes, on loopback.
type prometheusServer struct {
	Addr string
	cmd  *exec.Cmd
	syncLog
}

// startPrometheus runs prometheus with cfg (prometheus.yml) and files beside it (rule files),
// and waits until it is ready.
func startPrometheus(t *testing.T, cfg string, files map[string]string) *prometheusServer {
	t.Helper()
	bin := os.Getenv("PROMETHEUS_BIN")
	if bin == "" {
		var err error
		if bin, err = exec.LookPath("prometheus"); err != nil {
			containerdSkip(t, "prometheus not found (Debian's prometheus package; make deps installs it)")
		}
	}
	dir := t.TempDir()
	for name, body := range files {
		writeKubeFile(t, filepath.Join(dir, name), []byte(body))
	}
	writeKubeFile(t, filepath.Join(dir, "prometheus.yml"), []byte(cfg))
	p := &prometheusServer{Addr: registryproc.FreeAddr(t)}
	p.cmd = exec.Command(bin, "--config.file", filepath.Join(dir, "prometheus.yml"),
		"--storage.tsdb.path", filepath.Join(dir, "data"), "--web.listen-address", p.Addr)
	p.cmd.Dir = dir
	p.cmd.Stdout, p.cmd.Stderr = p, p
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = p.cmd.Process.Kill()
		_ = p.cmd.Wait()
		if t.Failed() || os.Getenv("E2E_LOG") != "" {
			t.Logf("prometheus log:\n%s", p.String())
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for httpStatus(t, "http://"+p.Addr+"/-/ready") != http.StatusOK {
		if time.Now().After(deadline) {
			t.Fatalf("prometheus not ready:\n%s", p.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
	return p
}

// sample is one series of an instant query's answer.
type sample struct {
	Metric map[string]string
	Value  float64
}

// query evaluates expr now through the HTTP API.
func (p *prometheusServer) query(ctx context.Context, expr string) ([]sample, error) {
	u := "http://" + p.Addr + "/api/v1/query?query=" + url.QueryEscape(expr)
	var body struct {
		Status string `json:"status"`
		Error  string `json:"error"`
		Data   struct {
			ResultType string `json:"resultType"`
			Result     []struct {
				Metric map[string]string `json:"metric"`
				Value  [2]any            `json:"value"`
			} `json:"result"`
		} `json:"data"`
	}
	if err := p.get(ctx, u, &body); err != nil {
		return nil, err
	}
	if body.Status != "success" {
		return nil, fmt.Errorf("query %s: %s", expr, body.Error)
	}
	var out []sample
	for _, r := range body.Data.Result {
		s, _ := r.Value[1].(string)
		v, err := strconv.ParseFloat(s, 64)
		if err != nil {
			return nil, fmt.Errorf("query %s: value %q: %w", expr, s, err)
		}
		out = append(out, sample{Metric: r.Metric, Value: v})
	}
	return out, nil
}

// alertStates maps each alert's name to its state (pending or firing), firing winning.
func (p *prometheusServer) alertStates(ctx context.Context) (map[string]string, error) {
	var body struct {
		Data struct {
			Alerts []struct {
				Labels map[string]string `json:"labels"`
				State  string            `json:"state"`
			} `json:"alerts"`
		} `json:"data"`
	}
	if err := p.get(ctx, "http://"+p.Addr+"/api/v1/alerts", &body); err != nil {
		return nil, err
	}
	out := map[string]string{}
	for _, a := range body.Data.Alerts {
		if n := a.Labels["alertname"]; out[n] != "firing" {
			out[n] = a.State
		}
	}
	return out, nil
}

// targetsUp maps each scrape target (job/instance) to its health.
func (p *prometheusServer) targetsUp(ctx context.Context) (map[string]string, error) {
	var body struct {
		Data struct {
			ActiveTargets []struct {
				Labels    map[string]string `json:"labels"`
				Health    string            `json:"health"`
				LastError string            `json:"lastError"`
			} `json:"activeTargets"`
		} `json:"data"`
	}
	if err := p.get(ctx, "http://"+p.Addr+"/api/v1/targets", &body); err != nil {
		return nil, err
	}
	out := map[string]string{}
	for _, tg := range body.Data.ActiveTargets {
		out[tg.Labels["job"]+"/"+tg.Labels["instance"]] = tg.Health + " " + tg.LastError
	}
	return out, nil
}

func (p *prometheusServer) get(ctx context.Context, u string, out any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	return json.NewDecoder(resp.Body).Decode(out)
}
