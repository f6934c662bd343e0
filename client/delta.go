package client

import (
	"context"
	"errors"
	"fmt"
	"hash/crc32"
	"sync"
	"time"

	"github.com/feedgate/feedgate/codec"
	"github.com/feedgate/feedgate/codec/vcdiff"
)

// Deltas (docs/protocol.md §6.1). The connection's reader keeps, per
// channel, the wire payload of the last message it took (the base a delta
// frame applies to) and turns every delta frame into a full message
// before anyone sees it: the application only ever gets full payloads. A
// delta frame whose base is not the one held (id or CRC-32), or that does
// not decode, is never shown: it is dropped, and the channel is attached
// again resuming after the last message taken, so that the edge sends the
// rest, starting with a full message. A Session does that with its resync
// (SubscriptionStats.DeltaErrors counts them); a bare Client on its own
// (Client.DeltaErrors).

// ErrDeltaBase is wrapped by the errors of a delta frame that does not
// apply to the base the client holds.
var ErrDeltaBase = errors.New("client: delta frame does not apply to the base held")

// deltaBases is a connection's per-channel delta state, owned by its read
// loop (attachRef, on another goroutine, records the options).
type deltaBases struct {
	mu     sync.Mutex // guards m
	m      map[string]*chanDelta
	errors int // delta frames that did not apply
}

type chanDelta struct {
	id   string // the message whose payload base is
	base []byte // its wire payload (codec.Frame.Wire)
	// For a Client's own resync: the options of its attach, the position
	// after the last message taken, and the ref of the re-attach under way
	// (0: none) until whose answer the channel's messages are dropped.
	opts codec.AttachOptions
	pos  string
	gate uint64
}

func (d *deltaBases) get(channel string) *chanDelta {
	if d.m == nil {
		d.m = map[string]*chanDelta{}
	}
	cd := d.m[channel]
	if cd == nil {
		cd = &chanDelta{}
		d.m[channel] = cd
	}
	return cd
}

// applyDelta makes fr, a message frame in format f, a full message: a
// delta frame is decoded against the base held for its channel. It records
// fr's payload as the channel's next base. Errors wrap ErrDeltaBase or
// vcdiff's errors; the base held is then forgotten.
func applyDelta(cd *chanDelta, f codec.Format, fr *codec.Frame) error {
	if fr.Delta == nil {
		cd.id, cd.base = fr.Msg.ID, fr.Wire
		return nil
	}
	base, held := cd.base, cd.id
	cd.id, cd.base = "", nil
	if base == nil || held != fr.Base || crc32.ChecksumIEEE(base) != fr.BaseCRC {
		return fmt.Errorf("%w: message %q names base %q (crc %08x), the client holds %q", ErrDeltaBase, codec.Clip(fr.Msg.ID), codec.Clip(fr.Base), fr.BaseCRC, codec.Clip(held))
	}
	wire, err := vcdiff.Decode(base, fr.Delta, codec.MaxDeltaPayload)
	if err != nil {
		return fmt.Errorf("client: delta of message %q: %w", codec.Clip(fr.Msg.ID), err)
	}
	data, err := f.DataFromWire(wire)
	if err != nil {
		return fmt.Errorf("client: delta of message %q: %w", codec.Clip(fr.Msg.ID), err)
	}
	fr.Msg.Data, fr.Wire, fr.Delta = data, wire, nil
	cd.id, cd.base = fr.Msg.ID, wire
	return nil
}

// frame runs on the read loop for every frame: it applies delta frames
// and keeps the bases, and for a Client that resyncs itself, drops a
// channel's messages while its re-attach is under way. It reports false
// for a frame to drop, and the channel whose delta failed, if one did.
func (d *deltaBases) frame(f codec.Format, fr *codec.Frame) (keep bool, failed error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	switch fr.Type {
	case codec.FrameMessage:
		cd := d.get(fr.Channel)
		if cd.gate != 0 {
			return false, nil
		}
		if err := applyDelta(cd, f, fr); err != nil {
			d.errors++
			return false, err
		}
		cd.pos = fr.Pos
	case codec.FrameAttached, codec.FrameDetached, codec.FrameContinuity:
		// A new attachment, or a loss: the next message is sent in full.
		if cd := d.m[fr.Channel]; cd != nil {
			cd.id, cd.base = "", nil
			if fr.Type == codec.FrameAttached && fr.Ref == cd.gate {
				cd.gate = 0
			}
			if fr.Continuity == codec.ContinuityLost || fr.Type == codec.FrameAttached && fr.Continuity != codec.ContinuityResumed {
				cd.pos = fr.Pos
			}
			if fr.Type == codec.FrameDetached {
				delete(d.m, fr.Channel)
			}
		}
	case codec.FrameError:
		for _, cd := range d.m {
			if cd.gate != 0 && cd.gate == fr.Ref {
				cd.gate = 0 // the re-attach was refused: deltas fail again, or the stream goes on
			}
		}
	}
	return true, nil
}

// attaching records the options a channel is attached with.
func (d *deltaBases) attaching(channel string, opts codec.AttachOptions) {
	d.mu.Lock()
	d.get(channel).opts = opts
	d.mu.Unlock()
}

// resync, for a Client without a Session: re-attach channel resuming
// after the last message taken, dropping its messages until the answer.
func (c *Client) resyncDelta(channel string) {
	d := &c.deltas
	d.mu.Lock()
	cd := d.get(channel)
	if cd.gate != 0 {
		d.mu.Unlock()
		return
	}
	opts := cd.opts
	if cd.pos != "" {
		opts.Resume, opts.Rewind, opts.RewindFor = cd.pos, 0, 0
	}
	ref := c.nextRef()
	cd.gate = ref
	d.mu.Unlock()
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if _, err := c.attachRef(ctx, channel, opts, ref); err != nil && !errors.Is(err, ErrClosed) {
			d.mu.Lock()
			if cd.gate == ref {
				cd.gate = 0
			}
			d.mu.Unlock()
		}
	}()
}

// DeltaErrors counts the delta frames that did not apply to the base this
// connection held (each was dropped, and its channel re-attached).
func (c *Client) DeltaErrors() int {
	c.deltas.mu.Lock()
	defer c.deltas.mu.Unlock()
	return c.deltas.errors
}
