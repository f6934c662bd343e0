package pubsubtest

import (
	"strings"
	"sync/atomic"

	"cloud.google.com/go/pubsub/v2/apiv1/pubsubpb"
	"cloud.google.com/go/pubsub/v2/pstest"
)

// AckDropper is a pstest reactor that, while on, loses the acks and
// ack-deadline extensions sent for subscriptions whose name contains Match:
// the subscriber believes it acked, the server never hears of it, and the
// messages are redelivered once their ack deadline lapses. That is what a
// lost ack or a network blip does to a real subscription.
type AckDropper struct {
	Match   string
	On      atomic.Bool
	Acks    atomic.Int64 // ack IDs lost so far
	Modacks atomic.Int64 // ack-deadline changes lost so far
}

// Options returns the reactor options that install d.
func (d *AckDropper) Options() []pstest.ServerReactorOption {
	return []pstest.ServerReactorOption{
		{FuncName: "Acknowledge", Reactor: d},
		{FuncName: "ModifyAckDeadline", Reactor: d},
	}
}

// React implements pstest.Reactor.
func (d *AckDropper) React(req any) (handled bool, ret any, err error) {
	if !d.On.Load() {
		return false, nil, nil
	}
	switch r := req.(type) {
	case *pubsubpb.AcknowledgeRequest:
		if strings.Contains(r.Subscription, d.Match) {
			d.Acks.Add(int64(len(r.AckIds)))
			return true, nil, nil
		}
	case *pubsubpb.ModifyAckDeadlineRequest:
		if strings.Contains(r.Subscription, d.Match) {
			d.Modacks.Add(int64(len(r.AckIds)))
			return true, nil, nil
		}
	}
	return false, nil, nil
}
