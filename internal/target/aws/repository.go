package aws

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"

	awssdk "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ecr"
	"github.com/aws/aws-sdk-go-v2/service/ecr/types"
)

// EnsureRepository creates repo with the configured options, or, when it
// exists, brings its access and lifecycle policies to the configured ones.
// Each repository is handled once per process; a failure is retried on the
// next call.
func (t *Target) EnsureRepository(ctx context.Context, repo string) error {
	if _, ok := t.ensured.Load(repo); ok {
		return nil
	}
	_, err, _ := t.flight.Do(repo, func() (any, error) {
		if _, ok := t.ensured.Load(repo); ok {
			return nil, nil
		}
		if err := t.ensure(ctx, repo); err != nil {
			return nil, err
		}
		t.ensured.Store(repo, struct{}{})
		return nil, nil
	})
	return err
}

func (t *Target) ensure(ctx context.Context, repo string) error {
	created, err := t.create(ctx, repo)
	if err != nil {
		return err
	}
	o := t.cfg.Repositories
	if o.AccessPolicy != "" {
		if err := t.reconcileAccessPolicy(ctx, repo, created); err != nil {
			return err
		}
	}
	if o.LifecyclePolicy != "" {
		if err := t.reconcileLifecyclePolicy(ctx, repo, created); err != nil {
			return err
		}
	}
	return nil
}

// create makes repo and tells whether it is new; an existing one is fine.
func (t *Target) create(ctx context.Context, repo string) (bool, error) {
	o := t.cfg.Repositories
	in := &ecr.CreateRepositoryInput{
		RepositoryName:             awssdk.String(repo),
		RegistryId:                 awssdk.String(t.cfg.AccountID),
		ImageScanningConfiguration: &types.ImageScanningConfiguration{ScanOnPush: o.ScanOnPush},
		ImageTagMutability:         types.ImageTagMutability(o.TagMutability),
	}
	for _, tag := range o.Tags {
		in.Tags = append(in.Tags, types.Tag{Key: awssdk.String(tag.Key), Value: awssdk.String(tag.Value)})
	}
	if o.EncryptionType != "" {
		in.EncryptionConfiguration = &types.EncryptionConfiguration{EncryptionType: types.EncryptionType(o.EncryptionType)}
		if o.KMSKey != "" {
			in.EncryptionConfiguration.KmsKey = awssdk.String(o.KMSKey)
		}
	}
	_, err := t.client.CreateRepository(ctx, in)
	var exists *types.RepositoryAlreadyExistsException
	switch {
	case errors.As(err, &exists):
		return false, nil
	case err != nil:
		return false, fmt.Errorf("ECR CreateRepository %s: %w", repo, err)
	}
	t.log.Info("created ECR repository", "repository", repo, "registry", t.mapper.Host)
	return true, nil
}

// reconcileAccessPolicy sets the configured policy on a new repository, and
// on an existing one whose policy differs.
func (t *Target) reconcileAccessPolicy(ctx context.Context, repo string, created bool) error {
	want := t.cfg.Repositories.AccessPolicy
	if !created {
		out, err := t.client.GetRepositoryPolicy(ctx, &ecr.GetRepositoryPolicyInput{
			RepositoryName: awssdk.String(repo), RegistryId: awssdk.String(t.cfg.AccountID),
		})
		var none *types.RepositoryPolicyNotFoundException
		switch {
		case errors.As(err, &none):
		case err != nil:
			return fmt.Errorf("ECR GetRepositoryPolicy %s: %w", repo, err)
		case sameJSON(awssdk.ToString(out.PolicyText), want):
			return nil
		}
	}
	_, err := t.client.SetRepositoryPolicy(ctx, &ecr.SetRepositoryPolicyInput{
		RepositoryName: awssdk.String(repo), RegistryId: awssdk.String(t.cfg.AccountID), PolicyText: awssdk.String(want),
	})
	if err != nil {
		return fmt.Errorf("ECR SetRepositoryPolicy %s: %w", repo, err)
	}
	t.log.Info("applied ECR repository policy", "repository", repo, "new", created)
	return nil
}

// reconcileLifecyclePolicy does the same for the lifecycle policy.
func (t *Target) reconcileLifecyclePolicy(ctx context.Context, repo string, created bool) error {
	want := t.cfg.Repositories.LifecyclePolicy
	if !created {
		out, err := t.client.GetLifecyclePolicy(ctx, &ecr.GetLifecyclePolicyInput{
			RepositoryName: awssdk.String(repo), RegistryId: awssdk.String(t.cfg.AccountID),
		})
		var none *types.LifecyclePolicyNotFoundException
		switch {
		case errors.As(err, &none):
		case err != nil:
			return fmt.Errorf("ECR GetLifecyclePolicy %s: %w", repo, err)
		case sameJSON(awssdk.ToString(out.LifecyclePolicyText), want):
			return nil
		}
	}
	_, err := t.client.PutLifecyclePolicy(ctx, &ecr.PutLifecyclePolicyInput{
		RepositoryName: awssdk.String(repo), RegistryId: awssdk.String(t.cfg.AccountID), LifecyclePolicyText: awssdk.String(want),
	})
	if err != nil {
		return fmt.Errorf("ECR PutLifecyclePolicy %s: %w", repo, err)
	}
	t.log.Info("applied ECR lifecycle policy", "repository", repo, "new", created)
	return nil
}

// sameJSON compares two JSON documents by value: ECR hands policies back
// re-formatted, so text comparison would re-apply them every time.
func sameJSON(a, b string) bool {
	var va, vb any
	if json.Unmarshal([]byte(a), &va) != nil || json.Unmarshal([]byte(b), &vb) != nil {
		return a == b
	}
	return reflect.DeepEqual(va, vb)
}
