package vcdiff

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"strconv"
)

// pair is one test case: a source and the target to encode against it.
type pair struct {
	name           string
	source, target []byte
}

// randomBytes returns n bytes from rng, drawn from an alphabet of k
// symbols (k = 256: uniform bytes; small k: text-like repetition).
func randomBytes(rng *rand.Rand, n, k int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte('a' + rng.IntN(k))
	}
	if k == 256 {
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
	}
	return b
}

// mutate applies m random edits to src: inserts, deletes, moves, repeated
// runs and byte flips, and returns the result (src is not modified).
func mutate(rng *rand.Rand, src []byte, m int) []byte {
	b := bytes.Clone(src)
	for range m {
		pos := 0
		if len(b) > 0 {
			pos = rng.IntN(len(b) + 1)
		}
		n := 1 + rng.IntN(1+min(64, len(b)/4+1))
		switch rng.IntN(5) {
		case 0: // insert random bytes
			b = append(b[:pos], append(randomBytes(rng, n, 256), b[pos:]...)...)
		case 1: // delete
			end := min(len(b), pos+n)
			b = append(b[:pos], b[end:]...)
		case 2: // move a block elsewhere
			end := min(len(b), pos+n)
			blk := bytes.Clone(b[pos:end])
			b = append(b[:pos], b[end:]...)
			to := 0
			if len(b) > 0 {
				to = rng.IntN(len(b) + 1)
			}
			b = append(b[:to], append(blk, b[to:]...)...)
		case 3: // a run of one repeated byte
			run := bytes.Repeat([]byte{byte(rng.IntN(256))}, 4+rng.IntN(300))
			b = append(b[:pos], append(run, b[pos:]...)...)
		case 4: // flip bytes
			for range n {
				if len(b) > 0 {
					b[rng.IntN(len(b))] ^= byte(1 + rng.IntN(255))
				}
			}
		}
	}
	return b
}

// oddsMarket renders an odds-feed market document with n selections, the
// shape of the documents the edge sends deltas of: the same JSON again and
// again with a few prices changed.
func oddsMarket(id int, prices []float64) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, `{"eventId":"evt-%d","sport":"football","competition":"Premier League","home":"Arsenal","away":"Chelsea",`, id)
	fmt.Fprintf(&b, `"marketId":"mkt-%d-1x2","marketName":"Match Result","status":"open","inPlay":true,"score":{"home":1,"away":0},"clock":"67:12",`, id)
	b.WriteString(`"selections":[`)
	for i, p := range prices {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"selectionId":"sel-%d-%d","name":"Selection %d","status":"active","price":{"decimal":%s,"fractional":"%d/%d","american":"%+d"},"handicap":null,"sortPriority":%d}`,
			id, i, i, strconv.FormatFloat(p, 'f', 2, 64), int(p*100)-100, 100, int((p-1)*100), i)
	}
	b.WriteString(`],"updatedAt":"2025-11-30T07:08:00.000Z","version":1}`)
	return b.Bytes()
}

// oddsPair returns a market with n selections and the same market with k
// prices changed.
func oddsPair(rng *rand.Rand, n, k int) pair {
	id := rng.IntN(100000)
	prices := make([]float64, n)
	for i := range prices {
		prices[i] = 1.01 + float64(rng.IntN(2000))/100
	}
	src := oddsMarket(id, prices)
	for range k {
		i := rng.IntN(n)
		prices[i] += float64(rng.IntN(40)-20) / 100
		prices[i] = max(prices[i], 1.01)
	}
	return pair{fmt.Sprintf("odds-%dsel-%dchg", n, k), src, oddsMarket(id, prices)}
}

// market2K is the reference input of the benchmarks: a market document of
// about 2 KB with three prices changed.
func market2K() pair {
	rng := rand.New(rand.NewPCG(2, 2))
	return oddsPair(rng, 10, 3)
}

// testPairs returns the deterministic corpus of the round-trip and
// third-party tests: edge cases, random mutations from 0 B to 64 KiB, and
// odds documents.
func testPairs() []pair {
	rng := rand.New(rand.NewPCG(1, 42))
	r64 := randomBytes(rng, 64<<10, 256)
	text := randomBytes(rng, 64<<10, 4)
	ps := []pair{
		{"empty-empty", nil, nil},
		{"empty-source", nil, []byte("hello, world: no source at all, with a run 0000000000000000000000")},
		{"empty-target", []byte("a source nobody refers to"), nil},
		{"tiny", []byte("ab"), []byte("abc")},
		{"identical-64K", r64, r64},
		{"different-64K", r64, randomBytes(rng, 64<<10, 256)},
		{"zeros-64K", nil, make([]byte, 64<<10)},
		{"zeros-from-zeros", make([]byte, 1000), make([]byte, 64<<10)},
		{"self-repeat", nil, bytes.Repeat([]byte("odds-feed "), 2000)},
		{"text-64K-mutated", text, mutate(rng, text, 40)},
	}
	for _, n := range []int{0, 1, 3, 4, 5, 7, 16, 100, 1000, 4096, 20000, 65536} {
		for i := range 4 {
			src := randomBytes(rng, n, []int{256, 4, 26, 2}[i])
			m := 1 + rng.IntN(8)
			ps = append(ps, pair{fmt.Sprintf("mutate-%dB-%d", n, i), src, mutate(rng, src, m)})
		}
	}
	for _, n := range []int{2, 3, 5, 8, 13, 20} {
		for _, k := range []int{0, 1, 3, 5} {
			ps = append(ps, oddsPair(rng, n, k))
		}
	}
	return ps
}
