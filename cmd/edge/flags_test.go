package main

import (
	"errors"
	"flag"
	"strings"
	"testing"
	"time"

	"github.com/feedgate/feedgate/gateway"
)

func envOf(kv map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) {
		v, ok := kv[k]
		return v, ok
	}
}

func TestFlagsDefaults(t *testing.T) {
	o, err := parseFlags(nil, envOf(nil))
	if err != nil {
		t.Fatal(err)
	}
	if o.addr != ":8080" || o.backbone != "auto" || o.prefix != "feedgate" || o.shards != 8 || o.createTopics ||
		o.shutdownTimeout != 30*time.Second || o.heartbeat != 20*time.Second || o.gapWait != 15*time.Second ||
		o.historySize != 1000 || o.sendQueue != 1<<20 || o.maxFrame != 64<<10 || o.logLevel != "info" ||
		o.warmHistory != time.Minute {
		t.Fatalf("defaults: %+v", o)
	}
	o, err = parseFlags(nil, envOf(map[string]string{"EDGE_WARM_HISTORY": "0"}))
	if err != nil || o.warmHistory != 0 {
		t.Fatalf("EDGE_WARM_HISTORY=0: %v, warm history %v, want 0 (off)", err, o.warmHistory)
	}
}

func TestFlagsPrecedence(t *testing.T) {
	env := envOf(map[string]string{"EDGE_ADDR": ":9000", "EDGE_PUBSUB_SHARDS": "4", "EDGE_GAP_WAIT": "3s", "EDGE_HISTORY_SIZE": "50"})
	t.Run("environment over default", func(t *testing.T) {
		o, err := parseFlags(nil, env)
		if err != nil {
			t.Fatal(err)
		}
		if o.addr != ":9000" || o.shards != 4 || o.gapWait != 3*time.Second || o.historySize != 50 {
			t.Fatalf("%+v", o)
		}
	})
	t.Run("flag over environment", func(t *testing.T) {
		o, err := parseFlags([]string{"-addr", ":9100", "-pubsub-shards", "2", "-gap-wait", "1s"}, env)
		if err != nil {
			t.Fatal(err)
		}
		if o.addr != ":9100" || o.shards != 2 || o.gapWait != time.Second || o.historySize != 50 {
			t.Fatalf("%+v", o)
		}
	})
	t.Run("empty variable means unset", func(t *testing.T) {
		o, err := parseFlags(nil, envOf(map[string]string{"EDGE_ADDR": "", "EDGE_BACKBONE": "", "EDGE_PUBSUB_SHARDS": ""}))
		if err != nil {
			t.Fatal(err)
		}
		if o.addr != ":8080" || o.backbone != "auto" || o.shards != 8 {
			t.Fatalf("%+v", o)
		}
	})
	t.Run("emulator turns topic creation on", func(t *testing.T) {
		o, err := parseFlags(nil, envOf(map[string]string{"PUBSUB_EMULATOR_HOST": "127.0.0.1:8085"}))
		if err != nil || !o.createTopics {
			t.Fatalf("createTopics %v, err %v", o.createTopics, err)
		}
		o, err = parseFlags(nil, envOf(map[string]string{"PUBSUB_EMULATOR_HOST": "127.0.0.1:8085", "EDGE_CREATE_TOPICS": "false"}))
		if err != nil || o.createTopics {
			t.Fatalf("createTopics %v, err %v", o.createTopics, err)
		}
	})
}

func TestFlagsBadInput(t *testing.T) {
	for name, env := range map[string]map[string]string{
		"EDGE_PUBSUB_SHARDS": {"EDGE_PUBSUB_SHARDS": "abc"},
		"EDGE_HEARTBEAT":     {"EDGE_HEARTBEAT": "5"},
		"EDGE_CREATE_TOPICS": {"EDGE_CREATE_TOPICS": "maybe"},
		"EDGE_GAP_WAIT":      {"EDGE_GAP_WAIT": "soon"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := parseFlags(nil, envOf(env))
			if err == nil || !strings.Contains(err.Error(), name) {
				t.Fatalf("err %v, want one naming %s", err, name)
			}
		})
	}
	t.Run("unknown flag", func(t *testing.T) {
		if _, err := parseFlags([]string{"-no-such-flag"}, envOf(nil)); err == nil {
			t.Fatal("accepted")
		}
	})
	t.Run("stray argument", func(t *testing.T) {
		if _, err := parseFlags([]string{"edge"}, envOf(nil)); err == nil {
			t.Fatal("accepted")
		}
	})
	t.Run("help", func(t *testing.T) {
		if _, err := parseFlags([]string{"-h"}, envOf(nil)); !errors.Is(err, flag.ErrHelp) {
			t.Fatalf("err %v, want flag.ErrHelp", err)
		}
	})
}

