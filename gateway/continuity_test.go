package gateway

import (
	"encoding/binary"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/feedgate/feedgate/codec"
)

// socketless is a connection whose writer is held busy: what the channel
// queues for it stays in its queue, for the test to read.
func socketless(srv *Server, id uint64, f codec.Format) *conn {
	return &conn{srv: srv, id: id, format: f, attached: map[string]codec.AttachOptions{}, writing: true}
}

// taken decodes and removes the frames queued for c.
func taken(t *testing.T, c *conn) []codec.Frame {
	t.Helper()
	c.mu.Lock()
	q := c.queue
	c.queue, c.queued = nil, 0
	c.mu.Unlock()
	var out []codec.Frame
	for _, b := range q {
		n, hdr := int(b[1]&0x7f), 2
		switch n {
		case 126:
			n, hdr = int(binary.BigEndian.Uint16(b[2:])), 4
		case 127:
			n, hdr = int(binary.BigEndian.Uint64(b[2:])), 10
		}
		if len(b) != hdr+n {
			t.Fatalf("frame of %d bytes, header says %d+%d", len(b), hdr, n)
		}
		fr, err := c.format.Decode(b[hdr:])
		if err != nil {
			t.Fatalf("queued frame does not decode: %v", err)
		}
		out = append(out, fr)
	}
	return out
}

// summary writes frames as "m:o-2" (message o-2), "lost" (continuity
// frame) and "attached:<continuity>", space-separated.
func summary(frs []codec.Frame) string {
	var s []string
	for _, fr := range frs {
		switch fr.Type {
		case codec.FrameMessage:
			s = append(s, "m:"+fr.Msg.ID)
		case codec.FrameContinuity:
			s = append(s, string(fr.Continuity))
		case codec.FrameAttached:
			s = append(s, "attached:"+string(fr.Continuity))
		default:
			s = append(s, fr.Type.String())
		}
	}
	return strings.Join(s, " ")
}

func testHub() (*Server, *hub) {
	now := time.Unix(1_800_000_000, 0)
	h := newHub(100, time.Hour, func() time.Time { return now }, func(*codec.Message, codec.Format, error) {})
	return &Server{cfg: Config{SendQueueBytes: 1 << 30}, hub: h}, h
}

func msg(origin string, seq, prev uint64, t int64) *codec.Message {
	id := fmt.Sprintf("%s-%d", origin, seq)
	return &codec.Message{Channel: "c", ID: id, Data: []byte(`"` + id + `"`), Origin: origin, Seq: seq, Prev: prev, Time: t}
}

func TestGapSignal(t *testing.T) {
	srv, h := testHub()
	ch := h.get("c", true)
	subs := []*conn{socketless(srv, 1, codec.FormatJSON), socketless(srv, 2, codec.FormatMsgpack)}
	for _, c := range subs {
		ch.attach(c, 1, codec.AttachOptions{})
	}
	const t0 = 1_800_000_000_000
	var pos []string // token after each message
	for _, m := range []*codec.Message{
		msg("a", 1, 0, t0), msg("a", 2, 1, t0+1),
		msg("a", 5, 4, t0+2), // a-4 never came: a gap
		msg("a", 7, 5, t0+3), // a-6 was refused: Prev skips it, no gap
		msg("b", 1, 0, t0+4),
	} {
		h.deliver(m)
		pos = append(pos, ch.hist[len(ch.hist)-1].pos)
	}
	for _, c := range subs {
		frs := taken(t, c)
		if got, want := summary(frs), "attached:fresh m:a-1 m:a-2 lost m:a-5 m:a-7 m:b-1"; got != want {
			t.Fatalf("%v subscriber got %q, want %q", c.format, got, want)
		}
		if lost := frs[3]; lost.Channel != "c" || lost.Pos != pos[1] {
			t.Fatalf("%v: continuity frame %+v, want channel c and pos %s (after a-2)", c.format, lost, pos[1])
		}
	}
	if st := srv.ContinuityStats(); st.Gaps != 1 || st.Broken != 0 {
		t.Fatalf("stats %+v, want one gap", st)
	}
	// No resume replays across the gap: from before it, continuity is lost.
	for i, want := range []string{"attached:lost", "attached:lost", "attached:resumed m:a-7 m:b-1", "attached:resumed m:b-1", "attached:resumed"} {
		c := socketless(srv, uint64(10+i), codec.FormatJSON)
		ch.attach(c, 1, codec.AttachOptions{Resume: pos[i]})
		if got := summary(taken(t, c)); got != want {
			t.Errorf("resume after message %d (%s): %q, want %q", i, pos[i], got, want)
		}
	}
	// c's first message here follows messages this edge never had: live
	// subscribers have nothing to compare it with (they attached here), but
	// no resume replays it to a subscriber without c-2.
	h.deliver(msg("c", 3, 2, t0+5))
	for _, c := range subs {
		if got := summary(taken(t, c)); got != "m:c-3" {
			t.Fatalf("%v subscriber got %q, want m:c-3", c.format, got)
		}
	}
	c := socketless(srv, 20, codec.FormatJSON)
	ch.attach(c, 1, codec.AttachOptions{Resume: pos[4]})
	if got := summary(taken(t, c)); got != "attached:lost" {
		t.Fatalf("resume from before c-3: %q, want attached:lost", got)
	}
	if st := srv.ContinuityStats(); st.Gaps != 1 {
		t.Fatalf("stats %+v, still one gap", st)
	}
}

