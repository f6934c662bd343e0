package loadgen

import (
	"bytes"
	"encoding/json"
	"fmt"
	"hash/crc32"
	"strconv"

	"github.com/centrifugal/fdelta"
	"github.com/feedgate/feedgate/codec"
	"github.com/feedgate/feedgate/codec/vcdiff"
)

// Delta frames carry no payload the reader could search for its stamp, so a
// reader of delta subscribers (Reader.EnableDelta) rebuilds each message
// once, the first time any of its subscribers receives it, and checks it
// three ways: the base the frame names is the message the subscriber holds
// (per subscriber), the delta decodes against that base (our base_crc
// matches too), and the rebuilt payload equals, byte for byte, what the
// publisher sent (in the format's wire bytes). Every later delivery of the
// message costs a few byte searches: the subscriber's base is checked, and
// the delta's CRC compared with the one first decoded, so a subscriber sent
// other delta bytes for the same message is caught too. Any failure counts
// in Stats.DeltaErrors and the first is kept (Reader.DeltaErr).
//
// Ours: a message frame's id names the message; a delta frame's base is the
// id of its source. The peer (Centrifuge, fossil): a publication's offset
// names it, and a delta's source is the channel's previous publication
// (offset - 1); every publication's data is a JSON string in delta mode.

// cacheDepth is how many rebuilt messages the reader keeps per channel: a
// subscriber that falls further behind than this gets deltas the reader
// can no longer check (counted as errors).
const cacheDepth = 1024

// maxDeltaTarget is the largest payload a delta may rebuild
// (docs/protocol.md §6.1).
const maxDeltaTarget = 65536

type msgEntry struct {
	key    []byte // ours: the message id; peer: the offset in decimal
	wire   []byte // the payload's wire bytes
	s      sample
	dcrc   uint32 // CRC-32 of the delta bytes the message was first rebuilt from
	hasCRC bool
}

// chanCache holds a channel's recently rebuilt messages, newest last.
type chanCache struct{ ents []msgEntry }

func (c *chanCache) find(key []byte) *msgEntry {
	for i := len(c.ents) - 1; i >= 0; i-- {
		if bytes.Equal(c.ents[i].key, key) {
			return &c.ents[i]
		}
	}
	return nil
}

func (c *chanCache) put(e msgEntry) *msgEntry {
	if len(c.ents) >= 2*cacheDepth {
		c.ents = append(c.ents[:0:0], c.ents[len(c.ents)-cacheDepth:]...)
	}
	c.ents = append(c.ents, e)
	return &c.ents[len(c.ents)-1]
}

type deltaTrack struct {
	names  map[string]int32
	pub    *Published
	cache  []chanCache
	format codec.Format
	first  string // the first error
}

// EnableDelta makes the reader rebuild and check delta frames (see above):
// channels are the run's channel names, pub what the publishers sent. Call
// it before Connect, on a reader whose target asks for deltas.
func (r *Reader) EnableDelta(channels []string, pub *Published) {
	dt := &deltaTrack{names: make(map[string]int32, len(channels)), pub: pub, cache: make([]chanCache, len(channels))}
	for i, ch := range channels {
		dt.names[ch] = int32(i)
	}
	if r.bin {
		dt.format = codec.FormatMsgpack
	}
	r.Do(func() { r.dt = dt })
}

// DeltaErr returns the first delta check that failed, or "".
func (r *Reader) DeltaErr() string {
	var s string
	r.Do(func() {
		if r.dt != nil {
			s = r.dt.first
		}
	})
	return s
}

func (r *Reader) deltaFail(format string, a ...any) {
	r.st.DeltaErrors++
	if r.dt.first == "" {
		r.dt.first = fmt.Sprintf(format, a...)
	}
}

var (
	jsonMessage, mpMessage = []byte(`{"type":"message",`), []byte("\xa4type\xa7message")
	jsonChannel, mpChannel = []byte(`"channel":"`), []byte("\xa7channel")
	jsonID, mpID           = []byte(`"id":"`), []byte("\xa2id")
	jsonBase, mpBase       = []byte(`"base":"`), []byte("\xa4base")
	jsonDelta, mpDelta     = []byte(`"delta":"`), []byte("\xa5delta")
	peerPush, peerData     = []byte(`{"push":{"channel":"`), []byte(`"pub":{"data":"`)
	peerDeltaTrue          = []byte(`"delta":true`)
)

