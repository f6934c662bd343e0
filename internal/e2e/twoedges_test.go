package e2e

import (
	"testing"
	"time"

	"github.com/feedgate/feedgate/internal/pubsubtest"
)

func TestTwoEdgesOneBackbone(t *testing.T) {
	for _, start := range pubsubtest.Servers(t) {
		srv := start(t)
		t.Run(srv.Name, func(t *testing.T) {
			t.Logf("backbone server: %s at %s", srv.Name, srv.Addr)
			prefix := "two-" + srv.Name
			a := mustStartRelayEdge(t, relayConfig(srv, "edge-a", prefix))
			b := mustStartRelayEdge(t, relayConfig(srv, "edge-b", prefix))
			// pstest releases about 10 messages/s per ordering key; keep
			// its run small. The emulator keeps up with more.
			k := 8
			if srv.Name == "emulator" {
				k = 40
			}
			fanInScenario(t, []string{a.URL, b.URL}, k, 90*time.Second)
			for _, e := range []*relayEdge{a, b} {
				st := e.relay.Stats()
				t.Logf("%s: delivered %d, duplicates dropped %d, published %d, publish errors %d, gaps %d, reorders %d",
					e.id, st.Delivered.Load(), st.Duplicates.Load(), st.Published.Load(), st.PublishErrors.Load(), st.Gaps.Load(), st.Reorders.Load())
				if st.Gaps.Load() != 0 || st.Reorders.Load() != 0 {
					t.Errorf("%s reported gaps or reorders", e.id)
				}
			}
		})
	}
}
