// Package backbone relays published messages between edges and delivers
// them, once each and in order per origin, to the local gateway.
//
// Two implementations share one delivery core (core.go):
//
//   - Relay, on Google Cloud Pub/Sub: shard topics, OrderingKey = channel, one
//     ordered subscription per edge per shard. Works against the real service
//     and against an emulator (Google's, or the client library's pstest).
//   - Local, in process: one edge on its own, same guarantees, no network.
//     It is the embedded default.
//
// The core keeps, per channel, in one of 64 striped locks: the dedup cache
// (bounded by count and age); the publishes awaiting Pub/Sub's answer, in
// publish order, and whether a failure streak is on (new publishes are then
// refused until every refusal was reported, so nothing accepted overtakes a
// failure); per origin, the last Seq delivered and the messages held back
// ahead of a missing predecessor (for at most the gap wait); and an outbox
// of deliveries and publish reports that one goroutine at a time hands to
// the gateway without any backbone lock held.
//
// Relay adds: one outcome collector per channel with publishes in flight
// (joined by Close); subscription checks that re-create what is missing;
// beacons (each edge's last accepted Seq per recently active channel, on
// every shard every BeaconInterval) that tell a receiver what it is owed;
// and stream restarts after a reconnection, a stall or silence, which free
// ordering keys leased to a broken stream.
//
// Lock order: a stripe's mu, then (leaf locks, never held while taking a
// stripe's) Relay.healthMu, Relay.owedMu, Relay.restartMu. No lock is held
// while calling the DeliverFunc or a DoneFunc; the Pub/Sub SDK's Publish and
// ResumePublish, which do not block on the network, are called under a
// stripe's mu to keep publish order.
//
// backbone is the only package that imports the Pub/Sub SDK. Every exported
// method is safe to call concurrently.
package backbone
