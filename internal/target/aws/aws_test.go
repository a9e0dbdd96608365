package aws_test

import (
	"context"
	"encoding/json"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"

	"github.com/k8s-image-swapper/k8s-image-swapper/internal/target"
	"github.com/k8s-image-swapper/k8s-image-swapper/internal/target/aws"
	"github.com/k8s-image-swapper/k8s-image-swapper/internal/target/cloudtest"
)

var _ target.Target = (*aws.Target)(nil)

const (
	accessPolicy = `{"Version":"2012-10-17","Statement":[{"Sid":"pull","Effect":"Allow",` +
		`"Principal":{"AWS":"arn:aws:iam::123456789012:root"},"Action":["ecr:BatchGetImage","ecr:GetDownloadUrlForLayer"]}]}`
	lifecyclePolicy = `{"rules":[{"rulePriority":1,"description":"expire untagged after 7 days",` +
		`"selection":{"tagStatus":"untagged","countType":"sinceImagePushed","countUnit":"days","countNumber":7},"action":{"type":"expire"}}]}`
)

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return c
}

// standIn starts the AWS stand-in with credentials in the environment.
func standIn(t *testing.T) (*cloudtest.AWS, string) {
	s := cloudtest.NewAWS(t, cloudtest.AWSOptions{})
	return s, s.UseEnvCredentials(t)
}

func open(t *testing.T, s *cloudtest.AWS, c aws.Config) *aws.Target {
	t.Helper()
	tg, err := aws.New(ctx(t), c, s.TargetOptions())
	if err != nil {
		t.Fatal(err)
	}
	return tg
}

func ops(calls []cloudtest.Call) []string {
	var out []string
	for _, c := range calls {
		out = append(out, c.Op+"/"+c.Error)
	}
	return out
}

func TestMapperUsesPrefixForHostPathAndRepository(t *testing.T) {
	t.Setenv("AWS_ACCESS_KEY_ID", "AKIAEXAMPLE")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "secret")
	tg, err := aws.New(ctx(t), aws.Config{Registry: aws.Registry{AccountID: "123456789012", Region: "cn-north-1"}, Prefix: "/mirror/"}, aws.Options{})
	if err != nil {
		t.Fatal(err)
	}
	m := tg.Mapper()
	if want := "123456789012.dkr.ecr.cn-north-1.amazonaws.com.cn/mirror"; m.Base() != want {
		t.Fatalf("Base() = %s, want %s", m.Base(), want)
	}
	src, _ := name.ParseReference(mustNamed(t, m, "nginx").String(), tg.NameOptions()...)
	if got, want := src.Context().RepositoryStr(), "mirror/docker.io/library/nginx"; got != want {
		t.Fatalf("repository %s, want %s", got, want)
	}
}

func TestCreateRepositoryWithEveryOption(t *testing.T) {
	s, _ := standIn(t)
	c := s.Config()
	c.Prefix = "mirror"
	c.Repositories = aws.Repositories{
		AccessPolicy:    accessPolicy,
		LifecyclePolicy: lifecyclePolicy,
		Tags:            []aws.Tag{{Key: "team", Value: "platform"}, {Key: "empty", Value: ""}},
		TagMutability:   "IMMUTABLE",
		ScanOnPush:      true,
		EncryptionType:  "KMS",
		KMSKey:          "arn:aws:kms:eu-west-1:123456789012:key/abcd",
	}
	tg := open(t, s, c)
	repo := "mirror/docker.io/library/nginx"
	for range 3 {
		if err := tg.EnsureRepository(ctx(t), repo); err != nil {
			t.Fatal(err)
		}
	}
	got, ok := s.Repository(repo)
	if !ok {
		t.Fatalf("repository %s not created; calls %v", repo, ops(s.Calls("")))
	}
	want := cloudtest.Repository{
		Name: repo, Tags: map[string]string{"team": "platform", "empty": ""}, ImageTagMutability: "IMMUTABLE",
		ScanOnPush: true, EncryptionType: "KMS", KmsKey: "arn:aws:kms:eu-west-1:123456789012:key/abcd",
		Policy: accessPolicy, LifecyclePolicy: lifecyclePolicy,
	}
	if gs, ws := jsonString(t, got), jsonString(t, want); gs != ws {
		t.Fatalf("stand-in holds\n%s\nwant\n%s", gs, ws)
	}
	// A new repository needs no reading back; the cache makes later calls free.
	if got, want := strings.Join(ops(s.Calls("")), " "), "CreateRepository/ SetRepositoryPolicy/ PutLifecyclePolicy/"; got != want {
		t.Fatalf("calls %s, want %s", got, want)
	}
	var body map[string]any
	if err := json.Unmarshal([]byte(s.Calls("CreateRepository")[0].Body), &body); err != nil {
		t.Fatal(err)
	}
	if body["registryId"] != s.AccountID {
		t.Fatalf("CreateRepository registryId %v, want %s", body["registryId"], s.AccountID)
	}
}

