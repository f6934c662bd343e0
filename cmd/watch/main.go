// Command watch attaches channels on an edge and prints their messages, one
// JSON line each on stdout; connection changes and continuity losses go to
// stderr:
//
//	go run ./cmd/watch -channels odds:1,odds:2
//
// It stays connected: when the edge drains, goes quiet or drops the
// connection, watch reconnects (to the next of -url's edges, if several)
// and resumes each channel where it left off; a channel whose messages
// could not all be recovered is reported as "continuity lost". It exits on
// SIGINT or SIGTERM, or with status 1 if an edge tells it not to reconnect.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"

	"github.com/feedgate/feedgate/client"
	"github.com/feedgate/feedgate/codec"
)

func main() {
	url := flag.String("url", "ws://127.0.0.1:8080", "edge WebSocket base URL; several, comma-separated, are tried in turn")
	channels := flag.String("channels", "odds:1", "comma-separated channels to attach")
	format := flag.String("format", "json", "wire format: json | msgpack")
	token := flag.String("token", os.Getenv("WATCH_TOKEN"), "capability token (env WATCH_TOKEN); the development edge prints one at start")
	apiKey := flag.String("api-key", os.Getenv("WATCH_API_KEY"), "API key id:secret instead of a token (env WATCH_API_KEY)")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, strings.Split(*url, ","), strings.Split(*channels, ","), *format, client.Credentials{Token: *token, APIKey: *apiKey}, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "watch:", err)
		os.Exit(1)
	}
}

// run watches channels until ctx ends (nil) or the session ends (its
// error).
func run(ctx context.Context, urls, channels []string, format string, creds client.Credentials, stdout, stderr io.Writer) error {
	f, err := codec.ParseFormat(format)
	if err != nil {
		return err
	}
	var mu sync.Mutex // serialises the two outputs: handlers run per channel
	say := func(format string, args ...any) {
		mu.Lock()
		defer mu.Unlock()
		fmt.Fprintf(stderr, format+"\n", args...)
	}
	s := client.NewSession(client.SessionOptions{
		Options: client.Options{Format: f, Token: creds.Token, APIKey: creds.APIKey},
		URLs:    urls,
		Logger:  slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
		OnState: func(e client.StateEvent) { say("%v", e) },
	})
	defer s.Close()
	enc := json.NewEncoder(stdout)
	print := func(m client.Message) {
		mu.Lock()
		defer mu.Unlock()
		_ = enc.Encode(struct {
			Channel string          `json:"channel"`
			ID      string          `json:"id"`
			Name    string          `json:"name,omitempty"`
			Time    int64           `json:"time"`
			Data    json.RawMessage `json:"data"`
			Pos     string          `json:"pos"`
		}{m.Channel, m.ID, m.Name, m.Time, m.Data, m.Pos})
	}
	for _, ch := range channels {
		_, err := s.Subscribe(ctx, ch, client.SubscribeOptions{
			OnMessage: print,
			OnContinuity: func(e client.ContinuityEvent) {
				switch {
				case e.Continuity == codec.ContinuityLost:
					say("%s: continuity lost on %s: messages were missed; continuing from %s", ch, e.Cause, e.Pos)
				case e.Cause == client.CauseAttach:
					say("attached %s", ch)
				case e.Cause == client.CauseReconnect:
					say("%s: %s on %s", ch, e.Continuity, e.Cause)
				}
			},
		})
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("attach %s: %w", ch, err)
		}
	}
	select {
	case <-ctx.Done():
		return nil
	case <-s.Done():
		return s.Err()
	}
}
