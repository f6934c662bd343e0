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
	"google.golang.org/grpc/stats"
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
	// CreateTopics makes the edge create missing shard topics, at start and
	// whenever one is found missing (convenient with emulators; in
	// production the topics come from deploy/ and the edge's service
	// account need not be allowed to create them).
	CreateTopics bool
	// SubscriptionTTL is the expiration policy of this edge's subscriptions:
	// they are deleted by Pub/Sub after this long without a subscriber
	// (default 24h, the service's minimum).
	SubscriptionTTL time.Duration
	// AckDeadline of the subscriptions, and the most the client library
	// extends a lease at a time (default 10s, the minimum). It bounds how
	// long messages leased to a stream that broke (a network cut, a killed
	// edge) wait before Pub/Sub redelivers them.
	AckDeadline time.Duration
	// SubscriptionCheck is how often the edge checks the backbone: one of
	// its subscriptions in turn (a missing one makes it check, and create
	// again, all of them and the topics it may create). The checks and
	// every publish outcome tell whether Pub/Sub is reachable (Healthy).
	// Default 5s.
	SubscriptionCheck time.Duration
	// CheckTimeout bounds one check (default 2s: a reachable Pub/Sub
	// answers in milliseconds).
	CheckTimeout time.Duration
	// BeaconInterval is how often the edge announces, on every shard topic,
	// the last accepted Seq of each channel it published on lately (default
	// 5s). Receivers that are owed messages for longer than the ack deadline
	// plus a margin restart their streams to get them redelivered.
	BeaconInterval time.Duration
	// PublishDelay is the batching delay of the publisher (default 1ms; the
	// library's 10ms is too slow for odds).
	PublishDelay time.Duration
	// PublishTimeout bounds how long a publish may wait for Pub/Sub, retries
	// included, before it is nacked (default 5s).
	PublishTimeout time.Duration
	// MaxPendingPublishes bounds publishes in flight to Pub/Sub; past it a
	// publish is refused at once (default 10000).
	MaxPendingPublishes int
	// WarmHistory is how far back a starting edge replays the shard topics
	// (it seeks its subscriptions back), so that its history holds what was
	// published shortly before it started and the clients of a restarted
	// edge resume (see warm.go). It is cut to the topics' message retention
	// (a topic setting: deploy/terraform sets it; with CreateTopics the
	// edge creates topics retaining max(WarmHistory, 10m)). 0 (the default
	// here; cmd/edge defaults to 1m) turns it off. pstest's Seek loses
	// payloads: keep it 0 there.
	WarmHistory time.Duration
	// WarmTimeout bounds the replay, counted from Start (default 30s, which
	// covers the wait of a restart with the same EdgeID): past it the edge
	// serves without counting on the window.
	WarmTimeout time.Duration

	Dedup  DedupConfig
	Order  OrderConfig
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
	if c.AckDeadline < 10*time.Second || c.AckDeadline > 600*time.Second {
		return fmt.Errorf("backbone: AckDeadline %v must be between 10s and 600s", c.AckDeadline)
	}
	if c.SubscriptionCheck <= 0 {
		c.SubscriptionCheck = 5 * time.Second
	}
	if c.CheckTimeout <= 0 {
		c.CheckTimeout = 2 * time.Second
	}
	if c.BeaconInterval <= 0 {
		c.BeaconInterval = 5 * time.Second
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
	if c.WarmHistory < 0 {
		return fmt.Errorf("backbone: WarmHistory %v must not be negative", c.WarmHistory)
	}
	if c.WarmTimeout <= 0 {
		c.WarmTimeout = 30 * time.Second
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

	conns    *connWatch     // connections to Pub/Sub lost and made
	stalled  chan struct{}  // some channel is owed messages past the stall bound
	lastRecv []atomic.Int64 // per subscription: when it last received anything (Unix ns)
	// reused is set when a subscription already existed at start (an edge
	// restarted with the same EdgeID): what the previous process had
	// leased is stuck until its leases expire and a stream is restarted.
	// Until that restart the edge is not healthy.
	reused    atomic.Bool
	resuming  atomic.Bool
	resumed   atomic.Int32         // subscriptions whose first stream opened after the wait
	warm      *warmup              // the start-up replay; set by Start
	restartMu sync.Mutex           // guards restart
	restart   []context.CancelFunc // restart[i] restarts subNames[i]'s Receive

	healthMu  sync.Mutex // guards the fields below; a leaf lock
	pubErr    error      // the last publish failure, until a publish succeeds
	checkErr  error      // the last check's failure, until a check succeeds
	unhealthy bool       // logged as unhealthy

	rechecking atomic.Bool // a check of everything, set off by a NotFound publish, runs

	owedMu sync.Mutex          // guards owed; a leaf lock
	owed   map[string]struct{} // channels owed messages by some origin's beacon

	closed  atomic.Bool // set under every stripe's lock in turn: a Publish after Close refuses
	cancel  context.CancelFunc
	wg      sync.WaitGroup // receivers and the checker
	waiters sync.WaitGroup // publish outcome collectors

	closeOnce sync.Once
	closeErr  error
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
	conns := newConnWatch()
	opts = append(opts, option.WithGRPCDialOption(grpc.WithStatsHandler(conns)))
	client, err := pubsub.NewClient(ctx, cfg.Project, opts...)
	if err != nil {
		return nil, fmt.Errorf("backbone: pubsub client: %w", err)
	}
	r := &Relay{cfg: cfg, client: client, conns: conns, stalled: make(chan struct{}, 1)}
	r.init(cfg.Dedup, cfg.Order, cfg.Logger, cfg.Now)
	r.resume = func(channel string) { r.publishers[r.shard(channel)].ResumePublish(channel) }
	for k := 0; k < cfg.Shards; k++ {
		r.subNames = append(r.subNames, fmt.Sprintf("projects/%s/subscriptions/%s-%d-%s", cfg.Project, cfg.TopicPrefix, k, cfg.EdgeID))
		r.subTopics = append(r.subTopics, r.topicName(k))
		p := client.Publisher(r.topicName(k))
		p.EnableMessageOrdering = true
		p.PublishSettings.DelayThreshold = cfg.PublishDelay
		p.PublishSettings.CountThreshold = 100
		p.PublishSettings.Timeout = cfg.PublishTimeout
		p.PublishSettings.FlowControlSettings = pubsub.FlowControlSettings{
			MaxOutstandingMessages: cfg.MaxPendingPublishes,
			MaxOutstandingBytes:    -1,
			LimitExceededBehavior:  pubsub.FlowControlSignalError,
		}
		r.publishers = append(r.publishers, p)
	}
	for k := range cfg.Shards {
		if err := r.ensureTopic(ctx, k); err != nil {
			r.stopPublishers()
			client.Close()
			return nil, err
		}
	}
	if cfg.WarmHistory > 0 {
		r.renameSubscriptions(ctx)
	}
	for k := range cfg.Shards {
		if err := r.ensureSub(ctx, k); err != nil {
			r.stopPublishers()
			client.Close()
			return nil, err
		}
	}
	return r, nil
}

func (r *Relay) topicName(k int) string {
	return fmt.Sprintf("projects/%s/topics/%s-%d", r.cfg.Project, r.cfg.TopicPrefix, k)
}

// ensure makes shard k usable: its topic (if this edge may create topics)
// and this edge's subscription to it, reusing what exists.
func (r *Relay) ensure(ctx context.Context, k int) error {
	if err := r.ensureTopic(ctx, k); err != nil {
		return err
	}
	return r.ensureSub(ctx, k)
}

// ensureTopic creates shard k's topic if this edge may create topics.
func (r *Relay) ensureTopic(ctx context.Context, k int) error {
	if r.cfg.CreateTopics {
		t := &pubsubpb.Topic{Name: r.subTopics[k]}
		if r.cfg.WarmHistory > 0 {
			// Pub/Sub's minimum topic retention is 10 minutes.
			t.MessageRetentionDuration = durationpb.New(max(r.cfg.WarmHistory, 10*time.Minute))
		}
		_, err := r.client.TopicAdminClient.CreateTopic(ctx, t)
		if err != nil && status.Code(err) != codes.AlreadyExists {
			return fmt.Errorf("backbone: create topic %s: %w", r.subTopics[k], err)
		}
	}
	return nil
}

// ensureSub creates this edge's subscription to shard k, or reuses it.
func (r *Relay) ensureSub(ctx context.Context, k int) error {
	_, err := r.client.SubscriptionAdminClient.CreateSubscription(ctx, &pubsubpb.Subscription{
		Name:                  r.subNames[k],
		Topic:                 r.subTopics[k],
		EnableMessageOrdering: true,
		AckDeadlineSeconds:    int32(r.cfg.AckDeadline / time.Second),
		ExpirationPolicy:      &pubsubpb.ExpirationPolicy{Ttl: durationpb.New(r.cfg.SubscriptionTTL)},
	})
	switch {
	case err == nil:
		return nil
	case status.Code(err) == codes.AlreadyExists:
		r.reused.Store(true)
		return nil
	case status.Code(err) == codes.NotFound && !r.cfg.CreateTopics:
		return fmt.Errorf("backbone: topic %s does not exist and this edge may not create topics (-pubsub-create-topics): create it (deploy/): %w", r.subTopics[k], err)
	default:
		return fmt.Errorf("backbone: create subscription %s: %w", r.subNames[k], err)
	}
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
	// Seek before any stream opens; bounded by ctx (the caller's).
	r.startWarm(ctx)
	ctx, r.cancel = context.WithCancel(context.WithoutCancel(ctx))
	r.restart = make([]context.CancelFunc, len(r.subNames))
	r.lastRecv = make([]atomic.Int64, len(r.subNames))
	for i := range r.lastRecv {
		r.lastRecv[i].Store(time.Now().UnixNano())
	}
	r.wg.Go(func() { r.checkLoop(ctx) })
	if !r.warm.from.IsZero() {
		r.wg.Go(func() { r.replay(ctx, r.warm) })
	}
	r.resuming.Store(r.reused.Load())
	if r.reused.Load() {
		r.log.Warn("backbone: this edge's subscriptions existed (a restart with the same edge ID): receiving starts once the previous process's leases expired; not ready until then", "in", (r.cfg.AckDeadline + kickMargin).String())
	}
	r.wg.Go(func() { r.restartStreams(ctx) })
	r.wg.Go(func() { r.beaconLoop(ctx) })
	for i, name := range r.subNames {
		sub := r.client.Subscriber(name)
		sub.ReceiveSettings.NumGoroutines = 1
		sub.ReceiveSettings.MaxOutstandingMessages = 10000
		// Leases are extended by the ack deadline at a time, never more, so
		// that what a broken stream or a killed edge had leased is
		// redelivered within about one ack deadline. (The library's own
		// choice follows its ack-latency percentiles and can reach minutes.)
		// The callback hands a message off at once, so leases are short.
		sub.ReceiveSettings.MinDurationPerAckExtension = r.cfg.AckDeadline
		sub.ReceiveSettings.MaxDurationPerAckExtension = r.cfg.AckDeadline
		sub.ReceiveSettings.MaxExtension = time.Minute
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
			r.receiveLoop(ctx, i, sub)
		}()
	}
	return nil
}