// deltaUnit handles u when it is a message of a delta subscriber and
// reports whether it was one.
func (r *Reader) deltaUnit(c *conn, u []byte, now int64) bool {
	if r.t.Kind == Peer {
		return r.peerDeltaUnit(c, u, now)
	}
	var ch, id, base, delta []byte
	isDelta := false
	if !r.bin {
		if !bytes.HasPrefix(u, jsonMessage) {
			return false
		}
		ch, id = jsonStrAfter(u, jsonChannel), jsonStrAfter(u, jsonID)
		if delta = jsonStrAfter(u, jsonDelta); delta != nil {
			isDelta, base = true, jsonStrAfter(u, jsonBase)
		}
	} else {
		if len(u) < 16 || !bytes.Contains(u[:16], mpMessage) {
			return false
		}
		ch, id = mpStrAfter(u, mpChannel), mpStrAfter(u, mpID)
		if i := bytes.Index(u, mpDelta); i >= 0 {
			if delta = mpBin(u[i+len(mpDelta):]); delta != nil {
				isDelta, base = true, mpStrAfter(u, mpBase)
			}
		}
	}
	r.deltaMessage(c, u, now, ch, id, base, delta, isDelta)
	return true
}

// deltaMessage checks and records one message frame u of channel ch, named
// id; a delta frame has its base and delta bytes (as they are in u: base64
// in JSON).
func (r *Reader) deltaMessage(c *conn, u []byte, now int64, ch, id, base, delta []byte, isDelta bool) {
	dt := r.dt
	ci, ok := dt.names[string(ch)]
	if !ok || len(id) == 0 {
		r.st.Unexpected++
		return
	}
	i := c.sub.index(int64(ci))
	if i < 0 {
		r.st.Unexpected++
		return
	}
	held := c.sub.heldBase(i)
	if isDelta {
		r.st.DeltaFrames++
		if !bytes.Equal(*held, base) {
			r.deltaFail("%s: delta for %s on base %s, but the subscriber holds %q", ch, id, base, *held)
		}
	}
	cc := &dt.cache[ci]
	e := cc.find(id)
	var dcrc uint32
	if isDelta {
		dcrc = crc32.ChecksumIEEE(delta)
	}
	if e == nil {
		e = r.rebuild(cc, u, ci, id, base, delta, isDelta)
		if e == nil {
			*held = (*held)[:0]
			return
		}
		if isDelta {
			e.dcrc, e.hasCRC = dcrc, true
		}
	} else if isDelta {
		if !e.hasCRC {
			e.dcrc, e.hasCRC = dcrc, true
		} else if e.dcrc != dcrc {
			r.deltaFail("%s: message %s came with two different deltas", ch, id)
		}
	}
	*held = append((*held)[:0], id...)
	r.record(c, e.s, now)
}

// rebuild decodes message id of channel ci for the first time, checks it
// against what was published, and caches it.
func (r *Reader) rebuild(cc *chanCache, u []byte, ci int32, id, base, delta []byte, isDelta bool) *msgEntry {
	dt := r.dt
	var wire []byte
	switch {
	case r.t.Kind == Peer:
		data, err := jsonUnquote(delta)
		if err != nil {
			r.deltaFail("peer publication %s: data: %v", id, err)
			return nil
		}
		wire = data
		if isDelta {
			b := cc.find(base)
			if b == nil {
				r.deltaFail("peer publication %s: base %s is not among the last %d rebuilt", id, base, cacheDepth)
				return nil
			}
			if wire, err = fdelta.Apply(b.wire, data); err != nil {
				r.deltaFail("peer publication %s: fossil delta on base %s: %v", id, base, err)
				return nil
			}
		}
	default:
		fr, err := dt.format.Decode(u)
		if err != nil {
			r.deltaFail("message %s: %v", id, err)
			return nil
		}
		wire = fr.Wire
		if isDelta {
			b := cc.find(base)
			if b == nil {
				r.deltaFail("message %s: base %s is not among the last %d rebuilt", id, base, cacheDepth)
				return nil
			}
			if crc := crc32.ChecksumIEEE(b.wire); crc != fr.BaseCRC {
				r.deltaFail("message %s: base_crc %d, the base held has CRC %d", id, fr.BaseCRC, crc)
				return nil
			}
			if wire, err = vcdiff.Decode(b.wire, fr.Delta, maxDeltaTarget); err != nil {
				r.deltaFail("message %s: vcdiff on base %s: %v", id, base, err)
				return nil
			}
		}
	}
	s, ok := extract(wire, r.bin)
	if !ok {
		r.deltaFail("message %s: no stamp in the rebuilt payload %.80q", id, wire)
		return nil
	}
	if pub, ok := dt.pub.Get(s.ci, s.seq); !ok {
		r.deltaFail("message %s: channel %d message %d is not in the publishers' record", id, s.ci, s.seq)
		return nil
	} else if want, err := r.wireOf(pub); err != nil {
		r.deltaFail("message %s: published payload: %v", id, err)
		return nil
	} else if !bytes.Equal(wire, want) {
		r.deltaFail("message %s: rebuilt payload differs from the published one:\n got %.200q\nwant %.200q", id, wire, want)
		return nil
	}
	if s.ci != int64(ci) {
		r.deltaFail("message %s on channel %d carries channel index %d", id, ci, s.ci)
		return nil
	}
	r.st.DeltaChecked++
	return cc.put(msgEntry{key: append([]byte(nil), id...), wire: wire, s: s})
}

