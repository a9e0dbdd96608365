// Package aws is the AWS ECR target (target.type: aws) and the keychain for
// ECR source registries, on aws-sdk-go-v2.
//
// It implements target.Target without importing internal/target, which
// imports this package to build targets (Go interfaces are structural).
package aws

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"

	"github.com/aws/aws-sdk-go-v2/service/ecr"
	"github.com/google/go-containerregistry/pkg/name"
	"golang.org/x/sync/singleflight"

	"github.com/k8s-image-swapper/k8s-image-swapper/internal/imageref"
	"github.com/k8s-image-swapper/k8s-image-swapper/internal/registry"
)

// Registry is one ECR registry: an account's, in a region, reached with the
// SDK's default credential chain and then, when Role is set, as that role
// (assumed through STS).
type Registry struct {
	AccountID string
	Region    string
	Role      string // an IAM role ARN; "" for none
}

// Config is the ECR target.
type Config struct {
	Registry
	// Prefix is a repository path inside the registry that every mirror
	// goes under; "" for none.
	Prefix string
	// Repositories is what the repositories the target creates get.
	Repositories Repositories
}

// Repositories are the settings of the repositories the target creates and
// the policies it keeps them at. An empty string is not sent: ECR's
// default applies.
type Repositories struct {
	AccessPolicy    string // a JSON policy document
	LifecyclePolicy string // a JSON lifecycle policy
	Tags            []Tag
	TagMutability   string // MUTABLE, IMMUTABLE, ...
	ScanOnPush      bool
	EncryptionType  string // AES256, KMS or KMS_DSSE
	KMSKey          string // with KMS and KMS_DSSE
}

// Tag is an ECR resource tag.
type Tag struct{ Key, Value string }

// Options override where the target's requests go. Production leaves them
// zero; tests point them at the stand-ins of internal/target/cloudtest.
type Options struct {
	// ECREndpoint and STSEndpoint are the SDK clients' BaseEndpoint.
	ECREndpoint string
	STSEndpoint string
	// RegistryHost (HOST:PORT) replaces the ECR registry host in references.
	RegistryHost string
	// Insecure reaches the registry over plain HTTP.
	Insecure bool
	// Transport carries registry requests; default a clone of http.DefaultTransport.
	Transport http.RoundTripper
	Logger    *slog.Logger // default slog.Default()
}

// Target is an ECR registry. Repositories are created on first use, named
// [prefix/]docker.io/library/nginx, and their policies reconciled once per
// process.
type Target struct {
	cfg       Config
	mapper    imageref.Mapper
	client    *ecr.Client
	token     *tokenCache
	insecure  bool
	transport http.RoundTripper
	log       *slog.Logger

	flight  singleflight.Group
	ensured sync.Map // repository name -> struct{}, once per process
}

// New returns the ECR target of a. No request is made until one is needed.
func New(ctx context.Context, a Config, o Options) (*Target, error) {
	host := registry.ECRHost(a.AccountID, a.Region)
	if o.RegistryHost != "" {
		host = o.RegistryHost
	}
	base := host
	if p := strings.Trim(a.Prefix, "/"); p != "" {
		base += "/" + p
	}
	m, err := imageref.NewMapper(base)
	if err != nil {
		return nil, fmt.Errorf("aws target: %w", err)
	}
	o.Logger = cmp.Or(o.Logger, slog.Default())
	client, err := newClient(ctx, a.Registry, o)
	if err != nil {
		return nil, err
	}
	rt := o.Transport
	if rt == nil {
		rt = http.DefaultTransport.(*http.Transport).Clone()
	}
	return &Target{
		cfg:       a,
		mapper:    m,
		client:    client,
		token:     newTokenCache(client, o.Logger),
		insecure:  o.Insecure,
		transport: rt,
		log:       o.Logger,
	}, nil
}

func (t *Target) Kind() string                 { return "aws" }
func (t *Target) Mapper() imageref.Mapper      { return t.mapper }
func (t *Target) Transport() http.RoundTripper { return t.transport }

func (t *Target) NameOptions() []name.Option {
	if t.insecure {
		return []name.Option{name.Insecure, name.StrictValidation}
	}
	return []name.Option{name.StrictValidation}
}
