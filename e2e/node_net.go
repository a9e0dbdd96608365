//go:build e2e

package e2e

import (
	"crypto/rand"
	"fmt"
	"net"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

// nodeNet is the node's pod network: a Linux bridge the test creates, with the gateway
// address on the host side. The node's own address (kubelet --node-ip, the apiserver, the
// registries, CoreDNS) is the gateway, so pods reach all of them through the bridge.
type nodeNet struct {
	Bridge  string // kis<hex>
	Subnet  string // 10.244.N.0/24
	Gateway string // 10.244.N.1
}

// startNodeNet creates the bridge and, when the test ends, deletes it, puts ip_forward back
// and checks that no iptables rule or chain is left behind.
func startNodeNet(t testing.TB) *nodeNet {
	t.Helper()
	for _, tool := range []string{"ip", "iptables-save", "iptables"} {
		if _, err := exec.LookPath(tool); err != nil {
			containerdSkip(t, "%s not found (apt-get install iproute2 iptables)", tool)
		}
	}
	b := make([]byte, 3)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	routes := run(t, "ip", "-4", "route", "show")
	var n *nodeNet
	for i := 0; i < 250 && n == nil; i++ {
		third := (int(b[2]) + i) % 250
		cand := &nodeNet{Bridge: fmt.Sprintf("kis%x", b[:2]), Subnet: fmt.Sprintf("10.244.%d.0/24", third), Gateway: fmt.Sprintf("10.244.%d.1", third)}
		if !strings.Contains(routes, cand.Subnet) {
			n = cand
		}
	}
	if n == nil {
		t.Fatal("no free 10.244.N.0/24 subnet")
	}
	forward, _ := os.ReadFile("/proc/sys/net/ipv4/ip_forward")
	rules := iptablesRules(t)
	t.Cleanup(func() {
		_ = exec.Command("ip", "link", "del", n.Bridge).Run()
		if len(forward) > 0 {
			_ = os.WriteFile("/proc/sys/net/ipv4/ip_forward", forward, 0o644)
		}
		removeNewRules(t, rules)
		if left := diffLines(iptablesRules(t), rules); len(left) > 0 {
			t.Errorf("iptables rules left behind:\n%s", strings.Join(left, "\n"))
		}
	})
	run(t, "ip", "link", "add", n.Bridge, "type", "bridge")
	run(t, "ip", "addr", "add", n.Gateway+"/24", "dev", n.Bridge)
	run(t, "ip", "link", "set", n.Bridge, "up")
	return n
}

// CNIConfig is a conflist for containerd: the bridge (pods get addresses of Subnet from
// host-local, kept under ipamDir) and portmap.
func (n *nodeNet) CNIConfig(ipamDir string) string {
	return fmt.Sprintf(`{
  "cniVersion": "1.0.0",
  "name": "e2e-node",
  "plugins": [
    {
      "type": "bridge", "bridge": %q, "isGateway": true, "ipMasq": false, "hairpinMode": true,
      "ipam": {"type": "host-local", "dataDir": %q, "ranges": [[{"subnet": %q, "gateway": %q}]], "routes": [{"dst": "0.0.0.0/0"}]}
    },
    {"type": "portmap", "capabilities": {"portMappings": true}}
  ]
}
`, n.Bridge, ipamDir, n.Subnet, n.Gateway)
}

// FreeAddr is a free port on the gateway address.
func (n *nodeNet) FreeAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", n.Gateway+":0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// iptablesRules are the rules and user chains of every table, without counters.
func iptablesRules(t testing.TB) []string {
	t.Helper()
	var out []string
	for _, save := range []string{"iptables-save", "ip6tables-save"} {
		b, err := exec.Command(save).Output()
		if err != nil {
			continue
		}
		table := ""
		for _, l := range strings.Split(string(b), "\n") {
			switch {
			case strings.HasPrefix(l, "*"):
				table = l[1:]
			case strings.HasPrefix(l, "-A "):
				out = append(out, save+" "+table+" "+l)
			case strings.HasPrefix(l, ":") && strings.Contains(l, " - ["):
				out = append(out, save+" "+table+" "+strings.SplitN(l, " ", 2)[0])
			}
		}
	}
	return out
}

// removeNewRules deletes the rules and chains that are not in before: the ones the kubelet
// makes (KUBE-FIREWALL, canaries) and anything kube-proxy --cleanup missed.
func removeNewRules(t testing.TB, before []string) {
	var chains [][]string
	for _, l := range diffLines(iptablesRules(t), before) {
		f := splitRule(l)
		if len(f) < 3 {
			continue
		}
		tool := strings.TrimSuffix(f[0], "-save")
		if f[2] == "-A" {
			_ = exec.Command(tool, append([]string{"-t", f[1], "-D"}, f[3:]...)...).Run()
		} else {
			chains = append(chains, []string{tool, f[1], strings.TrimPrefix(f[2], ":")})
		}
	}
	for _, c := range chains {
		_ = exec.Command(c[0], "-t", c[1], "-F", c[2]).Run()
	}
	for _, c := range chains {
		_ = exec.Command(c[0], "-t", c[1], "-X", c[2]).Run()
	}
}

// splitRule splits an iptables-save line into words, keeping "quoted words" whole.
func splitRule(l string) []string {
	var out []string
	var cur strings.Builder
	quoted, in := false, false
	for _, r := range l {
		switch {
		case r == '"':
			quoted, in = !quoted, true
		case r == ' ' && !quoted:
			if in {
				out = append(out, cur.String())
				cur.Reset()
				in = false
			}
		default:
			cur.WriteRune(r)
			in = true
		}
	}
	if in {
		out = append(out, cur.String())
	}
	return out
}

// diffLines is what is in now and not in before.
func diffLines(now, before []string) []string {
	var out []string
	for _, l := range now {
		if !slices.Contains(before, l) {
			out = append(out, l)
		}
	}
	return out
}

// run runs a command that must succeed and returns its output.
func run(t testing.TB, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}
