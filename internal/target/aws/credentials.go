package aws

import (
	"context"
	"fmt"
	"time"

	awssdk "github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials/stscreds"
	"github.com/aws/aws-sdk-go-v2/service/ecr"
	"github.com/aws/aws-sdk-go-v2/service/sts"
)

// roleRefreshBefore renews assumed-role credentials this long before they
// expire, so no request is signed with credentials about to lapse.
const roleRefreshBefore = 5 * time.Minute

// roleSessionName names the assumed-role sessions in CloudTrail.
const roleSessionName = "k8s-image-swapper"

// newClient is an ECR client for a's region on the SDK's default credential
// chain (environment, IRSA web identity, shared config, instance role), and
// through a's role when one is set.
func newClient(ctx context.Context, a Registry, o Options) (*ecr.Client, error) {
	cfg, err := awsconfig.LoadDefaultConfig(ctx, awsconfig.WithRegion(a.Region))
	if err != nil {
		return nil, fmt.Errorf("aws %s/%s: load credentials: %w", a.AccountID, a.Region, err)
	}
	if a.Role != "" {
		stsClient := sts.NewFromConfig(cfg, func(so *sts.Options) {
			if o.STSEndpoint != "" {
				so.BaseEndpoint = awssdk.String(o.STSEndpoint)
			}
		})
		provider := stscreds.NewAssumeRoleProvider(stsClient, a.Role, func(ro *stscreds.AssumeRoleOptions) {
			ro.RoleSessionName = roleSessionName
		})
		cfg.Credentials = awssdk.NewCredentialsCache(provider, func(co *awssdk.CredentialsCacheOptions) {
			co.ExpiryWindow = roleRefreshBefore
		})
	}
	return ecr.NewFromConfig(cfg, func(eo *ecr.Options) {
		if o.ECREndpoint != "" {
			eo.BaseEndpoint = awssdk.String(o.ECREndpoint)
		}
	}), nil
}
