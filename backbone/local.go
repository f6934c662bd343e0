package backbone

import (
	"context"
	"log/slog"
	"time"

	"github.com/feedgate/feedgate/codec"
)

// LocalConfig configures the in-process backbone. The zero value is ready.
type LocalConfig struct {
	Dedup  DedupConfig
	Order  OrderConfig
	Logger *slog.Logger
	Now    func() time.Time // clock; nil means time.Now
}

// Local is the in-process backbone of a single edge: a publish is accepted
// at once and delivered in call order per channel; a repeated message ID
// within the dedup window is acknowledged and not delivered again.
type Local struct {
	core
}

// NewLocal returns an in-process backbone.
func NewLocal(cfg LocalConfig) *Local {
	l := &Local{}
	l.init(cfg.Dedup, cfg.Order, cfg.Logger, cfg.Now)
	return l
}

// Start registers deliver; it must be called once, before any Publish.
func (l *Local) Start(_ context.Context, deliver DeliverFunc) error {
	l.setDeliver(deliver)
	return nil
}

// Publish stamps m with its position, delivers it and calls done(nil),
// before returning unless another goroutine is delivering on the channel at
// that moment (that goroutine then delivers and reports it, in order). A
// message ID already delivered within the dedup window is acknowledged
// without being delivered again.
func (l *Local) Publish(m *codec.Message, done DoneFunc) {
	l.PublishBatch([]*codec.Message{m}, func(_ int, err error) { done(err) })
}

// PublishBatch publishes ms, all on one channel, as Publish does each, in
// order; done(i, err) reports ms[i].
func (l *Local) PublishBatch(ms []*codec.Message, done func(i int, err error)) {
	if len(ms) == 0 {
		return
	}
	st := l.stripeFor(ms[0].Channel)
	st.mu.Lock()
	cs := st.chanLocked(ms[0].Channel)
	for i, m := range ms {
		p, action := l.enqueueLocked(st, cs, m, func(err error) { done(i, err) })
		if action == sendIt {
			l.finishLocked(cs, p, nil)
		}
	}
	l.completeLocked(st, cs)
	run := claimLocked(cs)
	st.mu.Unlock()
	if run {
		l.drain(st, cs)
	}
}

// Stats returns the backbone's counters.
func (l *Local) Stats() *Stats { return &l.stats }

// Close does nothing: Local holds no external resources.
func (l *Local) Close(context.Context) error { return nil }
