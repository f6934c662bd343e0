package main

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/feedgate/feedgate/codec"
)

func TestAuthFlags(t *testing.T) {
	o, err := parseFlags(nil, envOf(nil))
	if err != nil {
		t.Fatal(err)
	}
	a := o.auth
	if a.open || a.issuer != "feedgate" || a.audience != "feedgate" || a.maxTTL != 24*time.Hour || a.issueTTL != 15*time.Minute ||
		a.issueMaxTTL != time.Hour || a.leeway != 5*time.Second || a.expiryWarning != 30*time.Second || a.expiryGrace != 5*time.Second ||
		a.jwksMinInterval != 30*time.Second || a.signingKid != "edge" {
		t.Fatalf("defaults: %+v", a)
	}
	o, err = parseFlags([]string{"-token-audience", "odds"}, envOf(map[string]string{"EDGE_OPEN": "true", "EDGE_TOKEN_AUDIENCE": "x", "EDGE_KEYS_FILE": "/k.json", "EDGE_TOKEN_EXPIRY_GRACE": "2s"}))
	if err != nil {
		t.Fatal(err)
	}
	if !o.auth.open || o.auth.audience != "odds" || o.auth.keysFile != "/k.json" || o.auth.expiryGrace != 2*time.Second {
		t.Fatalf("env and flags: %+v", o.auth)
	}
	if _, err := parseFlags(nil, envOf(map[string]string{"EDGE_OPEN": "sure"})); err == nil || !strings.Contains(err.Error(), "EDGE_OPEN") {
		t.Fatalf("bad EDGE_OPEN: %v", err)
	}
}

func mustOptions(t *testing.T, args []string, env map[string]string) options {
	t.Helper()
	o, err := parseFlags(args, envOf(env))
	if err != nil {
		t.Fatal(err)
	}
	return o
}

// TestDevelopmentMode: with nothing configured the edge makes up a key and
// a token secret and prints a working key and subscriber token; nobody
// gets in without them.
func TestDevelopmentMode(t *testing.T) {
	var banner, log bytes.Buffer
	authz, err := newAuthorizer(context.Background(), mustOptions(t, nil, nil), slog.New(slog.NewJSONHandler(&log, nil)), &banner)
	if err != nil {
		t.Fatal(err)
	}
	out := banner.String()
	key := regexp.MustCompile(`dev:[A-Za-z0-9]{18}`).FindString(out)
	tok := regexp.MustCompile(`eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+`).FindString(out)
	if !strings.Contains(out, "DEVELOPMENT MODE") || key == "" || tok == "" {
		t.Fatalf("banner: %s", out)
	}
	x, err := authz.Authorize(codec.Credentials{Token: tok})
	if err != nil {
		t.Fatalf("the printed token: %v", err)
	}
	if x.CanAttach("odds:1") != nil || x.CanHistory("odds:1") != nil || x.CanPublish("odds:1") == nil {
		t.Error("the sample token must subscribe and read history, not publish")
	}
	k, err := authz.Authorize(codec.Credentials{APIKey: key})
	if err != nil || k.CanPublish("odds:1") != nil {
		t.Fatalf("the printed key: %v", err)
	}
	if _, err := authz.Authorize(codec.Credentials{}); err == nil {
		t.Error("development mode let a client in without credentials")
	}
	if strings.Contains(log.String(), key) || strings.Contains(log.String(), tok) {
		t.Error("the structured log holds the development key or token (only the banner may)")
	}
}

func TestOpenMode(t *testing.T) {
	var banner bytes.Buffer
	authz, err := newAuthorizer(context.Background(), mustOptions(t, []string{"-open"}, nil), slog.New(slog.DiscardHandler), &banner)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(banner.String(), "OPEN MODE") {
		t.Errorf("open mode must say so loudly: %q", banner.String())
	}
	x, err := authz.Authorize(codec.Credentials{})
	if err != nil || x.CanPublish("a") != nil || x.CanHistory("a") != nil {
		t.Fatalf("open mode: %v", err)
	}
}

// TestKeysFileReloadOnHUP: SIGHUP re-reads the keys file; a bad file keeps
// the keys in use.
func TestKeysFileReloadOnHUP(t *testing.T) {
	// A SIGHUP this test sends may reach the runtime after the edge's own
	// handler has stopped (signal delivery is asynchronous); with no
	// handler left, its default action would kill the test binary (seen
	// once in ten runs). This channel is never stopped.
	signal.Notify(make(chan os.Signal, 1), syscall.SIGHUP)
	path := filepath.Join(t.TempDir(), "keys.json")
	write := func(s string) {
		if err := os.WriteFile(path, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(`{"keys":[{"id":"a","secret":"a-secret-0123456789"}]}`)
	var banner bytes.Buffer
	authz, err := newAuthorizer(context.Background(), mustOptions(t, []string{"-keys-file", path}, nil), slog.New(slog.DiscardHandler), &banner)
	if err != nil {
		t.Fatal(err)
	}
	if banner.Len() != 0 {
		t.Errorf("configured edge printed a banner: %s", banner.String())
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	reloadOnHUP(ctx, authz, slog.New(slog.DiscardHandler))
	hupUntil := func(what string, cond func() bool) {
		t.Helper()
		for deadline := time.Now().Add(10 * time.Second); !cond(); {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s", what)
			}
			if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
				t.Fatal(err)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	write(`{"keys":[{"id":"b","secret":"b-secret-0123456789"}]}`)
	hupUntil("key b after SIGHUP", func() bool {
		_, err := authz.Authorize(codec.Credentials{APIKey: "b:b-secret-0123456789"})
		return err == nil
	})
	write(`{"keys":[{"id":"c","secret":"short"}]}`)
	if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	// Reload the bad file directly too, to know it was read and refused.
	if err := authz.Reload(); err == nil {
		t.Fatal("a bad keys file was accepted")
	}
	if _, err := authz.Authorize(codec.Credentials{APIKey: "b:b-secret-0123456789"}); err != nil {
		t.Errorf("a bad keys file dropped the keys in use: %v", err)
	}
}
