package main

import (
	"errors"
	"flag"
	"strings"
	"testing"
	"time"
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
