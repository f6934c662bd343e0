package backbone

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"regexp"
	"sync"
	"sync/atomic"
	"time"

	"cloud.google.com/go/pubsub/v2"
	"cloud.google.com/go/pubsub/v2/apiv1/pubsubpb"
	"google.golang.org/api/option"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/feedgate/feedgate/codec"
)

// RelayConfig configures the Pub/Sub backbone. Zero values mean the defaults.
type RelayConfig struct {
	// Project is the Google Cloud project holding the topics. Required.
	Project string
	// EmulatorHost, if set, is the host:port of a Pub/Sub emulator (Google's
	// or pstest): plaintext gRPC, no credentials. Otherwise the real service
	// is used with application default credentials.
	EmulatorHost string
	// TopicPrefix names the shard topics "<prefix>-<k>" (default "feedgate").
	TopicPrefix string
	// Shards is the number of shard topics, identical on every edge
	// (default 8). Changing it remaps channels: do it only with all edges stopped.
	Shards int
	// EdgeID names this edge instance; its subscriptions are
	// "<prefix>-<k>-<EdgeID>". Required, unique among live edges: letters,
	// digits and '-', at most 64 bytes.
	EdgeID string
	// CreateTopics makes the edge create missing shard topics at start
	// (convenient with emulators; in production the topics come from deploy/).
	CreateTopics bool
	// SubscriptionTTL is the expiration policy of this edge's subscriptions:
	// they are deleted by Pub/Sub after this long without a subscriber
	// (default 24h, the service's minimum).
	SubscriptionTTL time.Duration
	// AckDeadline of the subscriptions (default 10s, the minimum).
	AckDeadline time.Duration
	// SubscriptionCheck is how often the edge checks that its subscriptions
	// still exist, creating again any that was deleted or expired; the
	// checks also tell whether Pub/Sub is reachable (Healthy). Default 15s.
	SubscriptionCheck time.Duration
	// PublishDelay is the batching delay of the publisher (default 1ms; the
	// library's 10ms is too slow for odds).
	PublishDelay time.Duration
	// PublishTimeout bounds how long a publish may wait for Pub/Sub, retries
	// included, before it is nacked (default 5s).
	PublishTimeout time.Duration
	// MaxPendingPublishes bounds publishes in flight to Pub/Sub; past it a
	// publish is refused at once (default 10000).
	MaxPendingPublishes int

	Dedup  DedupConfig
	Logger *slog.Logger
	Now    func() time.Time
}

var edgeIDRe = regexp.MustCompile(`^[A-Za-z0-9-]{1,64}$`)

func (c *RelayConfig) setDefaults() error {
	if c.Project == "" {
		return errors.New("backbone: RelayConfig.Project is required")
	}
	if !edgeIDRe.MatchString(c.EdgeID) {
		return fmt.Errorf("backbone: EdgeID %q must be 1-64 letters, digits or '-'", c.EdgeID)
	}
	if c.TopicPrefix == "" {
		c.TopicPrefix = "feedgate"
	}
	if c.Shards <= 0 {
		c.Shards = 8
	}
	if c.SubscriptionTTL <= 0 {
		c.SubscriptionTTL = 24 * time.Hour
	}
	if c.AckDeadline <= 0 {
		c.AckDeadline = 10 * time.Second
	}
	if c.SubscriptionCheck <= 0 {
		c.SubscriptionCheck = 15 * time.Second
	}
	if c.PublishDelay <= 0 {
		c.PublishDelay = time.Millisecond
	}
	if c.PublishTimeout <= 0 {
		c.PublishTimeout = 5 * time.Second
	}
	if c.MaxPendingPublishes <= 0 {
		c.MaxPendingPublishes = 10000
	}
	return nil
}

