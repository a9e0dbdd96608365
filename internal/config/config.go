// Package config loads and validates .k8s-image-swapper.yml. The keys are the
// original k8s-image-swapper's, so an existing file works unchanged; new keys
// are additions.
package config

import (
	"time"

	"github.com/k8s-image-swapper/k8s-image-swapper/internal/logging"
	"github.com/k8s-image-swapper/k8s-image-swapper/internal/policy"
	"github.com/k8s-image-swapper/k8s-image-swapper/internal/registry"
)

// Config is the whole file.
type Config struct {
	DryRun            bool           `yaml:"dryRun"`
	LogLevel          string         `yaml:"logLevel"`
	LogFormat         logging.Format `yaml:"logFormat"`
	ListenAddress     string         `yaml:"listenAddress"`
	TLSCertFile       string         `yaml:"tlsCertFile"`
	TLSKeyFile        string         `yaml:"tlsKeyFile"`
	ImageSwapPolicy   policy.Swap    `yaml:"imageSwapPolicy"`
	ImageCopyPolicy   policy.Copy    `yaml:"imageCopyPolicy"`
	ImageCopyDeadline Duration       `yaml:"imageCopyDeadline"`
	// SecretReader reads pods' imagePullSecrets for copies (the chart's secretReader.enabled).
	SecretReader bool   `yaml:"secretReader"`
	Source       Source `yaml:"source"`
	Target       Target `yaml:"target"`
	Mirror       Mirror `yaml:"mirror"`
	Proxy        Proxy  `yaml:"proxy"`
	Hub          Hub    `yaml:"hub"`

	// Warnings are what was accepted as the original would have accepted
	// it, each with its key and line: unknown and miscased keys, values
	// from the environment, values it ignored or fell back from.
	Warnings []Problem      `yaml:"-"`
	lines    map[string]int // line of each key written
}

// Source describes where images come from.
type Source struct {
	Registries []Registry `yaml:"registries"`
	// PrivateRegistries is the original's older name for Registries (aws only).
	PrivateRegistries []Registry       `yaml:"privateRegistries"`
	Filters           []JMESPathFilter `yaml:"filters"`
	// Platforms limits copies to these platforms (os/arch[/variant]); empty means all.
	Platforms []string `yaml:"platforms"`
	// PrivateImages decides which pods get the copy of an image its source
	// does not serve anonymously: check (default) only pods whose own pull
	// secrets read it there; swap every pod, as the original did.
	PrivateImages policy.PrivateImages `yaml:"privateImages"`
	// CopyReferrers copies cosign signatures, attestations, SBOMs and OCI
	// referrers after each image; unset means true (see IsSet).
	CopyReferrers bool `yaml:"copyReferrers"`
}

// JMESPathFilter excludes a container when its expression is true.
type JMESPathFilter struct {
	JMESPath string `yaml:"jmespath"`
}

// Registry is a source registry with credentials.
type Registry struct {
	Type    string  `yaml:"type"`
	AWS     AWS     `yaml:"aws"`
	GCP     GCP     `yaml:"gcp"`
	Generic Generic `yaml:"generic"`
}

// Target is where images are mirrored to.
type Target struct {
	Type    string  `yaml:"type"`
	AWS     AWS     `yaml:"aws"`
	GCP     GCP     `yaml:"gcp"`
	Generic Generic `yaml:"generic"`
	Local   Local   `yaml:"local"`
}

// AWS is an ECR registry.
type AWS struct {
	AccountID  string     `yaml:"accountId"`
	Region     string     `yaml:"region"`
	Role       string     `yaml:"role"`
	Prefix     string     `yaml:"prefix"`
	ECROptions ECROptions `yaml:"ecrOptions"`
	// AccessPolicy and LifecyclePolicy directly under aws appear in the
	// original's getting-started guide; they fill ecrOptions when it has none.
	AccessPolicy    string `yaml:"accessPolicy"`
	LifecyclePolicy string `yaml:"lifecyclePolicy"`
}

// ECROptions apply to repositories the ECR target creates.
type ECROptions struct {
	AccessPolicy               string                     `yaml:"accessPolicy"`
	LifecyclePolicy            string                     `yaml:"lifecyclePolicy"`
	Tags                       []Tag                      `yaml:"tags"`
	ImageTagMutability         string                     `yaml:"imageTagMutability"`
	ImageScanningConfiguration ImageScanningConfiguration `yaml:"imageScanningConfiguration"`
	EncryptionConfiguration    EncryptionConfiguration    `yaml:"encryptionConfiguration"`
}

