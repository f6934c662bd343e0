// Command watch attaches channels on an edge and prints their messages, one
// JSON line each:
//
//	go run ./cmd/watch -channels odds:1,odds:2
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/feedgate/feedgate/client"
	"github.com/feedgate/feedgate/codec"
)

func main() {
	url := flag.String("url", "ws://127.0.0.1:8080", "edge WebSocket base URL")
	channels := flag.String("channels", "odds:1", "comma-separated channels to attach")
	format := flag.String("format", "json", "wire format: json | msgpack")
	flag.Parse()
	if err := run(*url, strings.Split(*channels, ","), *format); err != nil {
		fmt.Fprintln(os.Stderr, "watch:", err)
		os.Exit(1)
	}
}

func run(url string, channels []string, format string) error {
	f, err := codec.ParseFormat(format)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	c, err := client.Dial(ctx, url, client.Options{Format: f})
	if err != nil {
		return err
	}
	defer c.Close()
	for _, ch := range channels {
		if err := c.Attach(ctx, ch, codec.AttachOptions{}); err != nil {
			return fmt.Errorf("attach %s: %w", ch, err)
		}
		fmt.Fprintf(os.Stderr, "attached %s\n", ch)
	}
	enc := json.NewEncoder(os.Stdout)
	for {
		select {
		case <-ctx.Done():
			return nil
		case m, ok := <-c.Messages():
			if !ok {
				if d := c.Disconnect(); d != nil {
					return fmt.Errorf("disconnected: %v", d)
				}
				return fmt.Errorf("connection closed")
			}
			_ = enc.Encode(struct {
				Channel string          `json:"channel"`
				ID      string          `json:"id"`
				Name    string          `json:"name,omitempty"`
				Time    int64           `json:"time"`
				Data    json.RawMessage `json:"data"`
				Pos     string          `json:"pos"`
			}{m.Channel, m.ID, m.Name, m.Time, m.Data, m.Pos})
		}
	}
}
