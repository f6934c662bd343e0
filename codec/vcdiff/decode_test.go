package vcdiff

import (
	"bytes"
	"encoding/binary"
	"errors"
	"hash/adler32"
	"runtime"
	"testing"
)

// win describes one window for build: indicator, segment, target length,
// the three sections and an optional checksum field (raw bytes).
type win struct {
	ind              byte
	segLen, segPos   int
	tgtLen           int
	data, inst, addr []byte
	sum              []byte
	deltaInd         byte
}

// build assembles a delta: the RFC header with hdr as Hdr_Indicator, then
// the windows.
func build(hdr byte, ws ...win) []byte {
	b := []byte{magic0, magic1, magic2, version0, hdr}
	for _, w := range ws {
		b = append(b, w.ind)
		if w.ind&(winSource|winTarget) != 0 {
			b = appendVarint(b, w.segLen)
			b = appendVarint(b, w.segPos)
		}
		var enc []byte
		enc = appendVarint(enc, w.tgtLen)
		enc = append(enc, w.deltaInd)
		enc = appendVarint(enc, len(w.data))
		enc = appendVarint(enc, len(w.inst))
		enc = appendVarint(enc, len(w.addr))
		enc = append(enc, w.sum...)
		enc = append(enc, w.data...)
		enc = append(enc, w.inst...)
		enc = append(enc, w.addr...)
		b = appendVarint(b, len(enc))
		b = append(b, enc...)
	}
	return b
}

func be32(v uint32) []byte { return binary.BigEndian.AppendUint32(nil, v) }

func TestDecodeValid(t *testing.T) {
	src := []byte("0123456789abcdef")
	hello := []byte("hello world")
	cases := []struct {
		name   string
		source []byte
		delta  []byte
		want   string
	}{
		{"header only: no window", nil, build(0), ""},
		{"ADD", nil, build(0, win{tgtLen: 5, data: []byte("hello"), inst: []byte{codeAdd0 + 5}}), "hello"},
		{"RUN", nil, build(0, win{tgtLen: 6, data: []byte("z"), inst: []byte{codeRun, 6}}), "zzzzzz"},
		{"COPY from source, SELF mode", src, build(0, win{ind: winSource, segLen: 16, tgtLen: 4, inst: []byte{codeCopy0 + 1}, addr: []byte{10}}), "abcd"},
		{"segment in the middle of the source", src, build(0, win{ind: winSource, segLen: 4, segPos: 8, tgtLen: 4, inst: []byte{codeCopy0 + 1}, addr: []byte{0}}), "89ab"},
		{
			"overlapping COPY from the target, HERE mode", nil,
			build(0, win{tgtLen: 9, data: []byte("ab"), inst: []byte{codeAdd0 + 2, codeCopy0 + 16*modeHere + 7 - 3}, addr: []byte{2}}),
			"ababababa",
		},
		{
			"COPY crossing from the segment into the target", []byte("xy"),
			build(0, win{ind: winSource, segLen: 2, tgtLen: 6, inst: []byte{codeCopy0 + 16*modeSelf, 6}, addr: []byte{0}}),
			"xyxyxy",
		},
		{
			"VCD_TARGET window copies the first window's target", nil,
			build(0,
				win{tgtLen: 11, data: hello, inst: []byte{codeAdd0 + 11}},
				win{ind: winTarget, segLen: 5, segPos: 6, tgtLen: 5, inst: []byte{codeCopy0 + 16*modeSelf + 5 - 3}, addr: []byte{0}}),
			"hello worldworld",
		},
		{
			"Adler-32, 4 bytes (xdelta3)", nil,
			build(0, win{ind: winAdler32, tgtLen: 11, data: hello, inst: []byte{codeAdd0 + 11}, sum: be32(adler32.Checksum(hello))}),
			"hello world",
		},
		{
			"Adler-32, one integer (open-vcdiff)", nil,
			build(0, win{ind: winAdler32, tgtLen: 11, data: hello, inst: []byte{codeAdd0 + 11}, sum: appendVarint(nil, int(adler32.Checksum(hello)))}),
			"hello world",
		},
		{
			"application header (xdelta3)", nil,
			append([]byte{magic0, magic1, magic2, version0, hdrAppHeader, 3, 'a', 'p', 'p'},
				build(0, win{tgtLen: 2, data: []byte("ok"), inst: []byte{codeAdd0 + 2}})[5:]...),
			"ok",
		},
		{
			"double instruction ADD 2 + COPY 4 mode SAME", []byte("0123456789"),
			// same[0] is 0 at the start of a window: SAME mode 6 with byte 0 is address 0.
			build(0, win{ind: winSource, segLen: 10, tgtLen: 6, data: []byte("AB"), inst: []byte{codeAddCopy4 + 1}, addr: []byte{0}}),
			"AB0123",
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := Decode(c.source, c.delta, 1<<10)
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			if string(got) != c.want {
				t.Fatalf("got %q, want %q", got, c.want)
			}
		})
	}
}

