package gateway

import (
	"sync"
	"time"

	"github.com/feedgate/feedgate/codec"
)

// handle decodes and executes one client frame. Runs on the reader goroutine.
func (c *conn) handle(b []byte) {
	fr, err := c.format.Decode(b)
	if err != nil {
		c.refuse(fr.Type, fr.Ref, fr.Channel, codec.AsError(err))
		return
	}
	switch fr.Type {
	case codec.FrameAttach:
		c.attach(&fr)
	case codec.FrameDetach:
		c.detach(&fr)
	case codec.FramePublish:
		c.publish(&fr)
	case codec.FrameAuth:
		c.renew(&fr)
	case codec.FrameHeartbeat:
		// lastRead was updated by the reader; nothing else to do.
	default:
		c.refuse(fr.Type, fr.Ref, fr.Channel, codec.Errorf(codec.CodeUnknownType, "frame type %q is not sent by clients", fr.Type.String()))
	}
}

// refuse answers a refused request: a nack for a publish, an error frame for
// anything else. Client mistakes count against the connection's error
// budget; a client over it is disconnected.
func (c *conn) refuse(t codec.FrameType, ref uint64, channel string, e *codec.Error) {
	reply := codec.FrameError
	if t == codec.FramePublish {
		reply = codec.FrameNack
	}
	c.send(&codec.Frame{Type: reply, Ref: ref, Channel: channel, Err: e})
	if e.Code.Retryable() {
		return
	}
	c.srv.stats.badFrames.Add(1)
	c.countError(c.srv.cfg.Now())
}

// countError counts one refusal against the connection's error budget; a
// client over it is disconnected.
func (c *conn) countError(now time.Time) {
	if time.Duration(now.UnixNano()-c.errWindow) > c.srv.cfg.ErrorWindow {
		c.errWindow, c.errCount = now.UnixNano(), 0
	}
	c.errCount++
	if c.errCount > c.srv.cfg.MaxErrors {
		c.disconnect(EndTooManyErrors, codec.Errorf(codec.CodeTooManyErrors, "more than %d bad frames within %v", c.srv.cfg.MaxErrors, c.srv.cfg.ErrorWindow), false)
	}
}

func (c *conn) attach(fr *codec.Frame) {
	if err := codec.ValidateChannel(fr.Channel); err != nil {
		c.refuse(fr.Type, fr.Ref, "", codec.AsError(err))
		return
	}
	if err := allowAttach(c.access, fr.Channel, fr.Options); err != nil {
		c.refuse(fr.Type, fr.Ref, fr.Channel, codec.AsError(err))
		return
	}
	if _, ok := c.attached[fr.Channel]; !ok && len(c.attached) >= c.srv.cfg.MaxChannelsPerConn {
		c.refuse(fr.Type, fr.Ref, fr.Channel, codec.Errorf(codec.CodeTooManyChannels, "a connection may attach at most %d channels", c.srv.cfg.MaxChannelsPerConn))
		return
	}
	now := c.srv.cfg.Now()
	if e := c.limitAttach(now); e != nil {
		c.refuse(fr.Type, fr.Ref, fr.Channel, e)
		c.strike(now, false)
		return
	}
	// On a starting edge, an attach waits for the backbone's replay (at
	// most its WarmTimeout), so that a resume finds the history it brings.
	if !c.srv.waitWarm(c.srv.stop) {
		c.refuse(fr.Type, fr.Ref, fr.Channel, codec.Errorf(codec.CodeGoingAway, "the edge is shutting down"))
		return
	}
	if o := fr.Options; o.Rewind > 0 || o.RewindFor > 0 || o.Resume != "" {
		c.waitReplayRoom()
	}
	c.attached[fr.Channel] = fr.Options
	c.order.reset(fr.Channel)
	for !c.srv.hub.get(fr.Channel, true).attach(c, fr.Ref, fr.Options) {
		// Swept between the lookup and the attach: look again.
	}
}

func (c *conn) detach(fr *codec.Frame) {
	if _, ok := c.attached[fr.Channel]; !ok {
		c.refuse(fr.Type, fr.Ref, fr.Channel, codec.Errorf(codec.CodeNotAttached, "channel %q is not attached", codec.Clip(fr.Channel)))
		return
	}
	delete(c.attached, fr.Channel)
	c.order.reset(fr.Channel)
	c.srv.hub.get(fr.Channel, true).detach(c, fr.Ref)
}

