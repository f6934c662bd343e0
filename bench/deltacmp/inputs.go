package deltacmp

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"strconv"
)

// Input is one comparison case: a previous payload and the next one.
type Input struct {
	Name           string
	Source, Target []byte
}

// Inputs returns the compared shapes, deterministic: a ~2 KB market with
// three prices changed, a ~10 KB event document (several markets) with a
// few prices changed and a score update, and 64 KiB of random bytes with a
// few random edits.
func Inputs() []Input {
	rng := rand.New(rand.NewPCG(7, 7))
	market := func(nsel, nchg int) (src, tgt []byte) {
		prices := make([]float64, nsel)
		for i := range prices {
			prices[i] = 1.01 + float64(rng.IntN(2000))/100
		}
		src = render(1, 0, [][]float64{prices})
		for range nchg {
			i := rng.IntN(nsel)
			prices[i] = max(1.01, prices[i]+float64(rng.IntN(40)-20)/100)
		}
		return src, render(1, 0, [][]float64{prices})
	}
	mSrc, mTgt := market(10, 3)

	var books [][]float64
	for range 12 {
		p := make([]float64, 3+rng.IntN(6))
		for i := range p {
			p[i] = 1.01 + float64(rng.IntN(2000))/100
		}
		books = append(books, p)
	}
	eSrc := render(2, 0, books)
	for range 5 {
		b := books[rng.IntN(len(books))]
		i := rng.IntN(len(b))
		b[i] = max(1.01, b[i]+float64(rng.IntN(40)-20)/100)
	}
	eTgt := render(2, 1, books)

	rSrc := make([]byte, 64<<10)
	for i := range rSrc {
		rSrc[i] = byte(rng.Uint32())
	}
	rTgt := bytes.Clone(rSrc)
	for range 8 {
		p := rng.IntN(len(rTgt) - 100)
		switch rng.IntN(3) {
		case 0:
			rTgt = append(rTgt[:p], append([]byte("inserted bytes"), rTgt[p:]...)...)
		case 1:
			rTgt = append(rTgt[:p], rTgt[p+1+rng.IntN(50):]...)
		default:
			rTgt[p] ^= 0x5a
		}
	}
	return []Input{
		{fmt.Sprintf("market-%dB-3-prices", len(mTgt)), mSrc, mTgt},
		{fmt.Sprintf("event-%dB-5-prices", len(eTgt)), eSrc, eTgt},
		{"random-64KiB-8-edits", rSrc, rTgt},
	}
}

// render writes an event document with one market per price list.
func render(id, homeScore int, books [][]float64) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, `{"eventId":"evt-%d","sport":"football","competition":"Premier League","home":"Arsenal","away":"Chelsea","inPlay":true,"score":{"home":%d,"away":0},"clock":"67:12","markets":[`, id, homeScore)
	for m, prices := range books {
		if m > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"marketId":"mkt-%d-%d","marketName":"Market %d","status":"open","selections":[`, id, m, m)
		for i, p := range prices {
			if i > 0 {
				b.WriteByte(',')
			}
			fmt.Fprintf(&b, `{"selectionId":"sel-%d-%d-%d","name":"Selection %d","status":"active","price":{"decimal":%s,"fractional":"%d/%d","american":"%+d"},"handicap":null,"sortPriority":%d}`,
				id, m, i, i, strconv.FormatFloat(p, 'f', 2, 64), int(p*100)-100, 100, int((p-1)*100), i)
		}
		b.WriteString(`]}`)
	}
	b.WriteString(`],"updatedAt":"2025-11-30T07:08:00.000Z","version":1}`)
	return b.Bytes()
}
