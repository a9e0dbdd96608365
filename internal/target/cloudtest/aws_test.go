package cloudtest_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	awssdk "github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/service/ecr"
	"github.com/aws/aws-sdk-go-v2/service/ecr/types"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	"github.com/aws/smithy-go"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"

	"github.com/k8s-image-swapper/k8s-image-swapper/internal/target/cloudtest"
)

// The stand-in must refuse what the real service refuses, or the target's
// tests would prove nothing.

const (
	keyID  = "AKIASTANDINTEST"
	secret = "standin-secret"
)

func newAWS(t *testing.T) *cloudtest.AWS {
	s := cloudtest.NewAWS(t, cloudtest.AWSOptions{})
	s.AddKey(keyID, secret)
	return s
}

func ecrClient(s *cloudtest.AWS, region, secretKey string) *ecr.Client {
	return ecr.New(ecr.Options{
		Region:       region,
		BaseEndpoint: awssdk.String(s.URL),
		Credentials: awssdk.CredentialsProviderFunc(func(context.Context) (awssdk.Credentials, error) {
			return awssdk.Credentials{AccessKeyID: keyID, SecretAccessKey: secretKey}, nil
		}),
		RetryMaxAttempts: 1,
	})
}

func wantCode(t *testing.T, err error, code string) {
	t.Helper()
	var api smithy.APIError
	if !errors.As(err, &api) || api.ErrorCode() != code {
		t.Fatalf("want %s, got %v", code, err)
	}
}

