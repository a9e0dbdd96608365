package charttest

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer/json"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/kubernetes/scheme"
	sigsyaml "sigs.k8s.io/yaml"
)

// The release every test renders.
const (
	release   = "rel"
	namespace = "swapper"
)

// repoRoot is the module root: the folder above this one holding go.mod.
func repoRoot(t testing.TB) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("go.mod not found above the test's folder")
		}
		dir = parent
	}
}

func chartDir(t testing.TB) string {
	return filepath.Join(repoRoot(t), "charts", "k8s-image-swapper")
}

var (
	helmOnce sync.Once
	helmPath string
	helmErr  error
)

// helmBin finds helm: $HELM_BIN, hack/tools.sh's folder, then $PATH. Missing, the test skips
// unless E2E_REQUIRED is set, in which case hack/tools.sh builds it.
func helmBin(t testing.TB) string {
	t.Helper()
	helmOnce.Do(func() { helmPath, helmErr = findHelm(repoRoot(t)) })
	if helmErr == nil {
		return helmPath
	}
	if os.Getenv("E2E_REQUIRED") == "" {
		t.Skipf("helm not found (%v): run `bash hack/tools.sh helm` (~7 min once per machine) or set HELM_BIN; CI sets E2E_REQUIRED=1", helmErr)
	}
	t.Fatalf("helm: %v", helmErr)
	return ""
}

func findHelm(root string) (string, error) {
	if p := os.Getenv("HELM_BIN"); p != "" {
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf("HELM_BIN: %w", err)
		}
		return p, nil
	}
	script := filepath.Join(root, "hack", "tools.sh")
	if out, err := exec.Command("bash", script, "path", "helm").Output(); err == nil {
		p := filepath.Join(strings.TrimSpace(string(out)), "helm")
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
		if os.Getenv("E2E_REQUIRED") != "" {
			cmd := exec.Command("bash", script, "helm")
			cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
			if err := cmd.Run(); err != nil {
				return "", fmt.Errorf("build helm with %s: %w", script, err)
			}
			return p, nil
		}
	}
	if p, err := exec.LookPath("helm"); err == nil {
		return p, nil
	}
	return "", errors.New("not in $HELM_BIN, hack/tools.sh's folder or $PATH")
}

// helm runs helm in the chart's folder and returns stdout, or stderr as the error.
func helm(t testing.TB, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(helmBin(t), args...)
	cmd.Dir = chartDir(t)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("helm %s: %v\n%s%s", strings.Join(args, " "), err, stderr.String(), stdout.String())
	}
	return stdout.String(), nil
}

// templateArgs are helm template's arguments for the test release plus extra ones
// (-f FILE, --set K=V).
func templateArgs(extra ...string) []string {
	return append([]string{"template", release, ".", "--namespace", namespace}, extra...)
}

// object is one rendered document.
type object struct {
	Source string                     // the template it came from
	U      *unstructured.Unstructured // always set
	Typed  runtime.Object             // set for kinds client-go's scheme knows
}

func (o object) Kind() string { return o.U.GetKind() }
func (o object) Name() string { return o.U.GetName() }
func (o object) String() string {
	return fmt.Sprintf("%s %s (%s)", o.U.GetKind(), o.U.GetName(), o.Source)
}

// Hook reports the helm.sh/hook annotation ("" for ordinary objects).
func (o object) Hook() string { return o.U.GetAnnotations()["helm.sh/hook"] }

// Groups of kinds the scheme does not know but the chart may render (CRDs).
var crdGroups = map[string]bool{"cert-manager.io": true, "monitoring.coreos.com": true}

var strictDecoder = json.NewSerializerWithOptions(json.DefaultMetaFactory, scheme.Scheme, scheme.Scheme,
	json.SerializerOptions{Yaml: true, Strict: true})

var sourceLine = regexp.MustCompile(`(?m)^# Source: (.+)$`)