// receiveLoop runs one subscription's Receive until ctx ends, restarting it
// after errors. A subscription (or topic) that no longer exists (deleted by
// hand, expired after a long outage, or a restarted emulator) is created
// again where this edge may: messages published meanwhile are lost to this
// edge, and the gap is signalled to subscribers of the origins it knows.
func (r *Relay) receiveLoop(ctx context.Context, i int, sub *pubsub.Subscriber) {
	resumeAt := time.Now().Add(r.cfg.AckDeadline + kickMargin)
	// What the replay brings goes first (warm.go); the subscription keeps
	// what is published meanwhile.
	select {
	case <-ctx.Done():
		return
	case <-r.warm.done:
	}
	if r.resuming.Load() {
		// The subscription existed: a previous process with this EdgeID
		// may have died with messages leased to it. A stream opened before
		// those leases expire leaves their ordering keys stuck (see
		// restartStreams), so the first one opens after.
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Until(resumeAt)):
		}
		r.resumed.Add(1)
		if int(r.resumed.Load()) == len(r.subNames) {
			r.resuming.Store(false)
		}
	}
	r.lastRecv[i].Store(time.Now().UnixNano()) // silence counts from here
	for delay := 100 * time.Millisecond; ; delay = min(2*delay, 5*time.Second) {
		rctx, restart := context.WithCancel(ctx)
		r.restartMu.Lock()
		r.restart[i] = restart
		r.restartMu.Unlock()
		err := sub.Receive(rctx, func(ctx context.Context, pm *pubsub.Message) {
			r.lastRecv[i].Store(time.Now().UnixNano())
			r.onMessage(ctx, pm)
		})
		restart()
		if ctx.Err() != nil {
			return
		}
		if rctx.Err() != nil {
			delay = 100 * time.Millisecond // restarted on purpose
			continue
		}
		if status.Code(err) == codes.NotFound {
			r.log.Error("backbone: subscription gone; creating it again (messages published meanwhile are lost to this edge)", "subscription", sub.ID(), "err", err)
			cctx, cancel := context.WithTimeout(ctx, r.cfg.CheckTimeout)
			err = r.ensure(cctx, i)
			cancel()
			if err != nil {
				r.log.Error("backbone: recreate subscription", "err", err)
			}
		}
		r.setCheck(fmt.Errorf("receive from %s: %w", sub.ID(), err))
		r.log.Warn("backbone: receive stopped; restarting", "subscription", sub.ID(), "err", err, "in", delay.String())
		select {
		case <-ctx.Done():
			return
		case <-time.After(delay):
		}
	}
}