// signedPost sends a hand-made ECR request signed for service.
func signedPost(t *testing.T, s *cloudtest.AWS, service, op, body string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, s.URL+"/", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/x-amz-json-1.1")
	req.Header.Set("X-Amz-Target", "AmazonEC2ContainerRegistry_V20150921."+op)
	sum := sha256.Sum256([]byte(body))
	err := v4.NewSigner().SignHTTP(context.Background(), awssdk.Credentials{AccessKeyID: keyID, SecretAccessKey: secret},
		req, hex.EncodeToString(sum[:]), service, s.Region, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestECRRefusesUnsignedAndMisSigned(t *testing.T) {
	s := newAWS(t)
	req, _ := http.NewRequest(http.MethodPost, s.URL+"/", strings.NewReader(`{}`))
	req.Header.Set("Content-Type", "application/x-amz-json-1.1")
	req.Header.Set("X-Amz-Target", "AmazonEC2ContainerRegistry_V20150921.GetAuthorizationToken")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 403 || !strings.Contains(string(b), "MissingAuthenticationTokenException") {
		t.Fatalf("unsigned: %d %s", resp.StatusCode, b)
	}

	_, err = ecrClient(s, s.Region, "wrong").GetAuthorizationToken(context.Background(), &ecr.GetAuthorizationTokenInput{})
	wantCode(t, err, "InvalidSignatureException")
	_, err = ecrClient(s, "us-east-1", secret).GetAuthorizationToken(context.Background(), &ecr.GetAuthorizationTokenInput{})
	wantCode(t, err, "InvalidSignatureException")
	if code, body := signedPost(t, s, "sts", "GetAuthorizationToken", `{}`); code != 403 || !strings.Contains(body, "correct service: 'ecr'") {
		t.Fatalf("scoped to sts: %d %s", code, body)
	}
	if code, body := signedPost(t, s, "ecr", "DeleteEverything", `{}`); code != 400 || !strings.Contains(body, "UnknownOperationException") {
		t.Fatalf("unknown op: %d %s", code, body)
	}
	if code, body := signedPost(t, s, "ecr", "GetAuthorizationToken", `{}`); code != 200 || !strings.Contains(body, "authorizationToken") {
		t.Fatalf("well signed: %d %s", code, body)
	}
	if n := len(s.Calls("GetAuthorizationToken")); n != 1 {
		t.Fatalf("%d accepted calls, want 1", n)
	}
}

func TestECRChecksFields(t *testing.T) {
	s := newAWS(t)
	c := ecrClient(s, s.Region, secret)
	bg := context.Background()
	create := func(in ecr.CreateRepositoryInput) error {
		_, err := c.CreateRepository(bg, &in)
		return err
	}
	wantCode(t, create(ecr.CreateRepositoryInput{RepositoryName: awssdk.String("Upper/Case")}), "ValidationException")
	wantCode(t, create(ecr.CreateRepositoryInput{RepositoryName: awssdk.String("a/b"), ImageTagMutability: "SOMETIMES"}), "ValidationException")
	wantCode(t, create(ecr.CreateRepositoryInput{RepositoryName: awssdk.String("a/b"),
		EncryptionConfiguration: &types.EncryptionConfiguration{EncryptionType: "ROT13"}}), "ValidationException")
	wantCode(t, create(ecr.CreateRepositoryInput{RepositoryName: awssdk.String("a/b"),
		EncryptionConfiguration: &types.EncryptionConfiguration{EncryptionType: types.EncryptionTypeAes256, KmsKey: awssdk.String("k")}}), "InvalidParameterException")
	wantCode(t, create(ecr.CreateRepositoryInput{RepositoryName: awssdk.String("a/b"), RegistryId: awssdk.String("999999999999")}), "AccessDeniedException")
	// Member names are case-sensitive: "RepositoryName" is not "repositoryName".
	if code, body := signedPost(t, s, "ecr", "CreateRepository", `{"RepositoryName":"a/b"}`); code != 400 || !strings.Contains(body, "ValidationException") {
		t.Fatalf("wrong member case: %d %s", code, body)
	}
	if code, body := signedPost(t, s, "ecr", "CreateRepository", `{"repositoryName":"a/b","tags":[{"key":"k","value":"v"}]}`); code != 400 || !strings.Contains(body, "ValidationException") {
		t.Fatalf("wrong tag member case: %d %s", code, body)
	}

	if err := create(ecr.CreateRepositoryInput{RepositoryName: awssdk.String("a/b")}); err != nil {
		t.Fatal(err)
	}
	wantCode(t, create(ecr.CreateRepositoryInput{RepositoryName: awssdk.String("a/b")}), "RepositoryAlreadyExistsException")
	_, err := c.SetRepositoryPolicy(bg, &ecr.SetRepositoryPolicyInput{RepositoryName: awssdk.String("a/b"), PolicyText: awssdk.String("not json")})
	wantCode(t, err, "InvalidParameterException")
	_, err = c.PutLifecyclePolicy(bg, &ecr.PutLifecyclePolicyInput{RepositoryName: awssdk.String("a/b"), LifecyclePolicyText: awssdk.String(strings.Repeat(" ", 100) + "{}")})
	wantCode(t, err, "InvalidParameterException")
	_, err = c.GetRepositoryPolicy(bg, &ecr.GetRepositoryPolicyInput{RepositoryName: awssdk.String("a/b")})
	wantCode(t, err, "RepositoryPolicyNotFoundException")
	_, err = c.GetLifecyclePolicy(bg, &ecr.GetLifecyclePolicyInput{RepositoryName: awssdk.String("a/b")})
	wantCode(t, err, "LifecyclePolicyNotFoundException")
	_, err = c.GetRepositoryPolicy(bg, &ecr.GetRepositoryPolicyInput{RepositoryName: awssdk.String("no/such")})
	wantCode(t, err, "RepositoryNotFoundException")
}

func TestSTSChecksRequests(t *testing.T) {
	s := newAWS(t)
	c := sts.New(sts.Options{
		Region: s.Region, BaseEndpoint: awssdk.String(s.URL), RetryMaxAttempts: 1,
		Credentials: awssdk.CredentialsProviderFunc(func(context.Context) (awssdk.Credentials, error) {
			return awssdk.Credentials{AccessKeyID: keyID, SecretAccessKey: secret}, nil
		}),
	})
	_, err := c.AssumeRole(context.Background(), &sts.AssumeRoleInput{RoleArn: awssdk.String("not-an-arn"), RoleSessionName: awssdk.String("s1")})
	wantCode(t, err, "ValidationError")
	_, err = c.AssumeRole(context.Background(), &sts.AssumeRoleInput{RoleArn: awssdk.String("arn:aws:iam::123456789012:role/r"), RoleSessionName: awssdk.String("bad name!")})
	wantCode(t, err, "ValidationError")
	out, err := c.AssumeRole(context.Background(), &sts.AssumeRoleInput{RoleArn: awssdk.String("arn:aws:iam::123456789012:role/r"), RoleSessionName: awssdk.String("s1")})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(*out.Credentials.AccessKeyId, "ASIA") || out.Credentials.Expiration.Before(time.Now()) {
		t.Fatalf("credentials %+v", out.Credentials)
	}
	// Assumed credentials work only with their session token.
	e := ecr.New(ecr.Options{Region: s.Region, BaseEndpoint: awssdk.String(s.URL), RetryMaxAttempts: 1,
		Credentials: awssdk.CredentialsProviderFunc(func(context.Context) (awssdk.Credentials, error) {
			return awssdk.Credentials{AccessKeyID: *out.Credentials.AccessKeyId, SecretAccessKey: *out.Credentials.SecretAccessKey}, nil
		})})
	_, err = e.GetAuthorizationToken(context.Background(), &ecr.GetAuthorizationTokenInput{})
	wantCode(t, err, "UnrecognizedClientException")
}

func TestECRDataPlane(t *testing.T) {
	s := newAWS(t)
	img, _ := random.Image(512, 1)
	write := func(repo, pass string) error {
		r, err := name.ParseReference(s.RegistryAddr+"/"+repo+":1", name.Insecure)
		if err != nil {
			t.Fatal(err)
		}
		return remote.Write(r, img, remote.WithAuth(&authn.Basic{Username: "AWS", Password: pass}))
	}
	var terr *transport.Error
	if err := write("never/created", s.Password()); !errors.As(err, &terr) || terr.StatusCode != 404 {
		t.Fatalf("push to a repository never created: want 404 NAME_UNKNOWN, got %v", err)
	}
	s.PutRepository(cloudtest.Repository{Name: "made/here"})
	if err := write("made/here", "wrong"); !errors.As(err, &terr) || terr.StatusCode != 401 {
		t.Fatalf("push with a wrong password: want 401, got %v", err)
	}
	if err := write("made/here", s.Password()); err != nil {
		t.Fatal(err)
	}
}
