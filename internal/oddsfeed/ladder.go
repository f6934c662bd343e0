package oddsfeed

import "strconv"

// Prices are decimal odds held in hundredths (185 is 1.85) on the tick
// ladder the big betting exchanges use: fine steps for short prices,
// coarse ones for long shots, so a "small move" is a few ticks wherever
// the price is.
const (
	MinPrice = 101    // 1.01, the shortest price the ladder has
	MaxPrice = 100000 // 1000, the longest
)

// band is one stretch of the ladder: prices up to upTo (inclusive) move in
// steps of step.
type band struct{ upTo, step int }

var ladder = []band{
	{200, 1}, {300, 2}, {400, 5}, {600, 10}, {1000, 20},
	{2000, 50}, {3000, 100}, {5000, 200}, {10000, 500}, {MaxPrice, 1000},
}

// TickSize is the ladder step at price p (hundredths): the gap to the next
// longer price.
func TickSize(p int) int {
	for _, b := range ladder {
		if p < b.upTo {
			return b.step
		}
	}
	return ladder[len(ladder)-1].step
}

// OnLadder reports whether p (hundredths) is a price of the ladder.
func OnLadder(p int) bool {
	if p < MinPrice || p > MaxPrice {
		return false
	}
	lo := 100
	for _, b := range ladder {
		if p <= b.upTo {
			return (p-lo)%b.step == 0
		}
		lo = b.upTo
	}
	return false
}

// floorTick rounds decimal odds x down to the ladder (bookmakers round
// their prices down, never in the punter's favour) and clamps it to
// [MinPrice, MaxPrice].
func floorTick(x float64) int {
	c := int(x * 100)
	if c <= MinPrice {
		return MinPrice
	}
	if c >= MaxPrice {
		return MaxPrice
	}
	lo := 100
	for _, b := range ladder {
		if c <= b.upTo {
			return c - (c-lo)%b.step
		}
		lo = b.upTo
	}
	return MaxPrice
}

// appendPrice writes p (hundredths) as a decimal string without trailing
// zeros: 185 → "1.85", 1050 → "10.5", 1000 → "10".
func appendPrice(dst []byte, p int) []byte {
	dst = append(dst, '"')
	dst = strconv.AppendInt(dst, int64(p/100), 10)
	if f := p % 100; f != 0 {
		dst = append(dst, '.', byte('0'+f/10))
		if f%10 != 0 {
			dst = append(dst, byte('0'+f%10))
		}
	}
	return append(dst, '"')
}

// ParsePrice reads a price string as appendPrice writes it (without the
// quotes) into hundredths; ok is false for anything else.
func ParsePrice(s string) (p int, ok bool) {
	whole, frac, dot := s, "", false
	for i := 0; i < len(s); i++ {
		if s[i] == '.' {
			whole, frac, dot = s[:i], s[i+1:], true
			break
		}
	}
	if whole == "" || (dot && frac == "") || len(frac) > 2 || (len(frac) > 0 && frac[len(frac)-1] == '0') || (len(whole) > 1 && whole[0] == '0') {
		return 0, false
	}
	w := 0
	for i := 0; i < len(whole); i++ {
		if whole[i] < '0' || whole[i] > '9' || w > MaxPrice {
			return 0, false
		}
		w = w*10 + int(whole[i]-'0')
	}
	f := 0
	for i := 0; i < 2; i++ {
		f *= 10
		if i < len(frac) {
			if frac[i] < '0' || frac[i] > '9' {
				return 0, false
			}
			f += int(frac[i] - '0')
		}
	}
	return w*100 + f, true
}
