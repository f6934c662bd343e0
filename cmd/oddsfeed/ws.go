package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"time"

	"github.com/feedgate/feedgate/client"
	"github.com/feedgate/feedgate/codec"
	"github.com/feedgate/feedgate/internal/oddsfeed"
)

// wsPublisher publishes over one client.Session: each channel is attached
// publish_only before its first update and detached after its market is
// settled (its channel is done); every update waits for its ack before
// the worker's next one, so a channel's updates are accepted in order.
// The Session publishes again, with the same id, after a retryable nack or
// a lost connection.
type wsPublisher struct {
	s        *client.Session
	t        *tally
	timeout  time.Duration
	attached map[string]bool
}

func newWSPublisher(o options, t *tally, fatal chan<- error) (publisher, error) {
	u, err := wsURL(o.edge)
	if err != nil {
		return nil, err
	}
	s := client.NewSession(client.SessionOptions{
		Options: client.Options{APIKey: o.key},
		URLs:    []string{u},
		Logger:  slog.New(slog.NewTextHandler(io.Discard, nil)),
		OnState: func(e client.StateEvent) {
			// An edge that says not to come back: no update will get
			// through; end the run.
			if e.State == client.StateDisconnected && !e.Reconnect {
				select {
				case fatal <- fmt.Errorf("%v", e):
				default:
				}
			}
		},
	})
	return &wsPublisher{s: s, t: t, timeout: o.timeout, attached: map[string]bool{}}, nil
}

// wsURL turns the -edge URL into the WebSocket base URL.
func wsURL(edge string) (string, error) {
	b, err := httpBase(edge)
	if err != nil {
		return "", err
	}
	u, _ := url.Parse(b)
	u.Scheme = map[string]string{"http": "ws", "https": "wss"}[u.Scheme]
	return u.String(), nil
}

func (p *wsPublisher) close() { p.s.Close() }

func (p *wsPublisher) run(giveUp context.Context, q <-chan job) {
	for j := range q {
		p.publish(giveUp, j)
	}
}

func (p *wsPublisher) publish(giveUp context.Context, j job) {
	ctx, cancel := context.WithTimeout(giveUp, p.timeout)
	defer cancel()
	ch := j.u.Channel
	if !p.attached[ch] {
		if _, err := p.s.Attach(ctx, ch, codec.AttachOptions{PublishOnly: true}); err != nil {
			p.fail(err)
			return
		}
		p.attached[ch] = true
	}
	if _, err := p.s.Publish(ctx, ch, j.u.Payload, client.PublishOptions{ID: j.id, Name: j.u.Kind.String()}); err != nil {
		p.fail(err)
		return
	}
	p.t.ack(1, len(j.u.Payload))
	if j.u.Kind == oddsfeed.KindSettle {
		if err := p.s.Detach(ctx, ch); err == nil {
			delete(p.attached, ch)
		}
	}
}

// fail counts an update that was not acknowledged: refused with a code,
// or unconfirmed when time ran out.
func (p *wsPublisher) fail(err error) {
	var e *codec.Error
	switch {
	case errors.As(err, &e):
		p.t.refuse(e.Code.String(), 1)
	default:
		p.t.unconfirmed(1)
	}
}