func (c *conn) publish(fr *codec.Frame) {
	if _, ok := c.attached[fr.Channel]; !ok {
		if err := codec.ValidateChannel(fr.Channel); err != nil {
			c.refuse(fr.Type, fr.Ref, "", codec.AsError(err))
			return
		}
		c.refuse(fr.Type, fr.Ref, fr.Channel, codec.Errorf(codec.CodeNotAttached, "attach channel %q before publishing on it", fr.Channel))
		return
	}
	if err := c.access.CanPublish(fr.Channel); err != nil {
		c.refuse(fr.Type, fr.Ref, fr.Channel, codec.AsError(err))
		return
	}
	m := fr.Msg
	m.Channel = fr.Channel
	if err := codec.ValidatePublish(&m); err != nil {
		c.refuse(fr.Type, fr.Ref, fr.Channel, codec.AsError(err))
		return
	}
	ref, ch := fr.Ref, fr.Channel
	if first := c.order.admit(ch, m.ID); first != "" {
		c.send(&codec.Frame{Type: codec.FrameNack, Ref: ref, Channel: ch, Msg: codec.Message{ID: m.ID},
			Err: codec.Errorf(codec.CodeBackboneUnavailable, "an earlier publish on this channel was refused (id %q); publish again from it", first)})
		c.strike(c.srv.cfg.Now(), true)
		return
	}
	seq := c.order.number()
	if now := c.srv.cfg.Now(); c.refuseOverRate(now, ref, ch, &m, seq) {
		return
	}
	c.srv.publish(&m, func(id string, err error) {
		if err != nil {
			e := codec.AsError(err)
			if e.Code == codec.CodeBackboneUnavailable || e.Code == codec.CodePublishTimeout {
				c.order.refused(ch, id, seq)
			}
			c.send(&codec.Frame{Type: codec.FrameNack, Ref: ref, Channel: ch, Msg: codec.Message{ID: id}, Err: e})
			return
		}
		c.send(&codec.Frame{Type: codec.FrameAck, Ref: ref, Channel: ch, Msg: codec.Message{ID: id}})
	})
}

// publishOrder keeps one connection's publishes in order across a refusal:
// once a publish on a channel was refused retryably (by the backbone, or
// over a rate), the connection's later publishes on it are refused too,
// until the client publishes the refused message again (same id). A client
// that pipelines publishes has sent more before it reads the nack; without
// this, those could be accepted ahead of the retry of the refused one.
//
// The block is on the refused publish that came first on the connection,
// whatever the order of the refusals: a rate refusal is answered at once,
// while an earlier publish may be refused by the backbone seconds later,
// and the client must retry that earlier one first.
type publishOrder struct {
	mu    sync.Mutex // guards the fields below
	next  uint64     // numbers the connection's publishes, in arrival order
	first map[string]refusedPublish
}

// refusedPublish is the publish a channel's block waits for.
type refusedPublish struct {
	id  string
	seq uint64
}

// number gives the next publish its place in the connection's order.
func (o *publishOrder) number() uint64 {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.next++
	return o.next
}

// admit reports "" if a publish of id on channel may go ahead, or the id of
// the refused publish it would overtake. Publishing that id again lifts the
// block.
func (o *publishOrder) admit(channel, id string) string {
	o.mu.Lock()
	defer o.mu.Unlock()
	first, ok := o.first[channel]
	if !ok {
		return ""
	}
	if id == first.id {
		delete(o.first, channel)
		return ""
	}
	return first.id
}

// refused records a retryable refusal of id, the publish numbered seq, on
// channel, unless a publish that came before it is already refused.
func (o *publishOrder) refused(channel, id string, seq uint64) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if first, ok := o.first[channel]; ok && first.seq < seq {
		return
	}
	if o.first == nil {
		o.first = make(map[string]refusedPublish)
	}
	o.first[channel] = refusedPublish{id: id, seq: seq}
}

// reset forgets channel's refusal (the client detached or attached it again).
func (o *publishOrder) reset(channel string) {
	o.mu.Lock()
	delete(o.first, channel)
	o.mu.Unlock()
}