func TestDecodeHostile(t *testing.T) {
	src := []byte("0123456789abcdef")
	valid := build(0, win{ind: winSource, segLen: 16, tgtLen: 4, inst: []byte{codeCopy0 + 1}, addr: []byte{10}})
	cases := []struct {
		name   string
		source []byte
		delta  []byte
		max    int
		want   error
	}{
		{"empty", nil, nil, 100, ErrCorrupt},
		{"short header", nil, []byte{magic0, magic1, magic2, 0}, 100, ErrCorrupt},
		{"bad magic", nil, []byte{'V', 'C', 'D', 0, 0}, 100, ErrCorrupt},
		{"open-vcdiff SDCH format 'S'", nil, []byte{magic0, magic1, magic2, 'S', 0}, 100, ErrUnsupported},
		{"secondary compressor", nil, []byte{magic0, magic1, magic2, 0, hdrDecompress, 2}, 100, ErrUnsupported},
		{"custom code table", nil, []byte{magic0, magic1, magic2, 0, hdrCodeTable}, 100, ErrUnsupported},
		{"unknown Hdr_Indicator bit", nil, []byte{magic0, magic1, magic2, 0, 0x08}, 100, ErrCorrupt},
		{"app header longer than the delta", nil, []byte{magic0, magic1, magic2, 0, hdrAppHeader, 9, 1}, 100, ErrCorrupt},
		{"unknown Win_Indicator bit", nil, build(0, win{ind: 0x08}), 100, ErrCorrupt},
		{"VCD_SOURCE and VCD_TARGET", src, build(0, win{ind: winSource | winTarget, segLen: 1}), 100, ErrCorrupt},
		{"segment past the source", src, build(0, win{ind: winSource, segLen: 10, segPos: 7}), 100, ErrCorrupt},
		{"segment with an empty source", nil, build(0, win{ind: winSource, segLen: 1}), 100, ErrCorrupt},
		{"VCD_TARGET before any target", nil, build(0, win{ind: winTarget, segLen: 1}), 100, ErrCorrupt},
		{"huge target window", nil, build(0, win{tgtLen: maxInt}), 1 << 20, ErrTooLarge},
		{"target over the limit", nil, build(0, win{tgtLen: 5, data: []byte("hello"), inst: []byte{codeAdd0 + 5}}), 4, ErrTooLarge},
		{"second window over the limit", nil, build(0,
			win{tgtLen: 3, data: []byte("abc"), inst: []byte{codeAdd0 + 3}},
			win{tgtLen: 3, data: []byte("abc"), inst: []byte{codeAdd0 + 3}}), 5, ErrTooLarge},
		{"integer overflowing 2^31-1", nil, append([]byte{magic0, magic1, magic2, 0, 0, 0}, 0x88, 0x80, 0x80, 0x80, 0x80, 0x00), 100, ErrCorrupt},
		{"truncated integer", nil, []byte{magic0, magic1, magic2, 0, 0, 0, 0x81}, 100, ErrCorrupt},
		{"delta encoding longer than the delta", nil, []byte{magic0, magic1, magic2, 0, 0, 0, 20, 0}, 100, ErrCorrupt},
		{"compressed sections", nil, build(0, win{tgtLen: 1, data: []byte("a"), inst: []byte{codeAdd0 + 1}, deltaInd: 1}), 100, ErrUnsupported},
		{"ADD past the data", nil, build(0, win{tgtLen: 5, data: []byte("hell"), inst: []byte{codeAdd0 + 5}}), 100, ErrCorrupt},
		{"RUN without data", nil, build(0, win{tgtLen: 5, inst: []byte{codeRun, 5}}), 100, ErrCorrupt},
		{"instruction past the window", nil, build(0, win{tgtLen: 4, data: []byte("hello"), inst: []byte{codeAdd0 + 5}}), 100, ErrCorrupt},
		{"fewer bytes than declared", nil, build(0, win{tgtLen: 6, data: []byte("hello"), inst: []byte{codeAdd0 + 5}}), 100, ErrCorrupt},
		{"unused data", nil, build(0, win{tgtLen: 4, data: []byte("hello"), inst: []byte{codeAdd0 + 4}}), 100, ErrCorrupt},
		{"unused address", src, build(0, win{ind: winSource, segLen: 16, tgtLen: 4, inst: []byte{codeCopy0 + 1}, addr: []byte{10, 3}}), 100, ErrCorrupt},
		{"COPY address at here", src, build(0, win{ind: winSource, segLen: 16, tgtLen: 4, inst: []byte{codeCopy0 + 1}, addr: []byte{16}}), 100, ErrCorrupt},
		{"COPY from an empty window", nil, build(0, win{tgtLen: 4, inst: []byte{codeCopy0 + 1}, addr: []byte{0}}), 100, ErrCorrupt},
		{"COPY HERE before the start", src, build(0, win{ind: winSource, segLen: 16, tgtLen: 4, inst: []byte{codeCopy0 + 16*modeHere + 1}, addr: []byte{17}}), 100, ErrCorrupt},
		{"COPY NEAR past here", src, build(0, win{ind: winSource, segLen: 16, tgtLen: 4, inst: []byte{codeCopy0 + 16*modeNear0 + 1}, addr: []byte{100}}), 100, ErrCorrupt},
		{"COPY address truncated", src, build(0, win{ind: winSource, segLen: 16, tgtLen: 4, inst: []byte{codeCopy0 + 1}, addr: []byte{0x80}}), 100, ErrCorrupt},
		{"COPY SAME without its byte", src, build(0, win{ind: winSource, segLen: 16, tgtLen: 4, inst: []byte{codeCopy0 + 16*modeSame0 + 1}}), 100, ErrCorrupt},
		{"instruction size truncated", nil, build(0, win{tgtLen: 4, data: []byte("abcd"), inst: []byte{codeAdd0}}), 100, ErrCorrupt},
		{"checksum mismatch", nil, build(0, win{ind: winAdler32, tgtLen: 2, data: []byte("ok"), inst: []byte{codeAdd0 + 2}, sum: be32(1)}), 100, ErrCorrupt},
		{"checksum field missing", nil, build(0, win{ind: winAdler32, tgtLen: 2, data: []byte("ok"), inst: []byte{codeAdd0 + 2}}), 100, ErrCorrupt},
		{"checksum field of 3 bytes, not an integer", nil, build(0, win{ind: winAdler32, tgtLen: 2, data: []byte("ok"), inst: []byte{codeAdd0 + 2}, sum: []byte{0x81, 0x81, 0x81}}), 100, ErrCorrupt},
		{"trailing garbage: a truncated window", src, append(valid, 0), 100, ErrCorrupt},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := Decode(c.source, c.delta, c.max)
			if !errors.Is(err, c.want) {
				t.Fatalf("Decode = %q, %v; want an error wrapping %v", got, err, c.want)
			}
			t.Log(err)
		})
	}
}

