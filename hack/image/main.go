// Command image builds the k8s-image-swapper container image without a Docker daemon: a
// multi-platform OCI index of the static binaries `make image` cross-compiled, on a scratch base
// holding only CA certificates, a passwd entry for the nonroot user and a writable /tmp.
//
// Every timestamp is the commit time (-created), so two builds of one commit give one digest.
//
//	image build -binary linux/amd64=PATH -binary linux/arm64=PATH \
//	      -proxy-binary linux/amd64=PATH -proxy-binary linux/arm64=PATH -created RFC3339 \
//	      -version V -revision SHA [-push REF [-insecure]] [-layout DIR] [-tar FILE]
//	image verify [-insecure] -platform linux/amd64 -platform linux/arm64 REF
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: image build|verify [flags]")
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "build":
		err = runBuild(ctx, os.Args[2:])
	case "verify":
		err = runVerify(ctx, os.Args[2:])
	default:
		err = fmt.Errorf("unknown sub-command %q (build, verify)", os.Args[1])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "image:", err)
		os.Exit(1)
	}
}
