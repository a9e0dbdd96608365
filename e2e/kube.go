//go:build e2e

package e2e

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/k8s-image-swapper/k8s-image-swapper/internal/testutil/registryproc"
	"github.com/k8s-image-swapper/k8s-image-swapper/webhook/webhooktest"
)

// kubeCluster is a real etcd and kube-apiserver on loopback, with an admin
// token. There is no scheduler, controller-manager or kubelet: pods stay
// Pending, which is all admission needs.
type kubeCluster struct {
	Host       string // https://127.0.0.1:PORT
	Token      string
	CAPEM      []byte
	Kubeconfig string // path of a kubeconfig for kubectl and the webhook
	Config     *rest.Config
	Client     kubernetes.Interface
	CAFile     string // the cluster CA (serving and client certificates)
	SAKeyFile  string // the service account signing key
	apiserver  *kubeProcess
}

// APIServerLog is what kube-apiserver printed so far.
func (k *kubeCluster) APIServerLog() string { return k.apiserver.Output() }

// kubeTool finds a tool of hack/tools.sh (etcd, kube-apiserver, cosign):
// $ETCD_BIN / $KUBE_APISERVER_BIN / $COSIGN_BIN,
// else the folder hack/tools.sh builds them into. A missing tool skips the
// test unless E2E_REQUIRED is set, in which case it is built (slow, once per
// machine) and a failure fails the test.
func kubeTool(t testing.TB, name string) string {
	t.Helper()
	env := strings.ToUpper(strings.ReplaceAll(name, "-", "_")) + "_BIN"
	if p := os.Getenv(env); p != "" {
		return p
	}
	script := filepath.Join("..", "hack", "tools.sh")
	out, err := exec.Command("bash", script, "path", name).Output()
	if err != nil {
		t.Fatalf("%s path %s: %v", script, name, err)
	}
	bin := filepath.Join(strings.TrimSpace(string(out)), name)
	if _, err := os.Stat(bin); err == nil {
		return bin
	}
	if os.Getenv("E2E_REQUIRED") == "" {
		t.Skipf("%s not built (run `bash hack/tools.sh %s`, minutes once per machine, or set %s); CI sets E2E_REQUIRED=1 and builds it", name, name, env)
	}
	t.Logf("building %s with %s (once per machine)", name, script)
	cmd := exec.Command("bash", script, name)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("build %s: %v", name, err)
	}
	return bin
}

// startKube starts etcd and kube-apiserver for the test and stops them (the
// apiserver first) when it ends.
func startKube(t testing.TB) *kubeCluster {
	t.Helper()
	return startKubeWith(t, kubeOptions{})
}

// kubeOptions change the apiserver of startKubeWith. The zero value serves on loopback.
type kubeOptions struct {
	// Address is the address the apiserver binds to and advertises (default 127.0.0.1). A
	// non-loopback address lets pods reach it through the kubernetes Service.
	Address string
	// Args are more kube-apiserver flags.
	Args []string
}