// restartStreams restarts every Receive one ack deadline (plus a
// margin) after a connection to Pub/Sub was lost and a new one made. The
// library reopens its stream by itself, but messages that were in flight
// on the broken stream stay leased to it, and an ordering key with such a
// message stays stuck even after the lease expired (seen with Google's
// emulator: not released within minutes; a Pull by hand does not release
// it either), while a Receive started after the lease expired gets them
// redelivered at once. Duplicates are dropped by the dedup cache; what
// arrives ahead of a missing message is held back. It also restarts them
// when beaconLoop reports a stall or a silent subscription, at most once
// per lease period.
func (r *Relay) restartStreams(ctx context.Context) {
	var kick <-chan time.Time
	var last time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case <-r.conns.reconnected:
			r.log.Warn("backbone: connection to Pub/Sub lost and made again; restarting the subscriptions' streams once the broken stream's leases expired", "in", (r.cfg.AckDeadline + kickMargin).String())
			kick = time.After(r.cfg.AckDeadline + kickMargin)
			continue
		case <-r.stalled:
			// At most one restart per lease period: a restart strands what
			// is in flight on the stream it closes until its lease expires.
			if time.Since(last) < r.cfg.AckDeadline+kickMargin {
				continue
			}
			r.log.Warn("backbone: messages announced by their origin have not arrived within the ack deadline; restarting the subscriptions' streams")
		case <-kick:
			kick = nil
		}
		last = time.Now()
		r.stats.StreamRestarts.Add(1)
		r.restartMu.Lock()
		for _, f := range r.restart {
			if f != nil {
				f()
			}
		}
		r.restartMu.Unlock()
	}
}

