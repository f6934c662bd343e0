package gateway_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"log/slog"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/fasthttp/websocket"

	"github.com/feedgate/feedgate/backbone"
	"github.com/feedgate/feedgate/client"
	"github.com/feedgate/feedgate/codec"
	"github.com/feedgate/feedgate/gateway"
	"github.com/feedgate/feedgate/internal/edgetest"
)

// testCert is a self-signed certificate for 127.0.0.1, PEM-encoded.
type testCert struct {
	certPEM, keyPEM []byte
	x509            *x509.Certificate
}

func mustCert(tb testing.TB, serial int64, now time.Time) testCert {
	tb.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(serial),
		Subject:               pkix.Name{CommonName: "edge test"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(time.Hour),
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		tb.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		tb.Fatal(err)
	}
	c, _ := x509.ParseCertificate(der)
	return testCert{
		certPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		keyPEM:  pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}),
		x509:    c,
	}
}

func (c testCert) mustWrite(tb testing.TB, certFile, keyFile string) {
	tb.Helper()
	if err := os.WriteFile(keyFile, c.keyPEM, 0o600); err != nil {
		tb.Fatal(err)
	}
	if err := os.WriteFile(certFile, c.certPEM, 0o600); err != nil {
		tb.Fatal(err)
	}
}

// TestTLSRotation: an edge serving TLS from files picks up a rotated
// certificate for new connections (on its own once the check interval has
// passed, or at once on Reload, as on SIGHUP) while a connection made
// with the old certificate goes on; a broken rotation keeps the
// certificate in use.
func TestTLSRotation(t *testing.T) {
	clk := newFakeClock()
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	c1, c2 := mustCert(t, 1, time.Now()), mustCert(t, 2, time.Now())
	c1.mustWrite(t, certFile, keyFile)
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	rl, err := gateway.NewCertReloader(gateway.CertConfig{CertFile: certFile, KeyFile: keyFile, CheckInterval: 10 * time.Second, Now: clk.Now, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	url := mustStartTLSEdge(t, rl)
	roots := x509.NewCertPool()
	roots.AddCert(c1.x509)
	roots.AddCert(c2.x509)
	dialer := &websocket.Dialer{TLSClientConfig: &tls.Config{RootCAs: roots}, HandshakeTimeout: 10 * time.Second}
	dial := func() (*websocket.Conn, int64) {
		t.Helper()
		ws, _, err := dialer.DialContext(edgetest.Ctx10(t), url+"/v1/ws", nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ws.Close() })
		return ws, ws.NetConn().(*tls.Conn).ConnectionState().PeerCertificates[0].SerialNumber.Int64()
	}

	old, serial := dial()
	if serial != 1 {
		t.Fatalf("first connection: certificate %d", serial)
	}
	if err := old.WriteMessage(websocket.TextMessage, []byte(`{"type":"attach","ref":1,"channel":"c"}`)); err != nil {
		t.Fatal(err)
	}
	if r := readReply(t, old); r["type"] != "attached" {
		t.Fatalf("attach over TLS: %v", r)
	}

	c2.mustWrite(t, certFile, keyFile)
	if _, serial := dial(); serial != 1 {
		t.Fatalf("before the check interval: certificate %d, want still 1", serial)
	}
	clk.Advance(10 * time.Second)
	if _, serial := dial(); serial != 2 {
		t.Fatalf("after the rotation: certificate %d, want 2", serial)
	}

	// The old connection goes on: it receives a message published over a
	// new one, and publishes itself.
	pub := edgetest.MustDial(t, url, client.Options{Dialer: dialer})
	edgetest.MustAttach(t, pub, "c", codec.AttachOptions{})
	if _, err := pub.Publish(edgetest.Ctx10(t), "c", []byte(`{"p":1}`), client.PublishOptions{ID: "x1"}); err != nil {
		t.Fatal(err)
	}
	if r := readReply(t, old); r["type"] != "message" || r["id"] != "x1" {
		t.Fatalf("old connection after the rotation: %v", r)
	}
	if err := old.WriteMessage(websocket.TextMessage, []byte(`{"type":"publish","ref":2,"channel":"c","id":"x2","data":2}`)); err != nil {
		t.Fatal(err)
	}
	for {
		r := readReply(t, old)
		if r["type"] == "ack" && r["id"] == "x2" {
			break
		}
		if r["type"] != "message" {
			t.Fatalf("old connection's publish: %v", r)
		}
	}

	// Reload (SIGHUP) takes effect at once, without waiting for the check.
	c1.mustWrite(t, certFile, keyFile)
	if err := rl.Reload(); err != nil {
		t.Fatal(err)
	}
	if _, serial := dial(); serial != 1 {
		t.Fatalf("after Reload: certificate %d, want 1", serial)
	}
	// A key that does not match the certificate is refused; the
	// certificate in use stays.
	if err := os.WriteFile(keyFile, c2.keyPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := rl.Reload(); err == nil {
		t.Fatal("a mismatched key was accepted")
	}
	clk.Advance(10 * time.Second)
	if _, serial := dial(); serial != 1 {
		t.Fatalf("after a failed reload: certificate %d, want 1", serial)
	}
	if ok, failed := rl.Reloads(); ok != 2 || failed != 2 {
		t.Fatalf("reloads %d, failures %d: want 2 and 2 (Reload, then the handshake's check)", ok, failed)
	}
	// A client that does not trust the certificate is not served.
	if _, _, err := websocket.DefaultDialer.DialContext(edgetest.Ctx10(t), url+"/v1/ws", nil); err == nil {
		t.Fatal("an untrusted certificate was accepted by the default dialer")
	}
}

func TestCertReloaderConfig(t *testing.T) {
	dir := t.TempDir()
	if _, err := gateway.NewCertReloader(gateway.CertConfig{CertFile: filepath.Join(dir, "none.crt"), KeyFile: filepath.Join(dir, "none.key")}); err == nil {
		t.Fatal("missing files accepted")
	}
	if _, err := gateway.NewCertReloader(gateway.CertConfig{CertFile: "x"}); err == nil {
		t.Fatal("missing key file accepted")
	}
}

// mustStartTLSEdge serves an edge over TLS on 127.0.0.1 and returns its
// wss:// URL.
func mustStartTLSEdge(tb testing.TB, rl *gateway.CertReloader) string {
	tb.Helper()
	bb := backbone.NewLocal(backbone.LocalConfig{})
	a, err := gateway.New(gateway.Config{
		Authorizer:  mustStatic(tb),
		Logger:      slog.New(slog.NewTextHandler(io.Discard, nil)),
		DrainPeriod: 50 * time.Millisecond,
	}, bb)
	if err != nil {
		tb.Fatal(err)
	}
	ln, err := gateway.Listen(context.Background(), "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() { errc <- a.Serve(context.Background(), gateway.NewTLSListener(ln, rl)) }()
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := a.Shutdown(ctx); err != nil {
			tb.Errorf("shutdown: %v", err)
		}
		if err := <-errc; err != nil {
			tb.Errorf("serve: %v", err)
		}
		if err := bb.Close(ctx); err != nil {
			tb.Errorf("backbone close: %v", err)
		}
	})
	return "wss://" + ln.Addr().String()
}
