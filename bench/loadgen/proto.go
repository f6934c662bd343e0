package loadgen

import (
	"bytes"
	"fmt"
	"strconv"
	"strings"
)

// Kind is the wire protocol of a target server.
type Kind int

const (
	// Ours is feedgate's edge, wire protocol v1 (GET /v1/ws?format=...).
	Ours Kind = iota
	// Peer is the Centrifuge-based server of cmd/peer (JSON protocol).
	Peer
	// Ceiling is shared/ceiling: any text frame subscribes to its one channel.
	Ceiling
)

func (k Kind) String() string {
	return [...]string{"ours", "peer", "ceiling"}[k]
}

// Target is one server under load.
type Target struct {
	Name   string // label in results, e.g. "ours-json"
	Kind   Kind
	Addr   string // host:port, loopback only
	Format string // Ours only: "json" or "msgpack"
	// Delta asks for delta frames on every channel: ours "vcdiff" (attach
	// option delta), the peer "fossil" (subscribe field delta); "" for none.
	Delta string
	// Conflate, ours only, asks for at most one message per interval per
	// channel (attach option conflate, a Go duration such as "1s").
	Conflate string
}

func (t Target) binary() bool { return t.Kind == Ours && t.Format == "msgpack" }

func (t Target) wsPath() string {
	switch t.Kind {
	case Ours:
		f := t.Format
		if f == "" {
			f = "json"
		}
		return "/v1/ws?format=" + f
	case Peer:
		return "/connection/websocket"
	default:
		return "/ws"
	}
}

// subscribeFrames appends the client frames that subscribe to channels and
// returns how many positive replies complete the subscription. pos, when not
// nil, is the subscriber's position per channel (parallel to channels): a
// known one makes our attach resume from it (options.resume) and the peer's
// subscribe recover from it (recover, epoch, offset).
func (t Target) subscribeFrames(dst []byte, channels []string, pos []resumePos) ([]byte, int) {
	known := func(i int) *resumePos {
		if i < len(pos) && pos[i].ok {
			return &pos[i]
		}
		return nil
	}
	switch t.Kind {
	case Ours:
		for i, ch := range channels {
			var opts []string
			if p := known(i); p != nil {
				opts = append(opts, fmt.Sprintf(`"resume":%q`, p.tok))
			}
			if t.Delta != "" {
				opts = append(opts, fmt.Sprintf(`"delta":%q`, t.Delta))
			}
			if t.Conflate != "" {
				opts = append(opts, fmt.Sprintf(`"conflate":%q`, t.Conflate))
			}
			if len(opts) > 0 {
				dst = t.oursFrame(dst, fmt.Sprintf(`{"type":"attach","ref":%d,"channel":%q,"options":{%s}}`, i+1, ch, strings.Join(opts, ",")))
			} else {
				dst = t.oursFrame(dst, fmt.Sprintf(`{"type":"attach","ref":%d,"channel":%q}`, i+1, ch))
			}
		}
		return dst, len(channels)
	case Peer:
		dst = appendClientFrame(dst, opText, []byte(`{"id":1,"connect":{}}`))
		delta := ""
		if t.Delta != "" {
			delta = fmt.Sprintf(`,"delta":%q`, t.Delta)
		}
		for i, ch := range channels {
			if p := known(i); p != nil {
				dst = appendClientFrame(dst, opText, fmt.Appendf(nil, `{"id":%d,"subscribe":{"channel":%q,"recover":true,"epoch":%q,"offset":%d%s}}`, i+2, ch, p.tok, p.off, delta))
			} else {
				dst = appendClientFrame(dst, opText, fmt.Appendf(nil, `{"id":%d,"subscribe":{"channel":%q%s}}`, i+2, ch, delta))
			}
		}
		return dst, len(channels) + 1
	default:
		return appendClientFrame(dst, opText, []byte("subscribe")), 1
	}
}

// resumePos is a subscriber's position in one channel's stream, kept when
// the reader tracks positions (Reader.EnableResume). Ours: tok is the pos of
// the last message received on the channel, or of the attached reply that
// started the stream. Peer (Centrifuge): tok is the stream epoch of the
// subscribe reply and off the highest publication offset received.
type resumePos struct {
	tok []byte
	off uint64
	ok  bool
}

// Continuity counts the answers to subscriptions: our attached's
// continuity, or for the peer a subscribe reply that recovered (resumed), was
// recovering and did not (lost), or was not recovering (fresh).
type Continuity struct {
	Fresh   int64 `json:"fresh"`
	Resumed int64 `json:"resumed"`
	Lost    int64 `json:"lost"`
}

// Sub returns c minus d.
func (c Continuity) Sub(d Continuity) Continuity {
	return Continuity{c.Fresh - d.Fresh, c.Resumed - d.Resumed, c.Lost - d.Lost}
}

