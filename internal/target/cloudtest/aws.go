// STAND-IN for AWS ECR and STS: a local HTTP server that plays both APIs
// (reached through the SDK's BaseEndpoint) and a real docker-registry as the
// ECR registry data plane. Not the real services.

package cloudtest

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/k8s-image-swapper/k8s-image-swapper/internal/target/aws"
	"github.com/k8s-image-swapper/k8s-image-swapper/internal/testutil/registryproc"
)

// AWSOptions configure the AWS stand-in; zero values take the defaults.
type AWSOptions struct {
	AccountID string // default 123456789012
	Region    string // default eu-west-1
}

// AWS is the stand-in for ECR and STS of one account and region.
type AWS struct {
	AccountID string
	Region    string
	// URL is the API endpoint of both ECR and STS.
	URL string
	// RegistryAddr is the data plane (HOST:PORT, plain HTTP): a real
	// registry behind a front that refuses repositories never created.
	RegistryAddr string
	Registry     *registryproc.Registry
	password     string

	mu       sync.Mutex
	keys     map[string]key
	repos    map[string]*Repository
	calls    []Call
	tokenTTL time.Duration
	roleTTL  time.Duration
}

// Call is one API request whose signature the stand-in accepted.
type Call struct {
	Service   string // ecr or sts
	Op        string // CreateRepository, AssumeRole, ...
	AccessKey string // the key that signed it
	Body      string // the JSON (ECR) or form (STS) body
	Error     string // the error code answered, "" on success
}

// Repository is what the stand-in knows of an ECR repository.
type Repository struct {
	Name               string
	Tags               map[string]string
	ImageTagMutability string
	ScanOnPush         bool
	EncryptionType     string
	KmsKey             string
	Policy             string
	LifecyclePolicy    string
}

// NewAWS starts the stand-in and its registry until the test ends.
func NewAWS(t testing.TB, o AWSOptions) *AWS {
	t.Helper()
	if o.AccountID == "" {
		o.AccountID = "123456789012"
	}
	if o.Region == "" {
		o.Region = "eu-west-1"
	}
	a := &AWS{
		AccountID: o.AccountID,
		Region:    o.Region,
		password:  randomString(24),
		keys:      map[string]key{},
		repos:     map[string]*Repository{},
		tokenTTL:  12 * time.Hour,
		roleTTL:   time.Hour,
	}
	a.Registry = registryproc.Start(t, registryproc.Options{Htpasswd: htpasswd(t, "AWS", a.password)})
	front := newDataPlane(a.Registry, "AWS", a.password, a.repositoryExists)
	t.Cleanup(front.Close)
	a.RegistryAddr = strings.TrimPrefix(front.URL, "http://")
	api := httptest.NewServer(http.HandlerFunc(a.serveHTTP))
	t.Cleanup(api.Close)
	a.URL = api.URL
	return a
}

// AddKey makes an access key known, as IAM would.
func (a *AWS) AddKey(id, secret string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.keys[id] = key{secret: secret}
}

// UseEnvCredentials puts a fresh key in the environment for the SDK's
// default credential chain, and shuts out every other link of the chain
// (shared files, profiles, web identity, instance metadata).
func (a *AWS) UseEnvCredentials(t testing.TB) (accessKey string) {
	t.Helper()
	id, secret := "AKIA"+strings.ToUpper(randomString(8)), randomString(20)
	a.AddKey(id, secret)
	none := t.TempDir() + "/none"
	for k, v := range map[string]string{
		"AWS_ACCESS_KEY_ID": id, "AWS_SECRET_ACCESS_KEY": secret, "AWS_SESSION_TOKEN": "",
		"AWS_CONFIG_FILE": none, "AWS_SHARED_CREDENTIALS_FILE": none, "AWS_PROFILE": "",
		"AWS_ROLE_ARN": "", "AWS_WEB_IDENTITY_TOKEN_FILE": "", "AWS_EC2_METADATA_DISABLED": "true",
		"AWS_REGION": "", "AWS_DEFAULT_REGION": "", "AWS_ENDPOINT_URL": "",
	} {
		t.Setenv(k, v)
	}
	return id
}

// SetTokenTTL sets the lifetime of GetAuthorizationToken's tokens (12h by default).
func (a *AWS) SetTokenTTL(d time.Duration) { a.mu.Lock(); a.tokenTTL = d; a.mu.Unlock() }

// SetRoleTTL sets the lifetime of AssumeRole's credentials (1h by default).
func (a *AWS) SetRoleTTL(d time.Duration) { a.mu.Lock(); a.roleTTL = d; a.mu.Unlock() }

// Config is the ECR target of this account and region.
func (a *AWS) Config() aws.Config {
	return aws.Config{Registry: aws.Registry{AccountID: a.AccountID, Region: a.Region}}
}

// TargetOptions point the aws target at the stand-in.
func (a *AWS) TargetOptions() aws.Options {
	return aws.Options{ECREndpoint: a.URL, STSEndpoint: a.URL, RegistryHost: a.RegistryAddr, Insecure: true}
}

// Password is the registry password GetAuthorizationToken hands out.
func (a *AWS) Password() string { return a.password }

// Calls returns the accepted requests for op ("" for all).
func (a *AWS) Calls(op string) []Call {
	a.mu.Lock()
	defer a.mu.Unlock()
	var out []Call
	for _, c := range a.calls {
		if op == "" || c.Op == op {
			out = append(out, c)
		}
	}
	return out
}

// Repository returns a copy of what the stand-in holds for name.
func (a *AWS) Repository(name string) (Repository, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	r, ok := a.repos[name]
	if !ok {
		return Repository{}, false
	}
	c := *r
	c.Tags = map[string]string{}
	for k, v := range r.Tags {
		c.Tags[k] = v
	}
	return c, true
}

// PutRepository creates or replaces a repository behind the API's back,
// as one made earlier by someone else.
func (a *AWS) PutRepository(r Repository) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if r.ImageTagMutability == "" {
		r.ImageTagMutability = "MUTABLE"
	}
	if r.EncryptionType == "" {
		r.EncryptionType = "AES256"
	}
	a.repos[r.Name] = &r
}

func (a *AWS) repositoryExists(name string) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	_, ok := a.repos[name]
	return ok
}

func (a *AWS) lookupKey(id string) (key, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	k, ok := a.keys[id]
	return k, ok
}

func (a *AWS) record(c Call) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.calls = append(a.calls, c)
}

// serveHTTP sends JSON requests with X-Amz-Target to ECR, the rest to STS.
func (a *AWS) serveHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	if r.Header.Get("X-Amz-Target") != "" {
		a.serveECR(w, r, body)
		return
	}
	a.serveSTS(w, r, body)
}

func randomString(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return hex.EncodeToString(b)[:n]
}

func requestID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	h := hex.EncodeToString(b)
	return fmt.Sprintf("%s-%s-%s-%s-%s", h[:8], h[8:12], h[12:16], h[16:20], h[20:])
}

// basicToken is ECR's authorization token: base64 of USER:PASSWORD.
func basicToken(user, pass string) string {
	return base64.StdEncoding.EncodeToString([]byte(user + ":" + pass))
}
