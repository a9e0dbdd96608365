package main

import (
 _ "github.com/google/go-containerregistry/pkg/v1/remote"
 _ "github.com/google/go-containerregistry/pkg/registry"
 _ "github.com/distribution/reference"
 _ "github.com/jmespath/go-jmespath"
 _ "github.com/spf13/cobra"
 _ "go.yaml.in/yaml/v3"
 _ "github.com/prometheus/client_golang/prometheus"
 _ "golang.org/x/sync/singleflight"
 _ "github.com/distribution/distribution/v3/registry/handlers"
 _ "github.com/distribution/distribution/v3/registry/storage/driver/filesystem"
 _ "k8s.io/api/admission/v1"
 _ "k8s.io/client-go/informers"
)
func main(){}