func TestCreateRepositoryDefaults(t *testing.T) {
	s, _ := standIn(t)
	tg := open(t, s, s.Config())
	if err := tg.EnsureRepository(ctx(t), "quay.io/x/y"); err != nil {
		t.Fatal(err)
	}
	got, _ := s.Repository("quay.io/x/y")
	if got.ImageTagMutability != "MUTABLE" || got.EncryptionType != "AES256" || got.ScanOnPush || got.Policy != "" {
		t.Fatalf("defaults: %+v", got)
	}
	if got := strings.Join(ops(s.Calls("")), " "); got != "CreateRepository/" {
		t.Fatalf("calls %s", got)
	}
}

func TestRepositoryAlreadyExistsIsSuccess(t *testing.T) {
	s, _ := standIn(t)
	s.PutRepository(cloudtest.Repository{Name: "docker.io/library/redis"})
	tg := open(t, s, s.Config())
	if err := tg.EnsureRepository(ctx(t), "docker.io/library/redis"); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(ops(s.Calls("")), " "); got != "CreateRepository/RepositoryAlreadyExistsException" {
		t.Fatalf("calls %s", got)
	}
}

func TestPolicyReconcile(t *testing.T) {
	s, _ := standIn(t)
	const oldLifecycle = `{"rules":[{"rulePriority":1,"description":"old rule, keep 100 images",` +
		`"selection":{"tagStatus":"any","countType":"imageCountMoreThan","countNumber":100},"action":{"type":"expire"}}]}`
	s.PutRepository(cloudtest.Repository{Name: "docker.io/library/old", Policy: `{"Statement":[]}`, LifecyclePolicy: oldLifecycle})
	s.PutRepository(cloudtest.Repository{Name: "docker.io/library/bare"})
	// Same documents, other formatting: nothing to do.
	s.PutRepository(cloudtest.Repository{Name: "docker.io/library/same", Policy: reindent(t, accessPolicy), LifecyclePolicy: reindent(t, lifecyclePolicy)})
	c := s.Config()
	c.Repositories.AccessPolicy, c.Repositories.LifecyclePolicy = accessPolicy, lifecyclePolicy
	tg := open(t, s, c)

	for _, repo := range []string{"docker.io/library/old", "docker.io/library/bare", "docker.io/library/same"} {
		for range 2 { // the second call is served from the per-process cache
			if err := tg.EnsureRepository(ctx(t), repo); err != nil {
				t.Fatal(err)
			}
		}
		got, _ := s.Repository(repo)
		if !sameJSON(t, got.Policy, accessPolicy) || !sameJSON(t, got.LifecyclePolicy, lifecyclePolicy) {
			t.Fatalf("%s not reconciled: %+v", repo, got)
		}
	}
	want := []string{
		"CreateRepository/RepositoryAlreadyExistsException", "GetRepositoryPolicy/", "SetRepositoryPolicy/",
		"GetLifecyclePolicy/", "PutLifecyclePolicy/",
		"CreateRepository/RepositoryAlreadyExistsException", "GetRepositoryPolicy/RepositoryPolicyNotFoundException",
		"SetRepositoryPolicy/", "GetLifecyclePolicy/LifecyclePolicyNotFoundException", "PutLifecyclePolicy/",
		"CreateRepository/RepositoryAlreadyExistsException", "GetRepositoryPolicy/", "GetLifecyclePolicy/",
	}
	if got := ops(s.Calls("")); strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("calls\n%v\nwant\n%v", got, want)
	}

	// A new process reads the policies again but has nothing to change.
	n := len(s.Calls(""))
	if err := open(t, s, c).EnsureRepository(ctx(t), "docker.io/library/old"); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(ops(s.Calls("")[n:]), " "); got != "CreateRepository/RepositoryAlreadyExistsException GetRepositoryPolicy/ GetLifecyclePolicy/" {
		t.Fatalf("second process: %s", got)
	}
}