func TestFlagsLimits(t *testing.T) {
	t.Run("defaults", func(t *testing.T) {
		o, err := parseFlags(nil, envOf(nil))
		if err != nil {
			t.Fatal(err)
		}
		if o.limits != (gateway.Limits{}) || o.allowedOrigins != nil || o.tlsCert != "" || o.tlsKey != "" {
			t.Fatalf("limits %+v origins %q tls %q %q: want the gateway's defaults", o.limits, o.allowedOrigins, o.tlsCert, o.tlsKey)
		}
	})
	t.Run("flags", func(t *testing.T) {
		o, err := parseFlags([]string{"-publish-limit", "500:1000", "-publish-limit-conn", "off", "-attach-limit", "50",
			"-attach-limit-conn", "2.5:10", "-max-conns-per-key", "3", "-max-conns", "100",
			"-allowed-origins", "https://a.example.com, https://*.b.example.com,", "-tls-cert", "c.pem", "-tls-key", "k.pem"}, envOf(nil))
		if err != nil {
			t.Fatal(err)
		}
		want := gateway.Limits{
			PublishPerKey: gateway.Rate{PerSecond: 500, Burst: 1000}, PublishPerConn: gateway.Rate{PerSecond: -1},
			AttachPerKey: gateway.Rate{PerSecond: 50}, AttachPerConn: gateway.Rate{PerSecond: 2.5, Burst: 10},
			ConnsPerKey: 3, MaxConnections: 100,
		}
		if o.limits != want {
			t.Fatalf("limits %+v, want %+v", o.limits, want)
		}
		if strings.Join(o.allowedOrigins, " ") != "https://a.example.com https://*.b.example.com" || o.tlsCert != "c.pem" || o.tlsKey != "k.pem" {
			t.Fatalf("origins %q, tls %q %q", o.allowedOrigins, o.tlsCert, o.tlsKey)
		}
	})
	t.Run("environment", func(t *testing.T) {
		o, err := parseFlags(nil, envOf(map[string]string{"EDGE_PUBLISH_LIMIT": "7:70", "EDGE_MAX_CONNS_PER_KEY": "-1", "EDGE_ALLOWED_ORIGINS": "https://x.example.com"}))
		if err != nil {
			t.Fatal(err)
		}
		if o.limits.PublishPerKey != (gateway.Rate{PerSecond: 7, Burst: 70}) || o.limits.ConnsPerKey != -1 || len(o.allowedOrigins) != 1 {
			t.Fatalf("%+v %q", o.limits, o.allowedOrigins)
		}
	})
	for name, tc := range map[string]struct {
		args []string
		env  map[string]string
	}{
		"-publish-limit":      {env: map[string]string{"EDGE_PUBLISH_LIMIT": "fast"}},
		"-publish-limit-conn": {args: []string{"-publish-limit-conn", "10:0"}},
		"-attach-limit":       {args: []string{"-attach-limit", "-5"}},
		"-attach-limit-conn":  {args: []string{"-attach-limit-conn", "1:2:3"}},
		"EDGE_MAX_CONNS":      {env: map[string]string{"EDGE_MAX_CONNS": "many"}},
		"-tls-key":            {args: []string{"-tls-cert", "c.pem"}},
	} {
		t.Run("bad "+name, func(t *testing.T) {
			_, err := parseFlags(tc.args, envOf(tc.env))
			if err == nil || !strings.Contains(err.Error(), name) {
				t.Fatalf("err %v, want one naming %s", err, name)
			}
		})
	}
}
