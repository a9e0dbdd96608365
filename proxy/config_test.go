package proxy

import (
	"slices"
	"testing"

	"github.com/k8s-image-swapper/k8s-image-swapper/internal/config"
)

// The proxy serves every configured source registry under the host name
// the targets and hosts.toml use: one rule for ECR, China regions included.
func TestSourceRegistriesServed(t *testing.T) {
	c, err := config.Parse([]byte(`source:
  registries:
    - type: aws
      aws: {accountId: "123456789012", region: cn-north-1}
    - type: aws
      aws: {accountId: "123456789012", region: eu-west-1}
    - type: gcp
      gcp: {location: europe-west1, projectId: p, repositoryId: r}
`))
	if err != nil {
		t.Fatal(err)
	}
	o, err := OptionsFromConfig(c)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"123456789012.dkr.ecr.cn-north-1.amazonaws.com.cn",
		"123456789012.dkr.ecr.eu-west-1.amazonaws.com", "europe-west1-docker.pkg.dev"} {
		if !slices.Contains(o.Registries, want) {
			t.Errorf("%s not among the registries served: %v", want, o.Registries)
		}
	}
}
