// Command bandwidth measures bytes on the wire per delivered update, on the
// odds-feed simulator's stream (internal/oddsfeed) at a fixed seed, for each
// wire variant a subscriber can ask for: JSON or msgpack, full messages or
// VCDIFF deltas, with or without permessage-deflate, and conflated to one
// message per second per channel.
//
// It starts an edge in process (embedded backbone) on loopback, attaches
// one subscriber per variant to the same channels (the markets of the
// hottest events: what a fan's screen shows), publishes the stream over
// HTTP at a fixed rate, and counts every byte each subscriber's socket
// reads (WebSocket headers included, the handshake excluded) and every
// message it gets. Deflate is whatever the edge negotiates: a variant whose
// subscriber asked for it but got no extension says so.
//
//	go run ./cmd/bandwidth -updates 30000 -rate 2000 -events 3 > ../docs/bandwidth.md
//
// Its output is the table in docs/bandwidth.md.
package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"os"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fasthttp/websocket"
	"github.com/vmihailenco/msgpack/v5"

	"github.com/feedgate/feedgate/auth"
	"github.com/feedgate/feedgate/backbone"
	"github.com/feedgate/feedgate/codec"
	"github.com/feedgate/feedgate/gateway"
	"github.com/feedgate/feedgate/internal/oddsfeed"
)

const apiKey = "bench:bandwidth-secret-0123"

type variant struct {
	name     string
	format   string // json | msgpack
	delta    bool
	deflate  bool
	conflate string // "" or an interval
}

// counter counts the bytes read from a connection once it is upgraded.
type counter struct {
	net.Conn
	on atomic.Bool
	n  atomic.Int64
}

func (c *counter) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if c.on.Load() {
		c.n.Add(int64(n))
	}
	return n, err
}

type sub struct {
	v        variant
	conn     *websocket.Conn
	wire     *counter
	messages atomic.Int64 // message frames
	deltas   atomic.Int64 // of which deltas
	payload  atomic.Int64 // bytes of data or delta in the message frames, as the format carries them
	others   atomic.Int64 // other frames (attached, heartbeats...)
	deflated bool
	done     chan struct{}
}

func main() {
	updates := flag.Int("updates", 6000, "updates to publish")
	rate := flag.Float64("rate", 600, "updates per second (conflation works on real time)")
	seed := flag.Uint64("seed", 42, "simulator seed")
	hot := flag.Int("events", 10, "subscribe to the markets of this many hottest events")
	flag.Parse()
	log.SetFlags(0)

	feed, err := oddsfeed.New(oddsfeed.Config{Seed: *seed})
	if err != nil {
		log.Fatal(err)
	}
	stream := feed.Take(*updates, time.Unix(1_800_000_000, 0))

	// The channels of the hottest events, as many as one connection may attach.
	subscribed := map[string]bool{}
	var channels []string
	for _, u := range stream {
		if u.Event < *hot && !subscribed[u.Channel] && len(channels) < 500 {
			subscribed[u.Channel] = true
			channels = append(channels, u.Channel)
		}
	}
	sort.Strings(channels)

	addr, stop := startEdge()
	defer stop()

	variants := []variant{
		{name: "JSON full", format: "json"},
		{name: "JSON full + deflate", format: "json", deflate: true},
		{name: "msgpack full", format: "msgpack"},
		{name: "msgpack full + deflate", format: "msgpack", deflate: true},
		{name: "JSON + delta", format: "json", delta: true},
		{name: "JSON + delta + deflate", format: "json", delta: true, deflate: true},
		{name: "msgpack + delta", format: "msgpack", delta: true},
		{name: "msgpack + delta + deflate", format: "msgpack", delta: true, deflate: true},
		{name: "JSON full, conflated 1s", format: "json", conflate: "1s"},
		{name: "msgpack + delta, conflated 1s", format: "msgpack", delta: true, conflate: "1s"},
	}
	var subs []*sub
	for _, v := range variants {
		s, err := subscribe(addr, v, channels)
		if err != nil {
			log.Fatalf("%s: %v", v.name, err)
		}
		subs = append(subs, s)
	}

	// Publish, paced; count what goes to the subscribed channels.
	want := 0
	var payloadBytes int64
	start := time.Now()
	client := &http.Client{Timeout: 30 * time.Second}
	for i, u := range stream {
		if d := time.Until(start.Add(time.Duration(float64(i) / *rate * float64(time.Second)))); d > 0 {
			time.Sleep(d) // pacing a load generator, not waiting for a condition
		}
		if err := publish(client, addr, u); err != nil {
			log.Fatalf("publish %d: %v", i, err)
		}
		if subscribed[u.Channel] {
			want++
			payloadBytes += int64(len(u.Payload))
		}
	}
	// Every unconflated subscriber gets every update: wait for them, then
	// give conflated ones their last interval.
	deadline := time.Now().Add(60 * time.Second)
	for _, s := range subs {
		for s.v.conflate == "" && s.messages.Load() < int64(want) && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
	}
	time.Sleep(1500 * time.Millisecond) // a conflation interval and a half: the conflated subscribers' last messages
	for _, s := range subs {
		s.conn.Close()
		<-s.done
	}

	fmt.Printf("# Bandwidth per delivered update\n\n")
	fmt.Printf("Measured by `bench/cmd/bandwidth` (%s): the odds-feed simulator at seed %d, %d updates published at %.0f/s, "+
		"of which %d on the %d market channels of the %d hottest events, which every subscriber attached. "+
		"Mean payload on those channels %d B of JSON. Bytes are what each subscriber's socket read after the handshake "+
		"(WebSocket headers, every frame: messages, attached replies, heartbeats).\n\n",
		time.Now().UTC().Format("2006-01-02"), *seed, len(stream), *rate, want, len(channels), *hot, payloadBytes/int64(max(want, 1)))
	fmt.Printf("| variant | messages delivered | of which deltas | bytes on the wire | wire bytes per update | vs JSON full | payload bytes per update | vs JSON full |\n|---|---:|---:|---:|---:|---:|---:|---:|\n")
	base := float64(subs[0].wire.n.Load())
	basePayload := float64(subs[0].payload.Load())
	for _, s := range subs {
		name := s.v.name
		if s.v.deflate && !s.deflated {
			name += " (not negotiated)"
		}
		n := s.wire.n.Load()
		p := s.payload.Load()
		fmt.Printf("| %s | %d | %d | %d | %.1f | %.1f%% | %.1f | %.1f%% |\n", name, s.messages.Load(), s.deltas.Load(), n,
			float64(n)/float64(max(want, 1)), 100*float64(n)/base, float64(p)/float64(max(want, 1)), 100*float64(p)/basePayload)
	}
	for _, s := range subs {
		if s.v.conflate == "" && s.messages.Load() != int64(want) {
			fmt.Fprintf(os.Stderr, "bandwidth: %s got %d messages, want %d\n", s.v.name, s.messages.Load(), want)
			os.Exit(1)
		}
	}
}