func isAlreadyExists(err error) bool { return status.Code(err) == codes.AlreadyExists }
func isNotFound(err error) bool      { return status.Code(err) == codes.NotFound }

// kickMargin is added to the ack deadline before the streams restart:
// Pub/Sub's expiry is not to the millisecond.
const kickMargin = 2 * time.Second

// connWatch is a gRPC stats handler that signals, on reconnected, each
// new connection made after one was lost.
type connWatch struct {
	lost        atomic.Bool
	reconnected chan struct{} // capacity 1: signals coalesce
}

// beaconLoop announces, every BeaconInterval, this edge's last accepted
// Seq of each channel it published on within the last three intervals (so
// each is announced a few times after its last publish), and checks which
// channels have been owed messages for longer than the ack deadline plus a
// margin: then the streams are restarted (see restartStreams).
func (r *Relay) beaconLoop(ctx context.Context) {
	t := time.NewTicker(r.cfg.BeaconInterval)
	defer t.Stop()
	// One round at once: its coming back ends a start-up replay sooner.
	r.sendBeacons()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		r.sendBeacons()
		if r.stalledChannels()+r.silentSubscriptions() > 0 {
			select {
			case r.stalled <- struct{}{}:
			default:
			}
		}
	}
}

func (r *Relay) sendBeacons() {
	now := r.now()
	recent := now.Add(-3 * r.cfg.BeaconInterval)
	perShard := make([]map[string]uint64, r.cfg.Shards)
	for i := range r.stripes {
		st := &r.stripes[i]
		st.mu.Lock()
		for name, cs := range st.chans {
			if cs.accepted == 0 || cs.acceptedAt.Before(recent) {
				continue
			}
			k := r.shard(name)
			if perShard[k] == nil {
				perShard[k] = make(map[string]uint64)
			}
			perShard[k][name] = cs.accepted
		}
		st.mu.Unlock()
	}
	for k, seqs := range perShard {
		// Every shard gets a beacon, empty if need be: this edge's own
		// coming back through its subscription proves that receiving works.
		if seqs == nil {
			seqs = map[string]uint64{}
		}
		for first := true; first || len(seqs) > 0; first = false {
			part := seqs
			if len(seqs) > codec.MaxBeaconChannels {
				part = make(map[string]uint64, codec.MaxBeaconChannels)
				for ch, s := range seqs {
					if len(part) == codec.MaxBeaconChannels {
						break
					}
					part[ch] = s
					delete(seqs, ch)
				}
			} else {
				seqs = nil
			}
			env := codec.EncodeBeacon(&codec.Beacon{Origin: r.origin, Seqs: part})
			// Fire and forget: a lost beacon is made up for by the next.
			r.publishers[k].Publish(context.Background(), &pubsub.Message{Data: env.Data, Attributes: env.Attributes})
		}
	}
}