// Tag is an ECR resource tag.
type Tag struct {
	Key   string `yaml:"key"`
	Value string `yaml:"value"`
}

// ImageScanningConfiguration is ECR's scan-on-push switch.
type ImageScanningConfiguration struct {
	ImageScanOnPush bool `yaml:"imageScanOnPush"`
}

// EncryptionConfiguration is ECR's repository encryption.
type EncryptionConfiguration struct {
	EncryptionType string `yaml:"encryptionType"`
	KmsKey         string `yaml:"kmsKey"`
}

// GCP is an Artifact Registry docker repository.
type GCP struct {
	Location     string `yaml:"location"`
	ProjectID    string `yaml:"projectId"`
	RepositoryID string `yaml:"repositoryId"`
}

// Generic is any OCI registry. Registry is HOST[:PORT][/PREFIX].
type Generic struct {
	Registry string `yaml:"registry"`
	Insecure bool   `yaml:"insecure"`
	Username string `yaml:"username"`
	Password string `yaml:"password"`
}

// Local is the embedded on-disk store.
type Local struct {
	Path string `yaml:"path"`
	// Registry is the host name target references use; default the proxy address.
	Registry string `yaml:"registry"`
	// Push lets authenticated clients push their own images into the store
	// through the proxy; off, the proxy is read-only to every client.
	Push Push `yaml:"push"`
}

// Push is who may push into the local store, never into a mirror path.
type Push struct {
	Enabled bool `yaml:"enabled"`
	// Htpasswd is an htpasswd file of bcrypt entries, as distribution reads it.
	Htpasswd string `yaml:"htpasswd"`
	// TokenFile holds a token sent as a bearer token or as a Basic password.
	TokenFile string `yaml:"tokenFile"`
}

// Mirror tunes the copy engine.
type Mirror struct {
	Workers      int      `yaml:"workers"`
	QueueSize    int      `yaml:"queueSize"`
	ExistsTTL    Duration `yaml:"existsTTL"`
	MissingTTL   Duration `yaml:"missingTTL"`
	MaxRetries   int      `yaml:"maxRetries"`
	RetryWaitMax Duration `yaml:"retryWaitMax"`
}

// Proxy configures the node proxy.
type Proxy struct {
	ListenAddress   string        `yaml:"listenAddress"`
	Registries      []string      `yaml:"registries"`
	OnMiss          policy.OnMiss `yaml:"onMiss"`
	WaitTimeout     Duration      `yaml:"waitTimeout"`
	TagTTL          Duration      `yaml:"tagTTL"`
	UpstreamTimeout Duration      `yaml:"upstreamTimeout"`
	// Private decides who may pull, from the target, an image the source
	// does not serve anonymously: deny (default) serves it only to a pull
	// whose credentials the source accepts; allow serves it to every pull.
	Private policy.Private `yaml:"private"`
	// SharedRepositories are source repositories (path.Match globs on
	// host/repo, e.g. "ghcr.io/acme/*") served to every pull however private.
	SharedRepositories []string `yaml:"sharedRepositories"`
}

// Hub is the cluster's mirror service: node proxies and the webhook ask it
// before the sources when URL is set, and go to the sources themselves
// whenever it does not answer.
type Hub struct {
	// URL is where node proxies and the webhook reach it: http(s)://HOST[:PORT].
	URL string `yaml:"url"`
	// Timeout bounds the wait for its answer, and for each next byte of a
	// transfer, before the source is asked instead (default 5s).
	Timeout Duration `yaml:"timeout"`
	// ListenAddress is where the hub listens (default :7440).
	ListenAddress string `yaml:"listenAddress"`
}

// Duration reads "8s" or "1m30s" (and a bare integer as seconds).
type Duration time.Duration

// D returns the value as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// Host is the registry a source entry names, as hosts.toml and the proxy
// name it; "" when the entry does not parse (validation says why).
func (r Registry) Host() string { return kindHost(r.Type, r.AWS, r.GCP, r.Generic, Local{}) }

// Host is the target's registry host; for local, the name its references use.
func (t Target) Host() string { return kindHost(t.Type, t.AWS, t.GCP, t.Generic, t.Local) }

func kindHost(kind string, a AWS, g GCP, gen Generic, l Local) string {
	switch kind {
	case "aws":
		return registry.ECRHost(a.AccountID, a.Region)
	case "gcp":
		return registry.ArtifactRegistryHost(g.Location)
	case "generic":
		if b, err := registry.ParseBase(gen.Registry); err == nil {
			return b.Host
		}
	case "local":
		return l.Registry
	}
	return ""
}