// startKubeWith starts etcd and kube-apiserver as o says.
func startKubeWith(t testing.TB, o kubeOptions) *kubeCluster {
	t.Helper()
	if o.Address == "" {
		o.Address = "127.0.0.1"
	}
	etcdBin := kubeTool(t, "etcd")
	apiBin := kubeTool(t, "kube-apiserver")
	dir := t.TempDir()

	clientAddr, peerAddr := registryproc.FreeAddr(t), registryproc.FreeAddr(t)
	etcd := startKubeProcess(t, "etcd", etcdBin,
		"--name=e2e", "--data-dir="+filepath.Join(dir, "etcd"),
		"--listen-client-urls=http://"+clientAddr, "--advertise-client-urls=http://"+clientAddr,
		"--listen-peer-urls=http://"+peerAddr, "--initial-advertise-peer-urls=http://"+peerAddr,
		"--initial-cluster=e2e=http://"+peerAddr, "--log-level=warn", "--unsafe-no-fsync")
	waitKube(t, etcd, 30*time.Second, func() error {
		resp, err := http.Get("http://" + clientAddr + "/health")
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			return fmt.Errorf("etcd health: %s", resp.Status)
		}
		return nil
	})

	ca, err := webhooktest.NewCA("e2e kube CA")
	if err != nil {
		t.Fatal(err)
	}
	// The names pods use too (the kubernetes Service's first address of 10.0.0.0/24).
	certFile, keyFile, err := ca.WriteServing(dir, "127.0.0.1", "localhost", o.Address, "10.0.0.1",
		"kubernetes", "kubernetes.default", "kubernetes.default.svc", "kubernetes.default.svc.cluster.local")
	if err != nil {
		t.Fatal(err)
	}
	caFile := filepath.Join(dir, "ca.crt")
	saKey := filepath.Join(dir, "sa.key")
	tokenFile := filepath.Join(dir, "tokens.csv")
	token := randomHex(t)
	writeKubeFile(t, caFile, ca.CertPEM)
	writeKubeFile(t, saKey, ecKeyPEM(t))
	writeKubeFile(t, tokenFile, []byte(token+",e2e-admin,e2e-admin,system:masters\n"))

	_, port, _ := strings.Cut(registryproc.FreeAddr(t), ":")
	apiAddr := net.JoinHostPort(o.Address, port)
	args := append([]string{
		"--etcd-servers=http://" + clientAddr,
		"--bind-address=" + o.Address, "--advertise-address=" + o.Address, "--secure-port=" + port,
		"--endpoint-reconciler-type=none",
		"--tls-cert-file=" + certFile, "--tls-private-key-file=" + keyFile,
		"--client-ca-file=" + caFile, "--token-auth-file=" + tokenFile,
		"--service-account-issuer=https://kubernetes.default.svc.cluster.local",
		"--service-account-key-file=" + saKey, "--service-account-signing-key-file=" + saKey,
		"--authorization-mode=RBAC", "--service-cluster-ip-range=10.0.0.0/24",
		"--cert-dir=" + filepath.Join(dir, "certs"), "--enable-priority-and-fairness=false"}, o.Args...)
	api := startKubeProcess(t, "kube-apiserver", apiBin, args...)
	// Stop the apiserver before etcd (cleanups run last-registered first).

	k := &kubeCluster{Host: "https://" + apiAddr, Token: token, CAPEM: ca.CertPEM, CAFile: caFile, SAKeyFile: saKey, apiserver: api}
	httpc := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.Pool()}}}
	waitKube(t, api, 90*time.Second, func() error {
		req, _ := http.NewRequest(http.MethodGet, k.Host+"/readyz", nil)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := httpc.Do(req)
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			return fmt.Errorf("apiserver readyz: %s", resp.Status)
		}
		return nil
	})

	k.Config = &rest.Config{Host: k.Host, BearerToken: token, TLSClientConfig: rest.TLSClientConfig{CAData: ca.CertPEM},
		QPS: 100, Burst: 200, Timeout: 30 * time.Second}
	if k.Client, err = kubernetes.NewForConfig(k.Config); err != nil {
		t.Fatal(err)
	}
	k.Kubeconfig = filepath.Join(dir, "kubeconfig")
	writeKubeFile(t, k.Kubeconfig, []byte(fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
- name: e2e
  cluster:
    server: %s
    certificate-authority: %s
users:
- name: admin
  user:
    token: %s
contexts:
- name: e2e
  context: {cluster: e2e, user: admin}
current-context: e2e
`, k.Host, caFile, token)))
	return k
}

// kubeProcess is a running etcd or kube-apiserver and its output.
type kubeProcess struct {
	name string
	cmd  *exec.Cmd
	syncLog
	done chan struct{}
}

func (p *kubeProcess) Output() string {
	return p.String()
}

func startKubeProcess(t testing.TB, name, bin string, args ...string) *kubeProcess {
	t.Helper()
	p := &kubeProcess{name: name, cmd: exec.Command(bin, args...), done: make(chan struct{})}
	p.cmd.Stdout, p.cmd.Stderr = p, p
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	go func() { _ = p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(15 * time.Second):
			_ = p.cmd.Process.Kill()
			<-p.done
		}
		if t.Failed() {
			out := p.Output()
			if len(out) > 8000 {
				out = "...\n" + out[len(out)-8000:]
			}
			t.Logf("%s output:\n%s", name, out)
		}
	})
	return p
}

func waitKube(t testing.TB, p *kubeProcess, d time.Duration, ready func() error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	var last error
	for {
		if last = ready(); last == nil {
			return
		}
		select {
		case <-p.done:
			t.Fatalf("%s exited: %v\n%s", p.name, p.cmd.ProcessState, p.Output())
		case <-ctx.Done():
			t.Fatalf("%s not ready in %s: %v\n%s", p.name, d, last, p.Output())
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func writeKubeFile(t testing.TB, path string, b []byte) {
	t.Helper()
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

func ecKeyPEM(t testing.TB) []byte {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der})
}

func randomHex(t testing.TB) string {
	t.Helper()
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}