// silentSubscriptions returns how many subscriptions have received nothing,
// not even this edge's own beacons, for longer than the ack deadline plus a
// margin: their stream is stuck (or Pub/Sub unreachable, which the checks
// report).
func (r *Relay) silentSubscriptions() int {
	if r.warming() != nil {
		return 0 // not receiving yet
	}
	n := 0
	for i := range r.lastRecv {
		if time.Since(time.Unix(0, r.lastRecv[i].Load())) > r.silentAfter() {
			n++
		}
	}
	return n
}

// silentAfter is how long a subscription may receive nothing before it
// counts as stuck: four beacon intervals (a restart strands what is in
// flight on the closed stream for a lease, so a stream that is merely slow
// must not be restarted), and past a lease's expiry.
func (r *Relay) silentAfter() time.Duration {
	return max(4*r.cfg.BeaconInterval, r.cfg.AckDeadline+kickMargin)
}

// onBeacon records what an origin announced; channels owed messages are
// checked by stalledChannels.
func (r *Relay) onBeacon(b *codec.Beacon) {
	r.stats.Beacons.Add(1)
	if b.Origin == r.origin {
		return
	}
	now := r.now()
	var owed []string
	for ch, seq := range b.Seqs {
		st := r.stripeFor(ch)
		st.mu.Lock()
		if cs := st.chans[ch]; cs != nil && r.oweLocked(cs, b.Origin, seq, now) {
			owed = append(owed, ch)
		}
		st.mu.Unlock()
	}
	if len(owed) == 0 {
		return
	}
	r.owedMu.Lock()
	if r.owed == nil {
		r.owed = make(map[string]struct{})
	}
	for _, ch := range owed {
		r.owed[ch] = struct{}{}
	}
	r.owedMu.Unlock()
}

// stalledChannels returns how many channels have been owed messages for
// longer than the ack deadline plus a margin (redelivery should have come
// by then), and forgets those no longer owed anything.
func (r *Relay) stalledChannels() int {
	r.owedMu.Lock()
	chans := make([]string, 0, len(r.owed))
	for ch := range r.owed {
		chans = append(chans, ch)
	}
	r.owedMu.Unlock()
	now := r.now()
	stalled := 0
	var settled []string
	for _, ch := range chans {
		st := r.stripeFor(ch)
		st.mu.Lock()
		var since time.Time
		cs := st.chans[ch]
		if cs != nil {
			since = owedSinceLocked(cs)
		}
		giveUp := !since.IsZero() && now.Sub(since) > r.cfg.AckDeadline+kickMargin+r.order.GapWait
		if giveUp {
			// Restarts did not bring them: stop trying. When the origin's
			// next message comes, the gap before it is signalled.
			for o, os := range cs.origins {
				if os.owed > os.last {
					r.log.Warn("backbone: messages announced by their origin never arrived", "channel", ch, "origin", o, "last", os.last, "announced", os.owed)
				}
				os.owed, os.owedSince = 0, time.Time{}
			}
		}
		st.mu.Unlock()
		switch {
		case since.IsZero() || giveUp:
			settled = append(settled, ch)
		case now.Sub(since) > r.cfg.AckDeadline+kickMargin:
			stalled++
		}
	}
	if stalled > 0 {
		r.stats.Stalls.Add(uint64(stalled))
	}
	r.owedMu.Lock()
	for _, ch := range settled {
		delete(r.owed, ch)
	}
	r.owedMu.Unlock()
	return stalled
}

