package gateway

import (
	"context"
	"time"

	"github.com/feedgate/feedgate/codec"
)

// Backbone relays messages between edges. Implementations: backbone.Relay
// (Cloud Pub/Sub) and backbone.Local (in process).
type Backbone interface {
	// Start registers deliver and begins delivering. deliver is called once
	// per message (the backbone removes duplicates), never concurrently for
	// one channel, in publish order (Seq order) per origin edge; it must
	// not block. A message whose predecessor (Prev) cannot be had is
	// delivered anyway, within the lateness bound (docs/protocol.md §7.5):
	// the edge signals the gap to the channel's subscribers; copies of the
	// predecessor that come later must not be delivered. Start is called
	// once, before Publish.
	Start(ctx context.Context, deliver func(m *codec.Message)) error
	// Publish hands m to the backbone and returns without waiting. done is
	// called exactly once: nil after the backbone accepted m and m was
	// delivered locally, or an error (an *codec.Error with a retryable code).
	// Publishes on one channel are accepted and reported in call order.
	Publish(m *codec.Message, done func(err error))
	// Close stops delivery and releases the backbone's resources.
	Close(ctx context.Context) error
}

// BatchPublisher is an optional ability of a Backbone, used for HTTP
// batches: PublishBatch publishes ms, all on one channel, like Publish each,
// in order and as one step: once one is refused, every later one is refused
// too, so the accepted messages are a prefix of ms. done(i, err) reports
// ms[i], in order. Without it, a batch is published message by message and
// stops at the first refusal it has been told of.
type BatchPublisher interface {
	PublishBatch(ms []*codec.Message, done func(i int, err error))
}

// HealthChecker is an optional ability of a Backbone: Healthy returns nil
// while the backbone can relay, or why it cannot. An edge whose backbone is
// unhealthy answers /readyz with 503, so that load balancers and GeoDNS send
// new clients to edges that can serve them.
type HealthChecker interface {
	Healthy() error
}

// Warmer is an optional ability of a Backbone that replays, at start, what
// was published over a recent window, so that the history of a restarted
// edge holds it and its clients resume (docs/operations.md). Warmed blocks
// until that replay is over or ctx ends, and returns the time from which
// this edge receives every message published (earlier than its start), or
// the zero time when there was no replay. The gateway holds attaches and
// history reads until it returns.
type Warmer interface {
	Warmed(ctx context.Context) time.Time
}

// Authorizer decides who may connect, and what each connection may do.
// It is the one place where connecting, attaching and publishing are
// authorised.
type Authorizer interface {
	// Authorize checks credentials and returns what they allow, or an
	// *codec.Error with CodeUnauthorized.
	Authorize(c codec.Credentials) (codec.Access, error)
}