// Relay is the backbone on Google Cloud Pub/Sub (see the package doc).
type Relay struct {
	core
	cfg        RelayConfig
	client     *pubsub.Client
	publishers []*pubsub.Publisher
	subNames   []string
	subTopics  []string // subNames[i] reads subTopics[i]

	restartMu sync.Mutex           // guards restart
	restart   []context.CancelFunc // restart[i] restarts subNames[i]'s Receive

	unhealthy atomic.Pointer[error] // why Pub/Sub is unreachable; nil when it is

	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// NewRelay connects to Pub/Sub, creates the shard topics if configured to,
// and creates this edge's ordered subscriptions (reusing them if they exist).
func NewRelay(ctx context.Context, cfg RelayConfig) (*Relay, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	opts := []option.ClientOption{
		// Reconnect within seconds after an outage, not the gRPC default of
		// up to two minutes.
		option.WithGRPCDialOption(grpc.WithConnectParams(grpc.ConnectParams{
			Backoff:           backoff.Config{BaseDelay: 100 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: 3 * time.Second},
			MinConnectTimeout: 3 * time.Second,
		})),
	}
	if cfg.EmulatorHost != "" {
		opts = append(opts,
			option.WithEndpoint(cfg.EmulatorHost),
			option.WithoutAuthentication(),
			option.WithGRPCDialOption(grpc.WithTransportCredentials(insecure.NewCredentials())),
			option.WithTelemetryDisabled(),
		)
	}
	client, err := pubsub.NewClient(ctx, cfg.Project, opts...)
	if err != nil {
		return nil, fmt.Errorf("backbone: pubsub client: %w", err)
	}
	r := &Relay{cfg: cfg, client: client}
	r.init(cfg.Dedup, cfg.Logger, cfg.Now)
	if err := r.setup(ctx); err != nil {
		client.Close()
		return nil, err
	}
	return r, nil
}

func (r *Relay) topicName(k int) string {
	return fmt.Sprintf("projects/%s/topics/%s-%d", r.cfg.Project, r.cfg.TopicPrefix, k)
}

func (r *Relay) setup(ctx context.Context) error {
	for k := 0; k < r.cfg.Shards; k++ {
		topic := r.topicName(k)
		if r.cfg.CreateTopics {
			_, err := r.client.TopicAdminClient.CreateTopic(ctx, &pubsubpb.Topic{Name: topic})
			if err != nil && status.Code(err) != codes.AlreadyExists {
				return fmt.Errorf("backbone: create topic %s: %w", topic, err)
			}
		}
		sub := fmt.Sprintf("projects/%s/subscriptions/%s-%d-%s", r.cfg.Project, r.cfg.TopicPrefix, k, r.cfg.EdgeID)
		if err := r.createSubscription(ctx, sub, topic); err != nil {
			return err
		}
		r.subNames = append(r.subNames, sub)
		r.subTopics = append(r.subTopics, topic)

		p := r.client.Publisher(topic)
		p.EnableMessageOrdering = true
		p.PublishSettings.DelayThreshold = r.cfg.PublishDelay
		p.PublishSettings.CountThreshold = 100
		p.PublishSettings.Timeout = r.cfg.PublishTimeout
		p.PublishSettings.FlowControlSettings = pubsub.FlowControlSettings{
			MaxOutstandingMessages: r.cfg.MaxPendingPublishes,
			MaxOutstandingBytes:    -1,
			LimitExceededBehavior:  pubsub.FlowControlSignalError,
		}
		r.publishers = append(r.publishers, p)
	}
	return nil
}

// createSubscription creates one of this edge's ordered subscriptions; an
// existing one is reused.
func (r *Relay) createSubscription(ctx context.Context, sub, topic string) error {
	_, err := r.client.SubscriptionAdminClient.CreateSubscription(ctx, &pubsubpb.Subscription{
		Name:                  sub,
		Topic:                 topic,
		EnableMessageOrdering: true,
		AckDeadlineSeconds:    int32(r.cfg.AckDeadline / time.Second),
		ExpirationPolicy:      &pubsubpb.ExpirationPolicy{Ttl: durationpb.New(r.cfg.SubscriptionTTL)},
	})
	if err != nil && status.Code(err) != codes.AlreadyExists {
		return fmt.Errorf("backbone: create subscription %s: %w", sub, err)
	}
	return nil
}

func (r *Relay) shard(channel string) int {
	h := fnv.New32a()
	h.Write([]byte(channel))
	return int(h.Sum32() % uint32(r.cfg.Shards))
}

// Start begins receiving from this edge's subscriptions and registers deliver.
// It must be called once, before any Publish.
func (r *Relay) Start(ctx context.Context, deliver DeliverFunc) error {
	r.setDeliver(deliver)
	ctx, r.cancel = context.WithCancel(context.WithoutCancel(ctx))
	r.restart = make([]context.CancelFunc, len(r.subNames))
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		r.checkSubscriptions(ctx)
	}()
	for i, name := range r.subNames {
		topic := r.subTopics[i]
		sub := r.client.Subscriber(name)
		sub.ReceiveSettings.NumGoroutines = 1
		sub.ReceiveSettings.MaxOutstandingMessages = 10000
		// Callbacks return at once; on stop, give pending acks a moment to
		// flush, not forever (the subscription is deleted next anyway, and a
		// redelivery would be deduplicated).
		sub.ReceiveSettings.ShutdownOptions = &pubsub.ShutdownOptions{
			Timeout:  2 * time.Second,
			Behavior: pubsub.ShutdownBehaviorWaitForProcessing,
		}
		r.wg.Add(1)
		go func() {
			defer r.wg.Done()
			r.receive(ctx, i, sub, topic)
		}()
	}
	return nil
}

