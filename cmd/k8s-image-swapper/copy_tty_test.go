package main

import (
	"bytes"
	"io"
	"os"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/k8s-image-swapper/k8s-image-swapper/internal/testutil/images"
	"github.com/k8s-image-swapper/k8s-image-swapper/internal/testutil/registryproc"
)

// openPTY opens a pseudo-terminal: the program writes to tty, the test reads what it shows
// from ptm.
func openPTY(t *testing.T) (ptm, tty *os.File) {
	t.Helper()
	m, err := os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Skipf("no pseudo-terminals here: %v", err)
	}
	if err := unix.IoctlSetPointerInt(int(m.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		t.Fatal(err)
	}
	n, err := unix.IoctlGetInt(int(m.Fd()), unix.TIOCGPTN)
	if err != nil {
		t.Fatal(err)
	}
	s, err := os.OpenFile("/dev/pts/"+strconv.Itoa(n), os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close(); s.Close() })
	return m, s
}

// On a terminal `copy` redraws one line per image (carriage return and erase) with bytes
// written of total, and ends it with the outcome.
func TestCopyProgressOnATerminal(t *testing.T) {
	src := registryproc.Start(t, registryproc.Options{})
	dst := registryproc.Start(t, registryproc.Options{})
	images.Push(t, src.Addr+"/team/big:1", images.Image(t, 4<<20, 3, "linux/amd64"))
	cfg := writeConfig(t, "logLevel: error\nsource:\n  registries:\n    - type: generic\n      generic: {registry: \""+src.Addr+
		"\", insecure: true}\ntarget:\n  type: generic\n  generic: {registry: \""+dst.Addr+"\", insecure: true}\n")
	ptm, tty := openPTY(t)
	shown := make(chan string)
	go func() {
		var b bytes.Buffer
		_, _ = io.Copy(&b, ptm)
		shown <- b.String()
	}()
	if out, err := runSplit(t, tty, "copy", "--config", cfg, src.Addr+"/team/big:1"); err != nil {
		t.Fatalf("copy: %v\n%s", err, out)
	}
	tty.Close()
	got := <-shown
	if !strings.Contains(got, "\r\x1b[K"+src.Addr+"/team/big:1: ") || !strings.Contains(got, " of 12.0 MiB (") ||
		!strings.Contains(got, "(100%)") || !strings.Contains(got, "copied in ") || !strings.Contains(got, "1 image(s): 1 copied") {
		t.Errorf("the terminal showed %q", got)
	}
}
