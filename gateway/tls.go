package gateway

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// CertConfig configures a CertReloader. The zero value of every field but
// the files means its default.
type CertConfig struct {
	// CertFile and KeyFile are PEM files: the certificate chain (leaf
	// first) and its private key. Required.
	CertFile, KeyFile string
	// CheckInterval is how often, at most, a TLS handshake looks whether
	// the files changed (default 10s; negative: never, only Reload). The
	// files are read and compared, not just stat'ed: a rotation within
	// the file system's timestamp granularity is seen too.
	CheckInterval time.Duration
	// Logger receives reloads and failures (default slog.Default()).
	Logger *slog.Logger
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// CertReloader serves the certificate of a TLS listener from files and
// reads them again when they change (seen on a handshake, at most once per
// CheckInterval) or when Reload is called (cmd/edge: on SIGHUP). A rotation
// changes the certificate of new connections only; established ones keep
// theirs and are not dropped. A reload that fails (a half-written file, a
// key that does not match) keeps the certificate in use and is tried again
// at the next check. Safe for concurrent use.
type CertReloader struct {
	cfg  CertConfig
	cert atomic.Pointer[tls.Certificate]

	mu        sync.Mutex // guards the fields below; handshakes never wait for it
	certPEM   []byte     // what cert was made of
	keyPEM    []byte
	nextCheck time.Time

	reloads, failures atomic.Uint64
}

// NewCertReloader loads the certificate and key, or fails.
func NewCertReloader(cfg CertConfig) (*CertReloader, error) {
	if cfg.CertFile == "" || cfg.KeyFile == "" {
		return nil, errors.New("gateway: TLS needs both a certificate file and a key file")
	}
	if cfg.CheckInterval == 0 {
		cfg.CheckInterval = 10 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	r := &CertReloader{cfg: cfg}
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, err := r.loadLocked(); err != nil {
		return nil, err
	}
	r.nextCheck = cfg.Now().Add(cfg.CheckInterval)
	return r, nil
}

// Reload reads the files again now, and serves them if they changed and
// hold a valid certificate and key. On error the certificate in use stays.
func (r *CertReloader) Reload() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	_, err := r.loadLocked()
	return err
}

// loadLocked reads the files and, if they differ from what is served,
// parses and serves them. It reports whether the certificate changed.
func (r *CertReloader) loadLocked() (bool, error) {
	certPEM, err := os.ReadFile(r.cfg.CertFile)
	if err != nil {
		return false, r.failLocked(fmt.Errorf("read TLS certificate: %w", err))
	}
	keyPEM, err := os.ReadFile(r.cfg.KeyFile)
	if err != nil {
		return false, r.failLocked(fmt.Errorf("read TLS key: %w", err))
	}
	if r.cert.Load() != nil && bytes.Equal(certPEM, r.certPEM) && bytes.Equal(keyPEM, r.keyPEM) {
		return false, nil
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		// The message names no key material: X509KeyPair's errors do not
		// quote the PEM.
		return false, r.failLocked(fmt.Errorf("TLS certificate %s and key %s: %w", r.cfg.CertFile, r.cfg.KeyFile, err))
	}
	leaf, err := x509.ParseCertificate(cert.Certificate[0])
	if err != nil {
		return false, r.failLocked(fmt.Errorf("TLS certificate %s: %w", r.cfg.CertFile, err))
	}
	cert.Leaf = leaf
	first := r.cert.Load() == nil
	r.cert.Store(&cert)
	r.certPEM, r.keyPEM = certPEM, keyPEM
	if !first {
		r.reloads.Add(1)
	}
	r.cfg.Logger.Info("TLS certificate loaded", "file", r.cfg.CertFile, "subject", leaf.Subject.String(),
		"serial", leaf.SerialNumber.String(), "not_after", leaf.NotAfter.UTC().Format(time.RFC3339))
	if now := r.cfg.Now(); now.After(leaf.NotAfter) {
		r.cfg.Logger.Warn("TLS certificate has expired", "file", r.cfg.CertFile, "not_after", leaf.NotAfter.UTC().Format(time.RFC3339))
	}
	return true, nil
}

func (r *CertReloader) failLocked(err error) error {
	r.failures.Add(1)
	if r.cert.Load() != nil {
		r.cfg.Logger.Warn("TLS certificate reload failed; serving the previous one", "err", err)
	}
	return err
}

// GetCertificate is tls.Config.GetCertificate: the current certificate,
// after reading the files again if CheckInterval has passed. A handshake
// never waits for another's check.
func (r *CertReloader) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	if r.cfg.CheckInterval > 0 && r.mu.TryLock() {
		if now := r.cfg.Now(); !now.Before(r.nextCheck) {
			r.nextCheck = now.Add(r.cfg.CheckInterval)
			_, _ = r.loadLocked()
		}
		r.mu.Unlock()
	}
	return r.cert.Load(), nil
}

// Certificate returns the certificate served now.
func (r *CertReloader) Certificate() *tls.Certificate { return r.cert.Load() }

// Reloads returns how many times a changed certificate was loaded, and how
// many reads or loads failed.
func (r *CertReloader) Reloads() (ok, failed uint64) { return r.reloads.Load(), r.failures.Load() }

// TLSConfig is a server configuration serving r's certificate: TLS 1.2 or
// later, HTTP/1.1 only (WebSocket upgrades are HTTP/1.1).
func (r *CertReloader) TLSConfig() *tls.Config {
	return &tls.Config{
		MinVersion:     tls.VersionTLS12,
		GetCertificate: r.GetCertificate,
		NextProtos:     []string{"http/1.1"},
	}
}

// NewTLSListener wraps ln, a listener from Listen, in TLS with r's
// certificate.
func NewTLSListener(ln net.Listener, r *CertReloader) net.Listener {
	return tls.NewListener(ln, r.TLSConfig())
}

// tlsSocket is a client's TLS connection as the writer sees it. Its Close
// closes the TCP connection without a close_notify alert: tls.Conn.Close
// would write one, waiting up to 5 s for a client that does not read,
// with the connection's lock held. The WebSocket close frame already says
// the connection ends.
type tlsSocket struct{ *tls.Conn }

func (t tlsSocket) Close() error { return t.NetConn().Close() }

// socketOf returns the connection the writer writes to, and the TCP
// connection under it (nil if none).
func socketOf(nc net.Conn) (net.Conn, *net.TCPConn) {
	if tc, ok := nc.(*tls.Conn); ok {
		tcp, _ := tc.NetConn().(*net.TCPConn)
		return tlsSocket{tc}, tcp
	}
	tcp, _ := nc.(*net.TCPConn)
	return nc, tcp
}
