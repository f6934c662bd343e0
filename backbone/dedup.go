package backbone

import (
	"sync/atomic"
	"time"
)

// dedupCache remembers message keys for at most maxAge, evicting the
// oldest first. Each stripe owns one, used under the stripe's lock; the
// count bound is shared by all stripes (total), so a hot channel can use
// the whole budget rather than 1/64 of it. When the total is over maxCount,
// the stripe that inserts evicts its own oldest keys.
//
// A redelivery older than the window is delivered again: the window must
// exceed the backbone's redelivery horizon (ack deadline plus retries), which
// docs/operations.md discusses.
type dedupCache struct {
	maxCount int64
	maxAge   time.Duration
	total    *atomic.Int64 // keys held by all stripes' caches
	seen     map[string]struct{}
	order    []dedupEntry // insertion order; live entries from head on
	head     int
}

type dedupEntry struct {
	key string
	at  int64 // Unix nanoseconds
}

func newDedupCache(maxCount int, maxAge time.Duration, total *atomic.Int64) *dedupCache {
	return &dedupCache{maxCount: int64(maxCount), maxAge: maxAge, total: total, seen: make(map[string]struct{})}
}

// add records key at now and reports whether it is new (false: a duplicate
// within the window).
func (d *dedupCache) add(key string, now time.Time) bool {
	t := now.UnixNano()
	d.expire(t)
	if _, ok := d.seen[key]; ok {
		return false
	}
	d.order = append(d.order, dedupEntry{key: key, at: t})
	d.seen[key] = struct{}{}
	d.total.Add(1)
	for d.total.Load() > d.maxCount && d.len() > 1 {
		d.evictOldest()
	}
	return true
}

// has reports whether key is remembered at now.
func (d *dedupCache) has(key string, now time.Time) bool {
	d.expire(now.UnixNano())
	_, ok := d.seen[key]
	return ok
}

func (d *dedupCache) expire(now int64) {
	limit := now - int64(d.maxAge)
	for d.len() > 0 && d.order[d.head].at < limit {
		d.evictOldest()
	}
}

func (d *dedupCache) evictOldest() {
	e := &d.order[d.head]
	delete(d.seen, e.key)
	*e = dedupEntry{}
	d.head++
	d.total.Add(-1)
	// Reclaim the dead prefix once it is most of the slice.
	if d.head > 1024 && d.head > len(d.order)/2 {
		n := copy(d.order, d.order[d.head:])
		clear(d.order[n:])
		d.order = d.order[:n]
		d.head = 0
	}
}

func (d *dedupCache) len() int { return len(d.order) - d.head }