// receive runs one subscription's Receive until ctx ends, restarting it
// after non-retryable errors. A subscription that no longer exists (deleted
// by hand, or expired after a long outage) is created again: messages
// published meanwhile are lost to this edge, and its positions tracking
// reports the gap.
func (r *Relay) receive(ctx context.Context, i int, sub *pubsub.Subscriber, topic string) {
	for delay := 100 * time.Millisecond; ; delay = min(2*delay, 5*time.Second) {
		rctx, restart := context.WithCancel(ctx)
		r.restartMu.Lock()
		r.restart[i] = restart
		r.restartMu.Unlock()
		err := sub.Receive(rctx, r.onMessage)
		restart()
		if ctx.Err() != nil {
			return
		}
		if rctx.Err() != nil {
			delay = 100 * time.Millisecond // restarted on purpose
			continue
		}
		if status.Code(err) == codes.NotFound {
			r.log.Error("backbone: subscription gone; creating it again", "subscription", sub.String(), "err", err)
			if cerr := r.createSubscription(ctx, sub.String(), topic); cerr != nil {
				r.log.Error("backbone: recreate subscription", "err", cerr)
			}
		}
		r.log.Warn("backbone: receive stopped; restarting", "subscription", sub.ID(), "err", err, "in", delay)
		select {
		case <-ctx.Done():
			return
		case <-time.After(delay):
		}
	}
}

// checkSubscriptions creates again, every SubscriptionCheck, any of this
// edge's subscriptions that no longer exists, and restarts its Receive
// (some servers keep a stream to a deleted subscription open and silent).
func (r *Relay) checkSubscriptions(ctx context.Context) {
	t := time.NewTicker(r.cfg.SubscriptionCheck)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		var failed error
		for i, name := range r.subNames {
			cctx, cancel := context.WithTimeout(ctx, checkTimeout)
			_, err := r.client.SubscriptionAdminClient.GetSubscription(cctx, &pubsubpb.GetSubscriptionRequest{Subscription: name})
			cancel()
			if err != nil && status.Code(err) != codes.NotFound && ctx.Err() == nil {
				failed = err
			}
			if status.Code(err) != codes.NotFound {
				continue
			}
			r.log.Error("backbone: subscription gone; creating it again (messages published meanwhile are lost to this edge)", "subscription", name)
			if err := r.createSubscription(ctx, name, r.subTopics[i]); err != nil {
				r.log.Error("backbone: recreate subscription", "err", err)
				continue
			}
			r.restartMu.Lock()
			if f := r.restart[i]; f != nil {
				f()
			}
			r.restartMu.Unlock()
		}
		r.setHealth(failed)
	}
}

// checkTimeout bounds one subscription check: a reachable Pub/Sub answers
// in milliseconds.
const checkTimeout = 5 * time.Second

func (r *Relay) setHealth(err error) {
	if err == nil {
		if r.unhealthy.Swap(nil) != nil {
			r.log.Info("backbone: Pub/Sub reachable again")
		}
		return
	}
	if r.unhealthy.Swap(&err) == nil {
		r.log.Error("backbone: Pub/Sub unreachable", "err", err)
	}
}

// Healthy returns nil while Pub/Sub is reachable, or why it is not: the last
// subscription check or publish failed. The edge reports itself unready
// meanwhile, so load balancers and GeoDNS send clients elsewhere.
func (r *Relay) Healthy() error {
	if p := r.unhealthy.Load(); p != nil {
		return *p
	}
	return nil
}