func newConnWatch() *connWatch { return &connWatch{reconnected: make(chan struct{}, 1)} }

func (w *connWatch) TagRPC(ctx context.Context, _ *stats.RPCTagInfo) context.Context   { return ctx }
func (w *connWatch) HandleRPC(context.Context, stats.RPCStats)                         {}
func (w *connWatch) TagConn(ctx context.Context, _ *stats.ConnTagInfo) context.Context { return ctx }

func (w *connWatch) HandleConn(_ context.Context, s stats.ConnStats) {
	switch s.(type) {
	case *stats.ConnEnd:
		w.lost.Store(true)
	case *stats.ConnBegin:
		if w.lost.Swap(false) {
			select {
			case w.reconnected <- struct{}{}:
			default:
			}
		}
	}
}

// checkLoop checks, every SubscriptionCheck, one of this edge's
// subscriptions in turn: an answer tells that Pub/Sub is reachable; a
// subscription found missing makes it check, and create again, all of them
// (a restarted emulator, an expiry after a long outage).
func (r *Relay) checkLoop(ctx context.Context) {
	t := time.NewTicker(r.cfg.SubscriptionCheck)
	defer t.Stop()
	for next := 0; ; next = (next + 1) % len(r.subNames) {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		err := r.checkOne(ctx, next)
		if status.Code(err) == codes.NotFound {
			err = r.checkAll(ctx)
		}
		if ctx.Err() != nil {
			return
		}
		r.setCheck(err)
	}
}

func (r *Relay) checkOne(ctx context.Context, i int) error {
	cctx, cancel := context.WithTimeout(ctx, r.cfg.CheckTimeout)
	defer cancel()
	_, err := r.client.SubscriptionAdminClient.GetSubscription(cctx, &pubsubpb.GetSubscriptionRequest{Subscription: r.subNames[i]})
	if err != nil {
		return fmt.Errorf("check %s: %w", r.subNames[i], err)
	}
	return nil
}

