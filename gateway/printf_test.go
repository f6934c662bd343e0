package gateway

import (
	"fmt"
	"strings"
	"testing"
	"testing/synctest"
	"time"
)

type warnRecorder struct{ lines [][]any }

func (w *warnRecorder) Warn(msg string, args ...any) {
	w.lines = append(w.lines, append([]any{msg}, args...))
}

// TestServerLogLinesBounded: fasthttp's per-connection lines are clipped and
// rate-limited, with the count of what was left out.
func TestServerLogLinesBounded(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var w warnRecorder
		p := slogPrintf{l: &w, limit: &printfLimit{}}
		garbage := strings.Repeat("A", 10000)
		for range 100 {
			p.Printf("error when serving connection %q: %s", "1.2.3.4", garbage)
		}
		if len(w.lines) != 1 {
			t.Fatalf("%d lines for 100 bad connections within a second, want 1", len(w.lines))
		}
		time.Sleep(time.Second)
		p.Printf("error when serving connection: %s", garbage)
		if len(w.lines) != 2 {
			t.Fatalf("%d lines, want 2", len(w.lines))
		}
		line := fmt.Sprint(w.lines[1]...)
		if !strings.Contains(line, "suppressed_since_last99") {
			t.Errorf("second line %q does not count the 99 left out", line)
		}
		for _, l := range w.lines {
			if n := len(fmt.Sprint(l...)); n > 300 {
				t.Errorf("a line of %d bytes: the peer's bytes were not clipped", n)
			}
		}
	})
}