// wireOf returns a published payload as the reader's format carries it.
func (r *Reader) wireOf(pub []byte) ([]byte, error) {
	if r.t.Kind == Peer {
		return pub, nil // Centrifuge forwards data verbatim
	}
	var b bytes.Buffer
	if err := json.Compact(&b, pub); err != nil {
		return nil, err
	}
	return r.dt.format.WireData(b.Bytes())
}

// peerDeltaUnit handles a Centrifuge push of a delta subscription:
// {"push":{"channel":"C","pub":{"data":"<JSON string>","offset":N[,"delta":true]}}}.
func (r *Reader) peerDeltaUnit(c *conn, u []byte, now int64) bool {
	if !bytes.HasPrefix(u, peerPush) {
		return false
	}
	ch := jsonStrAfter(u, jsonChannel)
	k := bytes.Index(u, peerData)
	if k < 0 {
		return false
	}
	data := jsonStrRaw(u[k+len(peerData)-1:]) // the quoted string
	rest := u[k+len(peerData)-1+len(data):]
	off, ok := peerOffsetLast(rest)
	if data == nil || !ok {
		r.st.Unexpected++
		return true
	}
	isDelta := bytes.Contains(rest, peerDeltaTrue)
	id := strconv.AppendUint(nil, off, 10)
	var base []byte
	if isDelta {
		base = strconv.AppendUint(nil, off-1, 10)
	}
	r.deltaMessage(c, u, now, ch, id, base, data, isDelta)
	return true
}

// jsonStrAfter returns the JSON string following the first occurrence of
// key (ending with the opening quote), without unescaping: ids, channel
// names and base64 hold no escapes.
func jsonStrAfter(u, key []byte) []byte {
	i := bytes.Index(u, key)
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

// jsonStrRaw returns the JSON string at the start of b, quotes included,
// or nil.
func jsonStrRaw(b []byte) []byte {
	if len(b) == 0 || b[0] != '"' {
		return nil
	}
	for i := 1; i < len(b); i++ {
		switch b[i] {
		case '\\':
			i++
		case '"':
			return b[:i+1]
		}
	}
	return nil
}

func jsonUnquote(q []byte) ([]byte, error) {
	var s string
	if err := json.Unmarshal(q, &s); err != nil {
		return nil, err
	}
	return []byte(s), nil
}

// mpStrAfter returns the msgpack string following the first occurrence of
// key.
func mpStrAfter(u, key []byte) []byte {
	i := bytes.Index(u, key)
	if i < 0 {
		return nil
	}
	return mpStr(u[i+len(key):])
}

// mpBin returns the msgpack bin value at the start of b, or nil.
func mpBin(b []byte) []byte {
	if len(b) < 2 {
		return nil
	}
	n, h := 0, 0
	switch b[0] {
	case 0xc4:
		n, h = int(b[1]), 2
	case 0xc5:
		if len(b) < 3 {
			return nil
		}
		n, h = int(b[1])<<8|int(b[2]), 3
	case 0xc6:
		if len(b) < 5 {
			return nil
		}
		n, h = int(b[1])<<24|int(b[2])<<16|int(b[3])<<8|int(b[4]), 5
	default:
		return nil
	}
	if len(b) < h+n {
		return nil
	}
	return b[h : h+n]
}