func startEdge() (string, func()) {
	authz, err := auth.NewStatic([]string{apiKey})
	if err != nil {
		log.Fatal(err)
	}
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	bb := backbone.NewLocal(backbone.LocalConfig{Logger: quiet})
	srv, err := gateway.New(gateway.Config{Authorizer: authz, Logger: quiet, Deflate: true}, bb)
	if err != nil {
		log.Fatal(err)
	}
	ln, err := gateway.Listen(context.Background(), "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(context.Background(), ln) }()
	return ln.Addr().String(), func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
		<-errc
		_ = bb.Close(ctx)
	}
}

func publish(c *http.Client, addr string, u oddsfeed.Update) error {
	body, _ := json.Marshal(map[string]any{"name": u.Kind.String(), "data": json.RawMessage(u.Payload)})
	req, _ := http.NewRequest(http.MethodPost, "http://"+addr+"/v1/channels/"+u.Channel+"/messages", bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+apiKey)
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		return fmt.Errorf("%s: %s", resp.Status, b)
	}
	_, err = io.Copy(io.Discard, resp.Body)
	return err
}

func subscribe(addr string, v variant, channels []string) (*sub, error) {
	s := &sub{v: v, done: make(chan struct{})}
	d := websocket.Dialer{
		EnableCompression: v.deflate,
		NetDialContext: func(ctx context.Context, network, a string) (net.Conn, error) {
			c, err := (&net.Dialer{}).DialContext(ctx, network, a)
			if err != nil {
				return nil, err
			}
			s.wire = &counter{Conn: c}
			return s.wire, nil
		},
	}
	conn, resp, err := d.Dial("ws://"+addr+"/v1/ws?format="+v.format, nil)
	if err != nil {
		return nil, err
	}
	s.deflated = strings.Contains(resp.Header.Get("Sec-WebSocket-Extensions"), "permessage-deflate")
	s.conn = conn
	opts := map[string]any{}
	if v.delta {
		opts["delta"] = "vcdiff"
	}
	if v.conflate != "" {
		opts["conflate"] = v.conflate
	}
	for i, ch := range channels {
		fr := map[string]any{"type": "attach", "ref": i + 1, "channel": ch}
		if len(opts) > 0 {
			fr["options"] = opts
		}
		if err := write(conn, v.format, fr); err != nil {
			return nil, err
		}
	}
	// Wait for every attached reply before counting.
	for got := 0; got < len(channels); {
		fr, err := read(conn, v.format)
		if err != nil {
			return nil, err
		}
		switch fr["type"] {
		case "attached":
			got++
		case "error":
			return nil, fmt.Errorf("attach refused: %v", fr)
		}
	}
	s.wire.on.Store(true)
	var once sync.Once
	f := codec.FormatJSON
	if v.format == "msgpack" {
		f = codec.FormatMsgpack
	}
	go func() {
		defer once.Do(func() { close(s.done) })
		for {
			_, b, err := conn.ReadMessage()
			if err != nil {
				return
			}
			fr, err := f.Decode(b)
			if err != nil {
				log.Fatalf("%s: frame %q: %v", v.name, b, err)
			}
			if fr.Type != codec.FrameMessage {
				s.others.Add(1)
				continue
			}
			s.messages.Add(1)
			if fr.Delta != nil {
				s.deltas.Add(1)
				n := len(fr.Delta)
				if f == codec.FormatJSON {
					n = base64.StdEncoding.EncodedLen(n) // JSON carries it as base64
				}
				s.payload.Add(int64(n))
			} else {
				s.payload.Add(int64(len(fr.Wire)))
			}
		}
	}()
	return s, nil
}

func write(c *websocket.Conn, format string, fr map[string]any) error {
	if format == "msgpack" {
		b, err := msgpack.Marshal(fr)
		if err != nil {
			return err
		}
		return c.WriteMessage(websocket.BinaryMessage, b)
	}
	b, _ := json.Marshal(fr)
	return c.WriteMessage(websocket.TextMessage, b)
}

func read(c *websocket.Conn, format string) (map[string]any, error) {
	_, b, err := c.ReadMessage()
	if err != nil {
		return nil, err
	}
	fr := map[string]any{}
	if format == "msgpack" {
		err = msgpack.Unmarshal(b, &fr)
	} else {
		err = json.Unmarshal(b, &fr)
	}
	return fr, err
}
