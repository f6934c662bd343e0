// Package backbone relays published messages between edges and delivers
// them, once each and in order per channel, to the local gateway.
//
// Two implementations share one delivery core (striped locks, a dedup cache
// bounded by count and age, and per-channel queues of publishes waiting for
// the backbone's acceptance):
//
//   - Relay, on Google Cloud Pub/Sub: shard topics, OrderingKey = channel, one
//     ordered subscription per edge per shard. Works against the real service
//     and against an emulator (Google's, or the client library's pstest).
//   - Local, in process: one edge on its own, same guarantees, no network.
//     It is the embedded default.
//
// backbone is the only package that imports the Pub/Sub SDK. Every exported
// method is safe to call concurrently.
package backbone