func (r *Relay) onMessage(_ context.Context, pm *pubsub.Message) {
	m, err := codec.DecodeEnvelope(pm.Data, pm.Attributes)
	if err != nil {
		// Not ours or corrupt: redelivering it would not help.
		r.stats.Malformed.Add(1)
		r.log.Warn("backbone: dropping malformed message", "pubsub_id", pm.ID, "err", err)
		pm.Ack()
		return
	}
	st := r.stripeFor(m.Channel)
	st.mu.Lock()
	r.deliverLocked(st, &m)
	st.mu.Unlock()
	pm.Ack()
}

// Publish sends m to its shard topic with OrderingKey = m.Channel. Calls for
// one channel are published and reported in call order. done(nil) is called
// after Pub/Sub accepted m and it was delivered to this edge's subscribers;
// the copy that comes back through the subscription is dropped as a
// duplicate. A message ID already accepted, or in flight, within the dedup
// window is acknowledged without being sent again. After a failure the channel's ordering key is resumed, so later
// publishes go through; publishes already queued behind the failed one fail
// too (the library pauses the key), which keeps order: nothing accepted
// overtakes a failure the publisher has not yet seen.
func (r *Relay) Publish(m *codec.Message, done DoneFunc) {
	pub := r.publishers[r.shard(m.Channel)]
	st := r.stripeFor(m.Channel)
	st.mu.Lock()
	p, action := r.enqueueLocked(st, m, done)
	if action != sendIt {
		st.mu.Unlock()
		if action == ackAtOnce {
			done(nil)
		}
		return
	}
	env := codec.EncodeEnvelope(m)
	res := pub.Publish(context.Background(), &pubsub.Message{
		Data:        env.Data,
		Attributes:  env.Attributes,
		OrderingKey: env.OrderingKey,
	})
	st.mu.Unlock()
	go func() {
		_, err := res.Get(context.Background())
		if err == nil {
			r.setHealth(nil)
		} else {
			var paused pubsub.ErrPublishingPaused
			if !errors.As(err, &paused) && !errors.Is(err, pubsub.ErrFlowControllerMaxOutstandingMessages) {
				r.setHealth(err)
			}
			// Resume the key and lower the next Prev under the stripe lock,
			// before any later publish on this channel is stamped.
			st.mu.Lock()
			r.failedLocked(st, p)
			pub.ResumePublish(m.Channel)
			st.mu.Unlock()
			err = r.publishError(m.Channel, err)
		}
		r.complete(st, p, err)
	}()
}

func (r *Relay) publishError(channel string, err error) error {
	var paused pubsub.ErrPublishingPaused
	switch {
	case errors.Is(err, pubsub.ErrFlowControllerMaxOutstandingMessages):
		return codec.Errorf(codec.CodeBackboneUnavailable, "too many publishes in flight on this edge (%d); slow down and retry", r.cfg.MaxPendingPublishes)
	case errors.As(err, &paused):
		return codec.Errorf(codec.CodeBackboneUnavailable, "an earlier publish on this channel failed; publish again")
	case errors.Is(err, context.DeadlineExceeded), status.Code(err) == codes.DeadlineExceeded:
		r.log.Warn("backbone: publish timed out", "channel", channel, "err", err)
		return codec.Errorf(codec.CodePublishTimeout, "the backbone did not accept the message within %v", r.cfg.PublishTimeout)
	default:
		r.log.Warn("backbone: publish failed", "channel", channel, "err", err)
		return codec.Errorf(codec.CodeBackboneUnavailable, "the backbone refused the message: %s", status.Code(err))
	}
}

// Stats returns the backbone's counters.
func (r *Relay) Stats() *Stats { return &r.stats }

// Close stops receiving, flushes and stops the publishers, deletes this
// edge's subscriptions (a crashed edge's expire by their TTL instead) and
// closes the client.
func (r *Relay) Close(ctx context.Context) error {
	if r.cancel != nil {
		r.cancel()
	}
	r.wg.Wait()
	for _, p := range r.publishers {
		p.Stop()
	}
	var errs []error
	for _, name := range r.subNames {
		err := r.client.SubscriptionAdminClient.DeleteSubscription(ctx, &pubsubpb.DeleteSubscriptionRequest{Subscription: name})
		if err != nil && status.Code(err) != codes.NotFound {
			errs = append(errs, fmt.Errorf("delete %s: %w", name, err))
		}
	}
	errs = append(errs, r.client.Close())
	return errors.Join(errs...)
}