// render runs helm template with extra arguments and decodes every document: strictly into
// client-go's types (unknown or duplicate fields fail), and into unstructured form.
func render(t testing.TB, extra ...string) []object {
	t.Helper()
	key := strings.Join(extra, "\x00")
	renderMu.Lock()
	out, ok := renderCache[key]
	renderMu.Unlock()
	if !ok {
		var err error
		if out, err = helm(t, templateArgs(extra...)...); err != nil {
			t.Fatal(err)
		}
		renderMu.Lock()
		renderCache[key] = out
		renderMu.Unlock()
	}
	return decodeAll(t, out)
}

// renderFresh renders without the cache (each rendering generates new certificates).
func renderFresh(t testing.TB, extra ...string) []object {
	t.Helper()
	out, err := helm(t, templateArgs(extra...)...)
	if err != nil {
		t.Fatal(err)
	}
	return decodeAll(t, out)
}

// Renderings by arguments: helm takes seconds per run on small machines, and most tests look
// at the same few renderings.
var (
	renderMu    sync.Mutex
	renderCache = map[string]string{}
)

func decodeAll(t testing.TB, manifest string) []object {
	t.Helper()
	var objs []object
	r := utilyaml.NewYAMLReader(bufio.NewReader(strings.NewReader(manifest)))
	for {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("split rendering: %v", err)
		}
		src := ""
		if m := sourceLine.FindSubmatch(doc); m != nil {
			src = string(m[1])
		}
		if len(bytes.TrimSpace(stripComments(doc))) == 0 {
			continue
		}
		var m map[string]any
		if err := sigsyaml.Unmarshal(doc, &m); err != nil {
			t.Fatalf("%s: not YAML: %v\n%s", src, err, doc)
		}
		if m == nil {
			continue
		}
		o := object{Source: src, U: &unstructured.Unstructured{Object: m}}
		if o.U.GetKind() == "" || o.U.GetAPIVersion() == "" {
			t.Fatalf("%s: a document without apiVersion or kind:\n%s", src, doc)
		}
		typed, _, err := strictDecoder.Decode(doc, nil, nil)
		switch {
		case err == nil:
			o.Typed = typed
		case runtime.IsNotRegisteredError(err) && crdGroups[o.U.GroupVersionKind().Group]:
		default:
			t.Fatalf("%s: %s %s does not decode strictly: %v", src, o.U.GetKind(), o.U.GetName(), err)
		}
		objs = append(objs, o)
	}
	return objs
}

func stripComments(doc []byte) []byte {
	var b bytes.Buffer
	for _, line := range strings.Split(string(doc), "\n") {
		if strings.HasPrefix(strings.TrimSpace(line), "#") {
			continue
		}
		b.WriteString(line)
		b.WriteByte('\n')
	}
	return b.Bytes()
}

// find returns the single object of kind whose name ends in suffix.
func find(t testing.TB, objs []object, kind, suffix string) object {
	t.Helper()
	var hits []object
	for _, o := range objs {
		if o.Kind() == kind && strings.HasSuffix(o.Name(), suffix) {
			hits = append(hits, o)
		}
	}
	if len(hits) != 1 {
		t.Fatalf("want one %s named *%s, found %d: %v", kind, suffix, len(hits), names(objs))
	}
	return hits[0]
}

// findAll returns the objects of kind.
func findAll(objs []object, kind string) []object {
	var hits []object
	for _, o := range objs {
		if o.Kind() == kind {
			hits = append(hits, o)
		}
	}
	return hits
}

func names(objs []object) []string {
	var out []string
	for _, o := range objs {
		out = append(out, o.Kind()+"/"+o.Name())
	}
	sort.Strings(out)
	return out
}

// as converts a decoded object to its type.
func as[T runtime.Object](t testing.TB, o object) T {
	t.Helper()
	v, ok := o.Typed.(T)
	if !ok {
		t.Fatalf("%s is %T, not the type wanted", o, o.Typed)
	}
	return v
}

// ciValues lists the chart's ci/*-values.yaml files (helm's and chart-testing's convention).
func ciValues(t testing.TB) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(chartDir(t), "ci", "*-values.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no ci/*-values.yaml in the chart: %v", err)
	}
	return files
}
