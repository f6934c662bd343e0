// Package oddsfeed simulates a live sports-odds feed: a set of in-play
// events, each with many markets, whose prices move in small ladder ticks,
// that are suspended and reopened, settled and replaced, and that move all
// at once when a goal is scored. Every update is the full JSON document of
// one market's current state, published on that market's channel
// ("odds:<sport>:<event>:<market>") with the market id as its conflation
// key: consecutive messages of a channel are the same document with a few
// values changed, as a delta encoder would want them.
//
// The feed is deterministic: the same Config (Seed included) and the same
// calls give the same updates, byte for byte. It has no goroutines and reads
// no clock; the caller passes the time stamped into each document. A Feed is
// not safe for concurrent use.
//
// docs/oddsfeed.md describes the model, its figures and why channels are
// per market rather than per event.
package oddsfeed