// TestDecodeTruncated: every proper prefix of a delta is an error, except
// the header alone (a delta with no window: an empty target).
func TestDecodeTruncated(t *testing.T) {
	for _, p := range testPairs()[:12] {
		d := Encode(p.source, p.target)
		for n := range len(d) {
			got, err := Decode(p.source, d[:n], len(p.target))
			if n == 5 {
				if err != nil || len(got) != 0 {
					t.Fatalf("%s: header alone: %q, %v", p.name, got, err)
				}
				continue
			}
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("%s: prefix of %d/%d bytes: %v, want ErrCorrupt", p.name, n, len(d), err)
			}
		}
	}
}

// TestDecodeAllocationBound: a delta that declares a huge target is refused
// before anything near that size is allocated, and a valid delta allocates
// its target once.
func TestDecodeAllocationBound(t *testing.T) {
	measure := func(f func()) uint64 {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		f()
		runtime.ReadMemStats(&after)
		return after.TotalAlloc - before.TotalAlloc
	}
	huge := build(0, win{tgtLen: 1 << 30, data: []byte("x"), inst: []byte{codeRun, 0x84, 0x80, 0x80, 0x80, 0x00}})
	if n := measure(func() {
		if _, err := Decode(nil, huge, 1<<20); !errors.Is(err, ErrTooLarge) {
			t.Errorf("huge declared target: %v, want ErrTooLarge", err)
		}
	}); n > 4<<10 {
		t.Errorf("refusing a 1 GiB target allocated %d bytes", n)
	}
	p := market2K()
	d := Encode(p.source, p.target)
	if n := measure(func() {
		if _, err := Decode(p.source, d, 1<<20); err != nil {
			t.Error(err)
		}
	}); n > uint64(len(p.target))+4<<10 {
		t.Errorf("decoding a %d-byte target allocated %d bytes", len(p.target), n)
	}
}

