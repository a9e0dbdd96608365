package targettest_test

import (
	"context"
	"testing"

	"golang.org/x/crypto/bcrypt"

	"github.com/k8s-image-swapper/k8s-image-swapper/internal/target"
	"github.com/k8s-image-swapper/k8s-image-swapper/internal/target/targettest"
	"github.com/k8s-image-swapper/k8s-image-swapper/internal/testutil/registryproc"
)

func TestGeneric(t *testing.T) {
	targettest.Run(t, func(t *testing.T) targettest.Harness {
		hash, err := bcrypt.GenerateFromPassword([]byte("s3cret"), bcrypt.MinCost)
		if err != nil {
			t.Fatal(err)
		}
		reg := registryproc.Start(t, registryproc.Options{Htpasswd: "mirror:" + string(hash) + "\n"})
		tg, err := target.New(context.Background(), target.Spec{Kind: "generic", Generic: target.GenericSpec{
			Registry: reg.Addr + "/mirror", Insecure: true, Username: "mirror", Password: "s3cret",
		}})
		if err != nil {
			t.Fatal(err)
		}
		return targettest.Harness{Target: tg, Kind: "generic", Private: true, Reopen: func(t *testing.T) target.Target {
			reg.Stop()
			registryproc.Start(t, registryproc.Options{Htpasswd: "mirror:" + string(hash) + "\n", Dir: reg.Dir, Addr: reg.Addr})
			return tg
		}}
	})
}

func TestLocal(t *testing.T) {
	targettest.Run(t, func(t *testing.T) targettest.Harness {
		cfg := target.Spec{Kind: "local", Local: target.LocalSpec{Path: t.TempDir(), Registry: "127.0.0.1:7439"}}
		open := func(t *testing.T) target.Target {
			tg, err := target.New(context.Background(), cfg)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { tg.(*target.Local).Close() })
			return tg
		}
		first := open(t)
		return targettest.Harness{Target: first, Kind: "local", Reopen: func(t *testing.T) target.Target {
			if err := first.(*target.Local).Close(); err != nil {
				t.Fatal(err)
			}
			return open(t)
		}}
	})
}
