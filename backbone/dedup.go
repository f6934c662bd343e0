package backbone

import "time"

// dedupCache remembers message keys for at most maxAge and at most maxCount
// keys, evicting the oldest first. It is not safe for concurrent use; each
// stripe owns one under its lock.
//
// A redelivery older than the window is delivered again: the window must
// exceed the backbone's redelivery horizon (ack deadline plus retries), which
// docs/operations.md discusses.
type dedupCache struct {
	maxCount int
	maxAge   time.Duration
	seen     map[string]int64 // key -> insertion time, Unix nanoseconds
	order    []dedupEntry     // ring in insertion order
	head     int              // index of the oldest entry in order
	n        int              // live entries in order
}

type dedupEntry struct {
	key string
	at  int64
}

func newDedupCache(maxCount int, maxAge time.Duration) *dedupCache {
	return &dedupCache{
		maxCount: maxCount,
		maxAge:   maxAge,
		seen:     make(map[string]int64),
		order:    make([]dedupEntry, maxCount),
	}
}

// add records key at now and reports whether it is new (false: a duplicate
// within the window).
func (d *dedupCache) add(key string, now time.Time) bool {
	t := now.UnixNano()
	d.expire(t)
	if _, ok := d.seen[key]; ok {
		return false
	}
	if d.n == d.maxCount {
		d.evictOldest()
	}
	d.order[(d.head+d.n)%d.maxCount] = dedupEntry{key: key, at: t}
	d.n++
	d.seen[key] = t
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
	for d.n > 0 && d.order[d.head].at < limit {
		d.evictOldest()
	}
}

func (d *dedupCache) evictOldest() {
	e := &d.order[d.head]
	delete(d.seen, e.key)
	*e = dedupEntry{}
	d.head = (d.head + 1) % d.maxCount
	d.n--
}

func (d *dedupCache) len() int { return d.n }
