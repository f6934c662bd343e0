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
	// In the order the writer sends them: control frames, then the rest.
	q := append(c.ctrl, c.queue...)
	c.ctrl, c.queue, c.queued = nil, nil, 0
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

// TestOriginsForgotten: a channel remembers only the origins with messages
// in history or within originKeep of the watermark, and a token older than
// what it forgot resumes as lost, never wrongly.
func TestOriginsForgotten(t *testing.T) {
	srv, h := testHub()
	h.histCount = 5
	ch := h.get("c", true)
	const t0 = 1_800_000_200_000
	var pos []string
	for i := range 300 { // a new origin every 10 s: 50 minutes of origin time
		h.deliver(msg(fmt.Sprintf("o%d", i), 1, 0, t0+int64(i)*10_000))
		pos = append(pos, ch.hist[len(ch.hist)-1].pos)
	}
	if n, most := len(ch.origins), int((lateness+originKeep)/(10*time.Second))+2; n > most {
		t.Fatalf("the channel remembers %d origins, want at most %d", n, most)
	}
	for _, c := range []struct {
		i    int
		want string
	}{{299, "attached:resumed"}, {296, "attached:resumed m:o297-1 m:o298-1 m:o299-1"}, {200, "attached:lost"}, {10, "attached:lost"}} {
		conn := socketless(srv, uint64(c.i), codec.FormatJSON)
		ch.attach(conn, 1, codec.AttachOptions{Resume: pos[c.i]})
		if got := summary(taken(t, conn)); got != c.want {
			t.Errorf("resume after message %d: %q, want %q", c.i, got, c.want)
		}
	}
	// What the channel forgot makes a token from before it lost, where
	// history alone would have resumed it: o0 has gone, and the only origin
	// left, o1, would replay from its first message.
	srv, h = testHub()
	h.histCount = 2
	ch = h.get("c", true)
	later := t0 + (lateness + originKeep).Milliseconds() + 1000
	h.deliver(msg("o0", 1, 0, t0))
	h.deliver(msg("o0", 2, 1, t0+1))
	h.deliver(msg("o1", 1, 0, later))
	h.deliver(msg("o1", 2, 1, later+1))
	if _, known := ch.origins["o0"]; known {
		t.Fatal("o0 is still remembered")
	}
	conn := socketless(srv, 1, codec.FormatJSON)
	ch.attach(conn, 1, codec.AttachOptions{Resume: codec.Position{Watermark: t0 - 1}.Token()})
	if got := summary(taken(t, conn)); got != "attached:lost" {
		t.Fatalf("resume from before a forgotten origin's message: %q, want attached:lost", got)
	}
}

// TestLateMessage: a message that arrives below the watermark is delivered
// and counted, and a resume whose token counts it in by the watermark alone
// answers lost (the edge the token came from may not have had it).
func TestLateMessage(t *testing.T) {
	srv, h := testHub()
	ch := h.get("c", true)
	const t0 = 1_800_000_200_000
	h.deliver(msg("a", 1, 0, t0))
	h.deliver(msg("a", 2, 1, t0+120_000))
	sub := socketless(srv, 1, codec.FormatMsgpack)
	ch.attach(sub, 1, codec.AttachOptions{})
	h.deliver(msg("b", 1, 0, t0+30_000)) // 90 s behind the newest
	if got := summary(taken(t, sub)); got != "attached:fresh m:b-1" {
		t.Fatalf("subscriber got %q", got)
	}
	if st := srv.ContinuityStats(); st.Late != 1 {
		t.Fatalf("stats %+v, want one late message", st)
	}
	for _, c := range []struct {
		tok  codec.Position
		want string
	}{
		{codec.Position{Watermark: t0 + 60_000, Seqs: map[string]uint64{"a": 2}}, "attached:lost"},
		{codec.Position{Watermark: t0 + 60_000, Seqs: map[string]uint64{"a": 2, "b": 1}}, "attached:resumed"},
		{codec.Position{Watermark: t0, Seqs: map[string]uint64{"a": 2}}, "attached:resumed m:b-1"},
	} {
		conn := socketless(srv, 2, codec.FormatJSON)
		ch.attach(conn, 1, codec.AttachOptions{Resume: c.tok.Token()})
		if got := summary(taken(t, conn)); got != c.want {
			t.Errorf("resume from %s: %q, want %q", c.tok.Token(), got, c.want)
		}
	}
}
