package gateway

import (
	"fmt"
	"testing"
	"time"

	"github.com/feedgate/feedgate/codec"
)

// FuzzHistory feeds the history endpoint's query parameters, as sent, to its
// parser and then to a channel's history with a fuzzed number of messages:
// a page is never longer than its limit, is newest first, holds only
// messages before the cursor, and paging from it loses and repeats nothing.
func FuzzHistory(f *testing.F) {
	f.Add([]byte("100"), []byte(""), uint16(7), uint8(3))
	f.Add([]byte("3"), []byte("5"), uint16(7), uint8(3))
	f.Add([]byte("0"), []byte("x"), uint16(0), uint8(0))
	f.Add([]byte("1001"), []byte("18446744073709551616"), uint16(2000), uint8(200))
	f.Fuzz(func(t *testing.T, limitArg, beforeArg []byte, delivered uint16, keep uint8) {
		limit, before, err := parseHistoryQuery(limitArg, beforeArg)
		if err != nil {
			if codec.AsError(err).Code != codec.CodeBadRequest {
				t.Fatalf("error without the bad_request code: %v", err)
			}
			return
		}
		if limit < 1 || limit > maxHistoryPage {
			t.Fatalf("accepted limit %d", limit)
		}
		now := time.Unix(1000, 0)
		h := newHub(int(keep)+1, time.Hour, func() time.Time { return now }, func(*codec.Message, codec.Format, error) {})
		ch := h.get("c", true)
		for i := 1; i <= int(delivered%2048); i++ {
			ch.deliver(&codec.Message{Channel: "c", ID: fmt.Sprint(i), Data: []byte("1"), Origin: "o", Seq: uint64(i), Prev: uint64(i - 1)})
		}
		var seen []uint64
		for pages := 0; ; pages++ {
			page := ch.history(limit, before)
			if len(page) > limit {
				t.Fatalf("page of %d for limit %d", len(page), limit)
			}
			for i, e := range page {
				if before > 0 && e.serial >= before {
					t.Fatalf("serial %d not before cursor %d", e.serial, before)
				}
				if i > 0 && e.serial >= page[i-1].serial {
					t.Fatalf("page not newest first: %d after %d", e.serial, page[i-1].serial)
				}
				if len(seen) > 0 && e.serial != seen[len(seen)-1]-1 {
					t.Fatalf("paging skipped or repeated: %d after %d", e.serial, seen[len(seen)-1])
				}
				seen = append(seen, e.serial)
			}
			if len(page) < limit || pages > 3000 {
				break
			}
			before = page[len(page)-1].serial
		}
	})
}