// oursFrame frames one client message written as JSON, converting it to a
// msgpack map for the msgpack format.
func (t Target) oursFrame(dst []byte, jsonMsg string) []byte {
	if !t.binary() {
		return appendClientFrame(dst, opText, []byte(jsonMsg))
	}
	m, err := jsonToMsgpack(nil, []byte(jsonMsg))
	if err != nil {
		panic(err) // the generator's own constant messages
	}
	return appendClientFrame(dst, opBinary, m)
}

// Markers searched in inbound payloads. The publishers put
// {"ts":<unix ns>,"seq":<per-channel sequence>,"ci":<channel index>,...} in
// every message's data; msgpack carries the same keys as fixstr.
var (
	jsonTS, jsonSeq, jsonCI = []byte(`"ts":`), []byte(`"seq":`), []byte(`"ci":`)
	mpTS, mpSeq, mpCI       = []byte("\xa2ts"), []byte("\xa3seq"), []byte("\xa2ci")

	jsonAttached, mpAttached     = []byte(`"attached"`), []byte("\xa8attached")
	jsonHeartbeat, mpHeartbeat   = []byte(`"heartbeat"`), []byte("\xa9heartbeat")
	jsonDisconnect, mpDisconnect = []byte(`"disconnect"`), []byte("\xaadisconnect")
	jsonError, mpError           = []byte(`"error"`), []byte("\xa5error")
	jsonNack, mpNack             = []byte(`"nack"`), []byte("\xa4nack")
	ceilingAck                   = []byte(`"subscribed":true`)
	peerReply                    = []byte(`{"id":`)

	// Positions: our message and attached frames end with "pos" (a string);
	// attached also has "continuity" and "ref". Centrifuge's pub and
	// subscribe result carry "offset" (after the data) and "epoch".
	jsonPos, mpPos                = []byte(`"pos":"`), []byte("\xa3pos")
	jsonCont, mpCont              = []byte(`"continuity":"`), []byte("\xaacontinuity")
	jsonRef, mpRef                = []byte(`"ref":`), []byte("\xa3ref")
	peerOffset, peerEpoch         = []byte(`"offset":`), []byte(`"epoch":"`)
	peerSubscribe, peerPubs       = []byte(`"subscribe":{`), []byte(`"publications":[`)
	peerPubStart                  = []byte(`{"data":`)
	peerRecovered, peerRecovering = []byte(`"recovered":true`), []byte(`"was_recovering":true`)
)

// posToken returns the string value of the last "pos" key in u (our
// message and attached frames end with it), or nil. It does not copy.
func posToken(u []byte, binary bool) []byte {
	if !binary {
		return jsonStrAfterLast(u, jsonPos)
	}
	i := bytes.LastIndex(u, mpPos)
	if i < 0 {
		return nil
	}
	return mpStr(u[i+len(mpPos):])
}

// continuityOf returns our attached frame's continuity ("fresh", "resumed",
// "lost"), or nil.
func continuityOf(u []byte, binary bool) []byte {
	if !binary {
		return jsonStrAfterLast(u, jsonCont)
	}
	i := bytes.LastIndex(u, mpCont)
	if i < 0 {
		return nil
	}
	return mpStr(u[i+len(mpCont):])
}

// jsonStrAfterLast returns the JSON string following the last occurrence of
// key, which ends with the opening quote. The strings read this way (resume
// tokens, continuity, epochs) never hold escapes.
func jsonStrAfterLast(u, key []byte) []byte {
	i := bytes.LastIndex(u, key)
	if i < 0 {
		return nil
	}
	b := u[i+len(key):]
	j := bytes.IndexByte(b, '"')
	if j < 0 {
		return nil
	}
	return b[:j]
}

// mpStr returns the msgpack string at the start of b, or nil.
func mpStr(b []byte) []byte {
	if len(b) == 0 {
		return nil
	}
	n, h := 0, 1
	switch c := b[0]; {
	case c >= 0xa0 && c <= 0xbf:
		n = int(c & 0x1f)
	case c == 0xd9 && len(b) >= 2:
		n, h = int(b[1]), 2
	case c == 0xda && len(b) >= 3:
		n, h = int(b[1])<<8|int(b[2]), 3
	default:
		return nil
	}
	if len(b) < h+n {
		return nil
	}
	return b[h : h+n]
}

// peerOffsetLast returns the last "offset" in u: a Centrifuge push's
// publication offset, which follows the data.
func peerOffsetLast(u []byte) (uint64, bool) {
	i := bytes.LastIndex(u, peerOffset)
	if i < 0 {
		return 0, false
	}
	v, n := digits(u[i+len(peerOffset):])
	return uint64(v), n > 0
}

// peerOffsetMax returns the highest "offset" in u (a Centrifuge push, a
// subscribe reply or one recovered publication of it) and whether there was
// one.
func peerOffsetMax(u []byte) (uint64, bool) {
	var best uint64
	found := false
	for {
		i := bytes.Index(u, peerOffset)
		if i < 0 {
			return best, found
		}
		u = u[i+len(peerOffset):]
		v, n := digits(u)
		if n > 0 {
			best, found = max(best, uint64(v)), true
		}
	}
}