// TestEncodeSubset checks the shape of the encoder's output that the
// protocol documents: RFC header with Hdr_Indicator 0, one window, the whole
// source as VCD_SOURCE segment (none for an empty source), no checksum.
func TestEncodeSubset(t *testing.T) {
	for _, p := range testPairs() {
		d := Encode(p.source, p.target)
		if !bytes.Equal(d[:5], []byte{0xD6, 0xC3, 0xC4, 0x00, 0x00}) {
			t.Fatalf("%s: header % x", p.name, d[:5])
		}
		pos := 6
		wantInd := byte(0)
		if len(p.source) > 0 {
			wantInd = winSource
			segLen, _ := readVarint(d, &pos)
			segPos, _ := readVarint(d, &pos)
			if segLen != len(p.source) || segPos != 0 {
				t.Fatalf("%s: segment [%d, +%d), want the whole source", p.name, segPos, segLen)
			}
		}
		if d[5] != wantInd {
			t.Fatalf("%s: Win_Indicator %#x, want %#x", p.name, d[5], wantInd)
		}
		encLen, ok := readVarint(d, &pos)
		if !ok || pos+encLen != len(d) {
			t.Fatalf("%s: delta encoding of %d bytes at %d does not end the %d-byte delta: not exactly one window", p.name, encLen, pos, len(d))
		}
		tgtLen, _ := readVarint(d, &pos)
		if tgtLen != len(p.target) || d[pos] != 0 {
			t.Fatalf("%s: target length %d (want %d), Delta_Indicator %#x", p.name, tgtLen, len(p.target), d[pos])
		}
	}
}

// TestDecodeManyWindows: a delta of many tiny windows decodes in linear
// time and its output stays within the limit.
func TestDecodeManyWindows(t *testing.T) {
	var ws []win
	for i := range 20000 {
		ws = append(ws, win{tgtLen: 1, data: []byte{byte('a' + i%26)}, inst: []byte{codeAdd0 + 1}})
	}
	d := build(0, ws...)
	got, err := Decode(nil, d, 20000)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 20000 || cap(got) > 20000 || got[27] != 'b' {
		t.Fatalf("got %d bytes, capacity %d", len(got), cap(got))
	}
	if _, err := Decode(nil, d, 19999); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("limit 19999: %v, want ErrTooLarge", err)
	}
}