// checkAll checks every subscription at once and creates again those that
// are missing, restarting their Receive (some servers keep a stream to a
// deleted subscription open and silent).
func (r *Relay) checkAll(ctx context.Context) error {
	errs := make([]error, len(r.subNames))
	var wg sync.WaitGroup
	for i := range r.subNames {
		wg.Go(func() {
			err := r.checkOne(ctx, i)
			if status.Code(err) != codes.NotFound {
				errs[i] = err
				return
			}
			r.log.Error("backbone: subscription gone; creating it again (messages published meanwhile are lost to this edge)", "subscription", r.subNames[i])
			cctx, cancel := context.WithTimeout(ctx, r.cfg.CheckTimeout)
			defer cancel()
			if errs[i] = r.ensure(cctx, i); errs[i] != nil {
				return
			}
			r.restartMu.Lock()
			if f := r.restart[i]; f != nil {
				f()
			}
			r.restartMu.Unlock()
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

func (r *Relay) setCheck(err error) {
	r.healthMu.Lock()
	r.checkErr = err
	r.logHealthLocked()
	r.healthMu.Unlock()
}

func (r *Relay) publishHealth(err error) {
	r.healthMu.Lock()
	r.pubErr = err
	r.logHealthLocked()
	r.healthMu.Unlock()
}

func (r *Relay) healthLocked() error {
	var silent error
	if r.lastRecv != nil {
		if n := r.silentSubscriptions(); n > 0 {
			silent = fmt.Errorf("%d of %d subscriptions received nothing, not even this edge's own beacons, for over %v", n, len(r.lastRecv), r.silentAfter())
		}
	}
	var resuming error
	if r.resuming.Load() {
		resuming = errors.New("resuming the subscriptions of a previous process with this edge ID: waiting for its leases to expire")
	}
	return errors.Join(r.checkErr, r.pubErr, silent, resuming, r.warming())
}

func (r *Relay) logHealthLocked() {
	err := r.healthLocked()
	switch {
	case err != nil && !r.unhealthy:
		r.unhealthy = true
		r.log.Error("backbone: Pub/Sub unusable", "err", err)
	case err == nil && r.unhealthy:
		r.unhealthy = false
		r.log.Info("backbone: Pub/Sub usable again")
	}
}

// Healthy returns nil while Pub/Sub is usable, or why it is not: the last
// check of a subscription failed or a Receive stopped with an error (until a
// check succeeds), or the last publish failed at Pub/Sub (until one
// succeeds). The edge reports itself unready meanwhile, so load balancers
// and GeoDNS send clients elsewhere.
func (r *Relay) Healthy() error {
	r.healthMu.Lock()
	defer r.healthMu.Unlock()
	return r.healthLocked()
}

func (r *Relay) onMessage(_ context.Context, pm *pubsub.Message) {
	if codec.IsBeacon(pm.Attributes) {
		if b, err := codec.DecodeBeacon(pm.Data, pm.Attributes); err == nil {
			r.onBeacon(&b)
		} else {
			r.stats.Malformed.Add(1)
		}
		pm.Ack()
		return
	}
	m, err := codec.DecodeEnvelope(pm.Data, pm.Attributes)
	if err != nil {
		// Not ours or corrupt: redelivering it would not help.
		r.stats.Malformed.Add(1)
		r.log.Warn("backbone: dropping malformed message", "pubsub_id", pm.ID, "err", err)
		pm.Ack()
		return
	}
	// Acked once it is in the edge's hands (delivered or held back): an
	// edge that dies loses its subscribers and history anyway.
	r.receive(&m)
	pm.Ack()
}

// Publish sends m to its shard topic with OrderingKey = m.Channel. Calls for
// one channel are published and reported in call order. done(nil) is called
// after Pub/Sub accepted m and it was delivered to this edge's subscribers;
// the copy that comes back through the subscription is dropped as a
// duplicate. A message ID already accepted, or in flight, within the dedup
// window is acknowledged without being sent again.
//
// After a failure, nothing accepted overtakes it: the library pauses the
// channel's ordering key (failing what is queued behind), and until every
// publish sent before the failure was known has its outcome the channel
// refuses new publishes itself; only then is the key resumed. So the
// accepted publishes of a channel are always a prefix of each publisher's
// sequence up to its first refusal.
func (r *Relay) Publish(m *codec.Message, done DoneFunc) {
	r.PublishBatch([]*codec.Message{m}, func(_ int, err error) { done(err) })
}

// PublishBatch publishes ms, all on one channel, as Publish does each, in
// order and at once: no failure streak can end in the middle of the batch,
// so its accepted messages are a prefix of it. done(i, err) reports ms[i].
func (r *Relay) PublishBatch(ms []*codec.Message, done func(i int, err error)) {
	if len(ms) == 0 {
		return
	}
	k := r.shard(ms[0].Channel)
	st := r.stripeFor(ms[0].Channel)
	st.mu.Lock()
	cs := st.chanLocked(ms[0].Channel)
	if r.closed.Load() {
		// Refused in order, behind what is still in flight.
		for i, m := range ms {
			cs.pending = append(cs.pending, &pendingPub{m: m, done: func(err error) { done(i, err) }, finished: true, err: errShuttingDown})
		}
		r.completeLocked(st, cs)
		run := claimLocked(cs)
		st.mu.Unlock()
		if run {
			r.drain(st, cs)
		}
		return
	}
	for i, m := range ms {
		p, action := r.enqueueLocked(st, cs, m, func(err error) { done(i, err) })
		if action == sendIt {
			r.sendLocked(k, st, cs, p)
		}
	}
	r.completeLocked(st, cs)
	run := claimLocked(cs)
	st.mu.Unlock()
	if run {
		r.drain(st, cs)
	}
}

var errShuttingDown = codec.Errorf(codec.CodeBackboneUnavailable, "the edge is shutting down")

// sendLocked hands p to the SDK and makes sure its outcome is collected.
func (r *Relay) sendLocked(k int, st *stripe, cs *chanState, p *pendingPub) {
	env := codec.EncodeEnvelope(p.m)
	res := r.publishers[k].Publish(context.Background(), &pubsub.Message{
		Data:        env.Data,
		Attributes:  env.Attributes,
		OrderingKey: env.OrderingKey,
	})
	p.res = res
	// Flow control and a paused key refuse at once: make the refusal take
	// effect before the next publish on the channel.
	select {
	case <-res.Ready():
		if _, err := res.Get(context.Background()); err != nil {
			r.finishSendLocked(k, cs, p, err)
			return
		}
	default:
	}
	if !cs.waiting {
		cs.waiting = true
		r.waiters.Add(1)
		go r.collect(k, st, cs)
	}
}

// collect waits, in publish order, for the outcomes of cs's publishes in
// flight, and returns when none is left. One runs per channel with
// publishes in flight; Close joins them.
func (r *Relay) collect(k int, st *stripe, cs *chanState) {
	defer r.waiters.Done()
	for {
		st.mu.Lock()
		var p *pendingPub
		for _, q := range cs.pending {
			if !q.finished {
				p = q
				break
			}
		}
		if p == nil {
			cs.waiting = false
			st.mu.Unlock()
			return
		}
		res := p.res.(*pubsub.PublishResult)
		st.mu.Unlock()
		_, err := res.Get(context.Background())
		st.mu.Lock()
		if !p.finished {
			r.finishSendLocked(k, cs, p, err)
		}
		r.completeLocked(st, cs)
		run := claimLocked(cs)
		st.mu.Unlock()
		if run {
			r.drain(st, cs)
		}
	}
}

// finishSendLocked records the outcome of a send.
func (r *Relay) finishSendLocked(k int, cs *chanState, p *pendingPub, err error) {
	if err != nil {
		err = r.publishError(k, cs.name, err)
	} else {
		r.publishHealth(nil)
	}
	r.finishLocked(cs, p, err)
}

// publishError turns a publish failure into what the publisher is told,
// and notes what it says about Pub/Sub's health. A missing topic is
// created again where this edge may.
func (r *Relay) publishError(k int, channel string, err error) error {
	var paused pubsub.ErrPublishingPaused
	switch {
	case errors.Is(err, pubsub.ErrFlowControllerMaxOutstandingMessages):
		return codec.Errorf(codec.CodeBackboneUnavailable, "too many publishes in flight on this edge (%d); slow down and retry", r.cfg.MaxPendingPublishes)
	case errors.As(err, &paused):
		return errEarlierFailed
	case errors.Is(err, pubsub.ErrPublisherStopped):
		return codec.Errorf(codec.CodeBackboneUnavailable, "the edge is shutting down")
	}
	r.publishHealth(err)
	switch {
	case errors.Is(err, context.DeadlineExceeded), status.Code(err) == codes.DeadlineExceeded:
		r.log.Warn("backbone: publish timed out", "channel", channel, "err", err)
		return codec.Errorf(codec.CodePublishTimeout, "the backbone did not accept the message within %v", r.cfg.PublishTimeout)
	case status.Code(err) == codes.NotFound:
		r.log.Error("backbone: topic missing", "topic", r.subTopics[k], "err", err)
		if r.cfg.CreateTopics && !r.closed.Load() && r.rechecking.CompareAndSwap(false, true) {
			// Under a stripe lock: Close has not passed it, so it waits.
			r.wg.Go(func() {
				ctx, cancel := context.WithTimeout(context.Background(), 2*r.cfg.CheckTimeout)
				defer cancel()
				r.setCheck(r.checkAll(ctx))
				r.rechecking.Store(false)
			})
		}
		return codec.Errorf(codec.CodeBackboneUnavailable, "the backbone refused the message: %s", status.Code(err))
	default:
		r.log.Warn("backbone: publish failed", "channel", channel, "err", err)
		return codec.Errorf(codec.CodeBackboneUnavailable, "the backbone refused the message: %s", status.Code(err))
	}
}

// Stats returns the backbone's counters.
func (r *Relay) Stats() *Stats { return &r.stats }

func (r *Relay) stopPublishers() {
	for _, p := range r.publishers {
		p.Stop()
	}
}

// Close stops receiving, refuses new publishes, flushes and stops the
// publishers (reporting every publish in flight), deletes this edge's
// subscriptions (a crashed edge's expire by their TTL instead) and closes
// the client. It returns once no goroutine of the relay is left.
func (r *Relay) Close(ctx context.Context) error {
	r.closeOnce.Do(func() { r.closeErr = r.close(ctx) })
	return r.closeErr
}

func (r *Relay) close(ctx context.Context) error {
	for i := range r.stripes {
		r.stripes[i].mu.Lock()
		r.closed.Store(true)
		r.stripes[i].mu.Unlock()
	}
	if r.cancel != nil {
		r.cancel()
	}
	r.wg.Wait()
	r.stopTimers()
	r.stopPublishers()
	r.waiters.Wait()
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