// TestResumeAheadBroken: a subscriber resumed on an edge that lags it gets
// a continuity frame of its own when the edge cannot send what it lacks.
func TestResumeAheadBroken(t *testing.T) {
	srv, h := testHub()
	ch := h.get("c", true)
	const t0 = 1_800_000_200_000 // more than the lateness bound after the hub started
	h.deliver(msg("a", 1, 0, t0))
	// The client had a-1..a-3 and z-1 from an edge ahead of this one.
	tok := codec.Position{Watermark: t0 - 60_000, Seqs: map[string]uint64{"a": 3, "z": 1}}.Token()
	c := socketless(srv, 1, codec.FormatMsgpack)
	ch.attach(c, 1, codec.AttachOptions{Resume: tok})
	other := socketless(srv, 2, codec.FormatJSON)
	ch.attach(other, 1, codec.AttachOptions{})
	h.deliver(msg("a", 2, 1, t0+1))
	h.deliver(msg("a", 3, 2, t0+2))
	h.deliver(msg("a", 4, 3, t0+3))
	h.deliver(msg("b", 2, 1, t0+4)) // b-1 never reached this edge, nor the client
	frs := taken(t, c)
	if got, want := summary(frs), "attached:resumed m:a-4 lost m:b-2"; got != want {
		t.Fatalf("resumed subscriber got %q, want %q", got, want)
	}
	if p, err := codec.ParseToken(frs[1].Pos); err != nil || p.Seqs["a"] != 4 {
		t.Fatalf("a-4 carries %q (%v), want the subscriber's position with a-4", frs[1].Pos, err)
	}
	if got, want := summary(taken(t, other)), "attached:fresh m:a-2 m:a-3 m:a-4 m:b-2"; got != want {
		t.Fatalf("other subscriber got %q, want %q", got, want)
	}
	if st := srv.ContinuityStats(); st.Gaps != 0 || st.Broken != 1 {
		t.Fatalf("stats %+v, want one broken resume", st)
	}
	// An edge that has had nothing of an origin, and started less than the
	// lateness bound before the token's watermark, may have started after
	// messages the token lacks: it cannot vouch for them.
	young := codec.Position{Watermark: 1_800_000_000_000, Seqs: map[string]uint64{"y": 1}}.Token()
	c = socketless(srv, 3, codec.FormatJSON)
	ch.attach(c, 1, codec.AttachOptions{Resume: young})
	if got := summary(taken(t, c)); got != "attached:lost" {
		t.Fatalf("resume naming an origin unknown to a young edge: %q, want attached:lost", got)
	}
}