func TestTokenRenewedBeforeExpiry(t *testing.T) {
	s, _ := standIn(t)
	s.SetTokenTTL(2 * time.Second)
	tg := open(t, s, s.Config())
	check := func() {
		t.Helper()
		a, err := tg.Authenticator(ctx(t))
		if err != nil {
			t.Fatal(err)
		}
		cfg, err := a.Authorization()
		if err != nil {
			t.Fatal(err)
		}
		if cfg.Username != "AWS" || cfg.Password != s.Password() {
			t.Fatalf("registry credentials %s/%s, want AWS and the stand-in's password", cfg.Username, cfg.Password)
		}
	}
	check()
	check()
	if n := len(s.Calls("GetAuthorizationToken")); n != 1 {
		t.Fatalf("%d GetAuthorizationToken calls while the token is fresh, want 1", n)
	}
	time.Sleep(1700 * time.Millisecond) // past 80% of the lifetime, before expiry
	check()
	if n := len(s.Calls("GetAuthorizationToken")); n != 2 {
		t.Fatalf("%d GetAuthorizationToken calls after 80%% of the lifetime, want 2", n)
	}
}

func TestAssumeRole(t *testing.T) {
	s, baseKey := standIn(t)
	// Five minutes of margin are the refresh window: these credentials are
	// due for renewal three seconds after they are issued.
	s.SetRoleTTL(5*time.Minute + 3*time.Second)
	c := s.Config()
	c.Role = "arn:aws:iam::210987654321:role/image-swapper"
	tg := open(t, s, c)
	if err := tg.EnsureRepository(ctx(t), "docker.io/library/a"); err != nil {
		t.Fatal(err)
	}
	assumed := s.Calls("AssumeRole")
	if len(assumed) != 1 {
		t.Fatalf("%d AssumeRole calls, want 1", len(assumed))
	}
	form, _ := url.ParseQuery(assumed[0].Body)
	if form.Get("RoleArn") != c.Role || assumed[0].AccessKey != baseKey || form.Get("RoleSessionName") == "" {
		t.Fatalf("AssumeRole %v signed by %s, want role %s signed by %s", form, assumed[0].AccessKey, c.Role, baseKey)
	}
	first := s.Calls("CreateRepository")[0].AccessKey
	if !strings.HasPrefix(first, "ASIA") || first == baseKey {
		t.Fatalf("ECR request signed by %s, want the assumed role's key", first)
	}

	time.Sleep(3500 * time.Millisecond)
	if err := tg.EnsureRepository(ctx(t), "docker.io/library/b"); err != nil {
		t.Fatal(err)
	}
	if n := len(s.Calls("AssumeRole")); n != 2 {
		t.Fatalf("%d AssumeRole calls after the refresh point, want 2", n)
	}
	second := s.Calls("CreateRepository")[1].AccessKey
	if !strings.HasPrefix(second, "ASIA") || second == first {
		t.Fatalf("after refresh ECR request signed by %s, want a new assumed key (was %s)", second, first)
	}
}

func TestRefusedCredentialsAreAClearError(t *testing.T) {
	s, _ := standIn(t)
	t.Setenv("AWS_SECRET_ACCESS_KEY", "wrong")
	err := open(t, s, s.Config()).EnsureRepository(ctx(t), "docker.io/library/a")
	if err == nil || !strings.Contains(err.Error(), "InvalidSignatureException") || !strings.Contains(err.Error(), "CreateRepository") {
		t.Fatalf("want a CreateRepository InvalidSignatureException, got %v", err)
	}
	t.Setenv("AWS_ACCESS_KEY_ID", "AKIAUNKNOWN")
	if _, err := open(t, s, s.Config()).Authenticator(ctx(t)); err == nil || !strings.Contains(err.Error(), "UnrecognizedClientException") {
		t.Fatalf("want UnrecognizedClientException, got %v", err)
	}
}

func TestKeychain(t *testing.T) {
	s, _ := standIn(t)
	k, err := aws.NewKeychain(ctx(t), []aws.Registry{s.Config().Registry}, s.TargetOptions())
	if err != nil {
		t.Fatal(err)
	}
	a, err := k.Resolve(mustRepo(t, s.RegistryAddr+"/team/app"))
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := a.Authorization()
	if err != nil || cfg.Username != "AWS" || cfg.Password != s.Password() {
		t.Fatalf("ECR source credentials %+v, %v", cfg, err)
	}
	other, err := k.Resolve(mustRepo(t, "registry.example.com/team/app"))
	if err != nil || other != authn.Anonymous {
		t.Fatalf("another host resolved to %v, %v; want anonymous", other, err)
	}
}
