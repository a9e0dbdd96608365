package webhook

import (
	"crypto/tls"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"
)

// certCheckInterval is how often the files are looked at again; a rotated
// certificate is served within this long.
const certCheckInterval = time.Second

// certLoader serves the certificate in a pair of files and reloads it when
// they change (cert-manager rotates them in place, a Secret volume swaps a
// symlink), with no restart.
type certLoader struct {
	certFile, keyFile string
	log               *slog.Logger

	mu      sync.Mutex
	cert    *tls.Certificate
	stamp   string
	checked time.Time
}

func newCertLoader(certFile, keyFile string, log *slog.Logger) (*certLoader, error) {
	c := &certLoader{certFile: certFile, keyFile: keyFile, log: log}
	stamp, err := c.fileStamp()
	if err != nil {
		return nil, err
	}
	if err := c.load(stamp); err != nil {
		return nil, err
	}
	return c, nil
}

// GetCertificate is tls.Config.GetCertificate.
func (c *certLoader) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if time.Since(c.checked) >= certCheckInterval {
		c.checked = time.Now()
		stamp, err := c.fileStamp()
		switch {
		case err != nil:
			c.log.Warn("TLS certificate files unreadable; serving the previous certificate", "error", err)
		case stamp != c.stamp:
			// A half-written rotation (new certificate, old key) fails
			// here; the old pair is served until both files agree.
			if err := c.load(stamp); err != nil {
				c.log.Warn("TLS certificate not reloaded; serving the previous one", "error", err)
			} else {
				c.log.Info("TLS certificate reloaded", "cert", c.certFile)
			}
		}
	}
	return c.cert, nil
}

// load reads the pair; mu is held or c is not shared yet.
func (c *certLoader) load(stamp string) error {
	cert, err := tls.LoadX509KeyPair(c.certFile, c.keyFile)
	if err != nil {
		return fmt.Errorf("load TLS certificate %s and key %s: %w", c.certFile, c.keyFile, err)
	}
	c.cert, c.stamp = &cert, stamp
	return nil
}

// fileStamp changes whenever either file is replaced or rewritten.
func (c *certLoader) fileStamp() (string, error) {
	var s string
	for _, f := range []string{c.certFile, c.keyFile} {
		fi, err := os.Stat(f)
		if err != nil {
			return "", fmt.Errorf("TLS file: %w", err)
		}
		s += fmt.Sprintf("%s:%d:%d;", f, fi.ModTime().UnixNano(), fi.Size())
	}
	return s, nil
}