// sample is what the reader extracts from one delivered message.
type sample struct{ ts, seq, ci int64 }

// extract finds the timestamp, sequence and channel index in u; it gives up
// at the first missing key, so control frames cost one scan.
func extract(u []byte, binary bool) (s sample, ok bool) {
	intAfter, ts, seq, ci := jsonIntAfter, jsonTS, jsonSeq, jsonCI
	if binary {
		intAfter, ts, seq, ci = mpIntAfter, mpTS, mpSeq, mpCI
	}
	if !binary {
		if s, ok = extractSeq(u); ok {
			return s, true
		}
	}
	if s.ts, ok = intAfter(u, ts); !ok {
		return s, false
	}
	if s.seq, ok = intAfter(u, seq); !ok {
		return s, false
	}
	s.ci, ok = intAfter(u, ci)
	return s, ok
}

// extractSeq is the fast path for JSON: the three keys adjacent, as the
// publishers write them and as a server that forwards data verbatim keeps
// them.
func extractSeq(u []byte) (s sample, ok bool) {
	i := bytes.Index(u, jsonTS)
	if i < 0 {
		return s, false
	}
	b := u[i+len(jsonTS):]
	var n int
	if s.ts, n = digits(b); n == 0 {
		return s, false
	}
	b = b[n:]
	if !bytes.HasPrefix(b, []byte(`,"seq":`)) {
		return s, false
	}
	if s.seq, n = digits(b[7:]); n == 0 {
		return s, false
	}
	b = b[7+n:]
	if !bytes.HasPrefix(b, []byte(`,"ci":`)) {
		return s, false
	}
	s.ci, n = digits(b[6:])
	return s, n > 0
}

// digits parses a run of decimal digits; a number followed by a fraction or
// exponent is refused (n = 0) so the careful path handles it.
func digits(b []byte) (v int64, n int) {
	for n < len(b) && b[n] >= '0' && b[n] <= '9' {
		v = v*10 + int64(b[n]-'0')
		n++
	}
	if n < len(b) && (b[n] == '.' || b[n] == 'e' || b[n] == 'E') {
		return 0, 0
	}
	return v, n
}

// jsonIntAfter parses the JSON number following key. Plain integers are read
// directly; a number re-encoded with a fraction or exponent (a server that
// went through float64) is read with strconv.
func jsonIntAfter(u, key []byte) (int64, bool) {
	i := bytes.Index(u, key)
	if i < 0 {
		return 0, false
	}
	b := u[i+len(key):]
	for len(b) > 0 && b[0] == ' ' {
		b = b[1:]
	}
	var v int64
	j := 0
	for ; j < len(b) && b[j] >= '0' && b[j] <= '9'; j++ {
		v = v*10 + int64(b[j]-'0')
	}
	if j == 0 {
		return 0, false
	}
	if j < len(b) && (b[j] == '.' || b[j] == 'e' || b[j] == 'E') {
		k := j
		for k < len(b) && bytes.IndexByte([]byte("0123456789.eE+-"), b[k]) >= 0 {
			k++
		}
		f, err := strconv.ParseFloat(string(b[:k]), 64)
		if err != nil {
			return 0, false
		}
		return int64(f), true
	}
	return v, true
}

// mpIntAfter decodes the msgpack integer (or float, or decimal string)
// following key.
func mpIntAfter(u, key []byte) (int64, bool) {
	i := bytes.Index(u, key)
	if i < 0 {
		return 0, false
	}
	return mpInt(u[i+len(key):])
}

func mpInt(b []byte) (int64, bool) {
	if len(b) == 0 {
		return 0, false
	}
	be := func(n int) (uint64, bool) {
		if len(b) < 1+n {
			return 0, false
		}
		var v uint64
		for _, c := range b[1 : 1+n] {
			v = v<<8 | uint64(c)
		}
		return v, true
	}
	c := b[0]
	switch {
	case c <= 0x7f:
		return int64(c), true
	case c >= 0xe0:
		return int64(int8(c)), true
	case c >= 0xa0 && c <= 0xbf: // fixstr holding digits
		n := int(c & 0x1f)
		if len(b) < 1+n {
			return 0, false
		}
		v, err := strconv.ParseInt(string(b[1:1+n]), 10, 64)
		return v, err == nil
	}
	var v uint64
	var ok bool
	switch c {
	case 0xcc, 0xd0:
		v, ok = be(1)
		if c == 0xd0 {
			return int64(int8(v)), ok
		}
	case 0xcd, 0xd1:
		v, ok = be(2)
		if c == 0xd1 {
			return int64(int16(v)), ok
		}
	case 0xce, 0xd2:
		v, ok = be(4)
		if c == 0xd2 {
			return int64(int32(v)), ok
		}
	case 0xcf, 0xd3:
		v, ok = be(8)
	case 0xca:
		v, ok = be(4)
		return int64(float32frombits(uint32(v))), ok
	case 0xcb:
		v, ok = be(8)
		return int64(float64frombits(v)), ok
	default:
		return 0, false
	}
	return int64(v), ok
}
