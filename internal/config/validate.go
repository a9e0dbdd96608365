package config

import (
	"cmp"
	"encoding/json"
	"fmt"
	"net"
	"net/url"
	"os"
	"path"
	"regexp"
	"slices"
	"strings"

	"github.com/distribution/reference"
	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/k8s-image-swapper/k8s-image-swapper/internal/filter"
	"github.com/k8s-image-swapper/k8s-image-swapper/internal/logging"
	"github.com/k8s-image-swapper/k8s-image-swapper/internal/policy"
	"github.com/k8s-image-swapper/k8s-image-swapper/internal/registry"
)

var (
	targetTypes   = []string{"aws", "gcp", "generic", "local"}
	sourceTypes   = []string{"aws", "gcp", "generic"}
	mutabilities  = []string{"MUTABLE", "IMMUTABLE", "MUTABLE_WITH_EXCLUSION", "IMMUTABLE_WITH_EXCLUSION"}
	encryptions   = []string{"AES256", "KMS", "KMS_DSSE"}
	accountIDExpr = regexp.MustCompile(`^[0-9]{1,12}$`)
	envRefExpr    = regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)\}`)
)

// applyDefaults fills in what the file leaves to the config itself: the
// kind of a registry it does not name (the original's files set target.aws
// with no type), the original's older keys. A value the file does not set
// stays zero: each component has its own defaults, in one place.
func (c *Config) applyDefaults() {
	for _, r := range c.Source.PrivateRegistries {
		if r.Type == "" {
			r.Type = "aws"
		}
		c.Source.Registries = append(c.Source.Registries, r)
	}
	c.Source.PrivateRegistries = nil
	for i := range c.Source.Registries {
		r := &c.Source.Registries[i]
		if r.Type == "" {
			r.Type = inferType(r.AWS, r.GCP, r.Generic, Local{})
		}
		r.AWS.mergeTopLevelPolicies()
	}

	t := &c.Target
	if t.Type == "" {
		t.Type = inferType(t.AWS, t.GCP, t.Generic, t.Local)
	}
	t.AWS.mergeTopLevelPolicies()
}

// inferType keeps the original's files working: they set target.aws with no type.
func inferType(a AWS, g GCP, gen Generic, l Local) string {
	switch {
	case a.AccountID != "" || a.Region != "":
		return "aws"
	case g.ProjectID != "" || g.Location != "":
		return "gcp"
	case gen.Registry != "":
		return "generic"
	default:
		return "local"
	}
}

func (a *AWS) mergeTopLevelPolicies() {
	if a.ECROptions.AccessPolicy == "" {
		a.ECROptions.AccessPolicy = a.AccessPolicy
	}
	if a.ECROptions.LifecyclePolicy == "" {
		a.ECROptions.LifecyclePolicy = a.LifecyclePolicy
	}
}

// expandEnv replaces ${VAR} in passwords so secrets stay out of the file.
// Unset variables are left as written and reported by validate.
func (c *Config) expandEnv() {
	expand := func(s string) string {
		return envRefExpr.ReplaceAllStringFunc(s, func(m string) string {
			if v, ok := os.LookupEnv(m[2 : len(m)-1]); ok {
				return v
			}
			return m
		})
	}
	c.Target.Generic.Password = expand(c.Target.Generic.Password)
	c.Target.Generic.Username = expand(c.Target.Generic.Username)
	for i := range c.Source.Registries {
		c.Source.Registries[i].Generic.Password = expand(c.Source.Registries[i].Generic.Password)
		c.Source.Registries[i].Generic.Username = expand(c.Source.Registries[i].Generic.Username)
	}
	for i := range c.Source.PrivateRegistries {
		c.Source.PrivateRegistries[i].Generic.Password = expand(c.Source.PrivateRegistries[i].Generic.Password)
	}
}

type checker struct {
	lines    map[string]int
	problems []Problem
	warnings []Problem
}

// line returns the line of key, or of its closest parent that was written.
func (ch *checker) line(key string) int {
	for k := key; k != ""; {
		if l, ok := ch.lines[k]; ok {
			return l
		}
		i := strings.LastIndexAny(k, ".[")
		if i < 0 {
			break
		}
		k = k[:i]
	}
	return 0
}

func (ch *checker) add(key, format string, args ...any) {
	ch.problems = append(ch.problems, Problem{Key: key, Line: ch.line(key), Msg: fmt.Sprintf(format, args...)})
}

// warn reports what the original accepted; the caller falls back or drops
// the value.
func (ch *checker) warn(key, format string, args ...any) {
	ch.warnings = append(ch.warnings, Problem{Key: key, Line: ch.line(key), Msg: fmt.Sprintf(format, args...)})
}

// fallBack parses a value with its one Parse; one the original did not know
// is replaced by what it used instead (what Parse returns with the error).
func fallBack[T ~string](ch *checker, key string, val *T, parse func(string) (T, error)) {
	v, err := parse(string(*val))
	if err != nil {
		ch.warn(key, "%v; using %s, as the original did", err, v)
	}
	*val = v
}

// parsed parses a value with its one Parse; an unknown one is an error.
func parsed[T ~string](ch *checker, key string, val *T, parse func(string) (T, error)) {
	v, err := parse(string(*val))
	if err != nil {
		ch.add(key, "%v", err)
	}
	*val = v
}

func (ch *checker) oneOf(key, val string, allowed []string) {
	if !slices.Contains(allowed, val) {
		ch.add(key, "invalid value %q, must be one of: %s", val, strings.Join(allowed, ", "))
	}
}

func (ch *checker) required(key, val string) {
	if strings.TrimSpace(val) == "" {
		ch.add(key, "required")
	}
}

// validate returns the errors and the warnings: what the original
// accepted is a warning (and is fixed up: a fallback, or the value
// dropped), what no copy could work with is an error.
func (c *Config) validate(lines map[string]int) (errs, warns []Problem) {
	ch := &checker{lines: lines}
	if _, ok := logging.ParseLevel(c.LogLevel); c.LogLevel != "" && !ok {
		ch.warn("logLevel", "invalid value %q, must be one of: %s; using info, as the original did",
			c.LogLevel, strings.Join(logging.LevelNames(), ", "))
		c.LogLevel = ""
	}
	fallBack(ch, "logFormat", &c.LogFormat, logging.ParseFormat)
	fallBack(ch, "imageSwapPolicy", &c.ImageSwapPolicy, policy.ParseSwap)
	fallBack(ch, "imageCopyPolicy", &c.ImageCopyPolicy, policy.ParseCopy)

	for i, f := range c.Source.Filters {
		key := fmt.Sprintf("source.filters[%d].jmespath", i)
		const asOriginal = "; like the original, evaluating it fails for every pod, which leaves the pod unfiltered and skips the filters after it"
		if strings.TrimSpace(f.JMESPath) == "" {
			ch.warn(key, "empty expression"+asOriginal)
		} else if err := filter.Check(f.JMESPath); err != nil {
			ch.warn(key, "invalid JMESPath expression: %v"+asOriginal, err)
		}
	}
	for i, p := range c.Source.Platforms {
		key := fmt.Sprintf("source.platforms[%d]", i)
		pl, err := v1.ParsePlatform(p)
		if err != nil || pl.OS == "" || pl.Architecture == "" || strings.Count(p, "/") < 1 {
			ch.add(key, "invalid platform %q, want os/arch[/variant] such as linux/amd64", p)
		}
	}
	parsed(ch, "source.privateImages", &c.Source.PrivateImages, policy.ParsePrivateImages)
	for i, r := range c.Source.Registries {
		key := fmt.Sprintf("source.registries[%d]", i)
		ch.oneOf(key+".type", r.Type, sourceTypes)
		switch r.Type {
		case "aws":
			ch.aws(key+".aws", &c.Source.Registries[i].AWS, false)
		case "gcp":
			ch.gcp(key+".gcp", r.GCP)
		case "generic":
			ch.generic(key+".generic", r.Generic)
		}
	}

	t := c.Target
	ch.oneOf("target.type", t.Type, targetTypes)
	switch t.Type {
	case "aws":
		ch.aws("target.aws", &c.Target.AWS, true)
	case "gcp":
		ch.gcp("target.gcp", t.GCP)
	case "generic":
		ch.generic("target.generic", t.Generic)
	case "local":
		// Unset, the store is named after the proxy's address.
		if reg := cmp.Or(t.Local.Registry, c.Proxy.ListenAddress); reg != "" {
			ch.host("target.local.registry", reg)
		}
		if p := t.Local.Push; p.Enabled && p.Htpasswd == "" && p.TokenFile == "" {
			ch.add("target.local.push", "enabled without credentials: set htpasswd or tokenFile")
		}
	}

	parsed(ch, "proxy.onMiss", &c.Proxy.OnMiss, policy.ParseOnMiss)
	for i, r := range c.Proxy.Registries {
		ch.host(fmt.Sprintf("proxy.registries[%d]", i), r)
	}
	parsed(ch, "proxy.private", &c.Proxy.Private, policy.ParsePrivate)
	for i, g := range c.Proxy.SharedRepositories {
		if _, err := path.Match(g, ""); err != nil || strings.TrimSpace(g) == "" {
			ch.add(fmt.Sprintf("proxy.sharedRepositories[%d]", i), "invalid pattern %q, want a glob like ghcr.io/acme/*", g)
		}
	}
	if h := c.Hub.URL; h != "" {
		if u, err := url.Parse(h); err != nil || u.Scheme != "http" && u.Scheme != "https" || u.Host == "" || strings.Trim(u.Path, "/") != "" || u.RawQuery != "" {
			ch.add("hub.url", "invalid hub URL %q, want http(s)://HOST[:PORT] such as http://k8s-image-swapper-hub:7440", h)
		}
	}
	if a := c.Hub.ListenAddress; a != "" {
		if _, _, err := net.SplitHostPort(a); err != nil {
			ch.add("hub.listenAddress", "invalid address %q, want [HOST]:PORT such as :7440", a)
		}
	}
	// 0 takes the engine's default, as it always did.
	if c.Mirror.Workers < 0 {
		ch.add("mirror.workers", "must be at least 1")
	}
	if c.Mirror.QueueSize < 0 {
		ch.add("mirror.queueSize", "must be at least 1")
	}
	if c.Mirror.MaxRetries < 0 {
		ch.add("mirror.maxRetries", "must not be negative")
	}
	return ch.problems, ch.warnings
}

func (ch *checker) aws(key string, a *AWS, target bool) {
	ch.required(key+".accountId", a.AccountID)
	if a.AccountID != "" && !accountIDExpr.MatchString(a.AccountID) {
		ch.add(key+".accountId", "invalid AWS account ID %q, want up to 12 digits", a.AccountID)
	}
	ch.required(key+".region", a.Region)
	if a.Role != "" && !strings.HasPrefix(a.Role, "arn:") {
		ch.add(key+".role", "invalid role %q, want an IAM role ARN (arn:aws:iam::ACCOUNT:role/NAME)", a.Role)
	}
	if a.Prefix != "" {
		if _, err := reference.ParseNamed("example.com/" + strings.Trim(a.Prefix, "/") + "/x"); err != nil {
			ch.add(key+".prefix", "invalid repository prefix %q: %v", a.Prefix, err)
		}
	}
	if target {
		ch.ecrOptions(key, a)
	}
}

// ecrOptions checks what goes into CreateRepository and the policy calls.
// The original sent these as written, and ECR refused what it could not
// take; here such a value is a warning and is not sent.
func (ch *checker) ecrOptions(key string, a *AWS) {
	o := &a.ECROptions
	k := key + ".ecrOptions."
	if o.ImageTagMutability != "" && !slices.Contains(mutabilities, o.ImageTagMutability) {
		ch.warn(k+"imageTagMutability", "invalid value %q, must be one of: %s; not sent to ECR (its default, MUTABLE, applies)",
			o.ImageTagMutability, strings.Join(mutabilities, ", "))
		o.ImageTagMutability = ""
	}
	enc := &o.EncryptionConfiguration
	switch {
	case enc.EncryptionType != "" && !slices.Contains(encryptions, enc.EncryptionType):
		ch.warn(k+"encryptionConfiguration.encryptionType", "invalid value %q, must be one of: %s; no encryption configuration is sent to ECR (its default, AES256, applies)",
			enc.EncryptionType, strings.Join(encryptions, ", "))
		*enc = EncryptionConfiguration{}
	case enc.KmsKey != "" && !strings.HasPrefix(enc.EncryptionType, "KMS"):
		ch.warn(k+"encryptionConfiguration.kmsKey", "only valid with encryptionType KMS or KMS_DSSE (ECR refuses it with %s); not sent to ECR",
			cmp.Or(enc.EncryptionType, "the default AES256"))
		enc.KmsKey = ""
	}
	kept := o.Tags[:0]
	for i, tag := range o.Tags {
		if strings.TrimSpace(tag.Key) == "" {
			ch.warn(fmt.Sprintf("%stags[%d].key", k, i), "required; this tag is not sent to ECR")
			continue
		}
		kept = append(kept, tag)
	}
	o.Tags = kept
	if !ch.json(key, "accessPolicy", a.AccessPolicy, o.AccessPolicy) {
		a.AccessPolicy, o.AccessPolicy = "", ""
	}
	if !ch.json(key, "lifecyclePolicy", a.LifecyclePolicy, o.LifecyclePolicy) {
		a.LifecyclePolicy, o.LifecyclePolicy = "", ""
	}
}

// json checks a policy document, reporting it where it was written.
func (ch *checker) json(key, name, topLevel, value string) bool {
	if value == "" {
		return true
	}
	k := key + ".ecrOptions." + name
	if topLevel == value {
		k = key + "." + name
	}
	var v map[string]any
	if err := json.Unmarshal([]byte(value), &v); err != nil {
		ch.warn(k, "invalid JSON policy document: %v; not sent to ECR", err)
		return false
	}
	return true
}

func (ch *checker) gcp(key string, g GCP) {
	ch.required(key+".location", g.Location)
	ch.required(key+".projectId", g.ProjectID)
	ch.required(key+".repositoryId", g.RepositoryID)
}

func (ch *checker) generic(key string, g Generic) {
	ch.required(key+".registry", g.Registry)
	if g.Registry != "" {
		if strings.Contains(g.Registry, "://") {
			ch.add(key+".registry", "give HOST[:PORT][/PREFIX] without a scheme (use insecure: true for plain HTTP), got %q", g.Registry)
		} else if _, err := registry.ParseBase(g.Registry); err != nil {
			ch.add(key+".registry", "%v", err)
		}
	}
	for _, f := range []struct{ name, val string }{{"username", g.Username}, {"password", g.Password}} {
		if m := envRefExpr.FindStringSubmatch(f.val); m != nil {
			ch.add(key+"."+f.name, "environment variable %s is not set", m[1])
		}
	}
	if (g.Username == "") != (g.Password == "") {
		ch.add(key+".password", "username and password go together")
	}
}

func (ch *checker) host(key, h string) {
	if h == "" {
		ch.add(key, "required")
		return
	}
	if _, err := registry.ParseHost(h); err != nil {
		ch.add(key, "%v", err)
	}
}
