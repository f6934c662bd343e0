package oddsfeed

import (
	"math"
	"math/rand/v2"
	"slices"
	"sort"
	"strconv"
	"time"
)

// Kind says what an update did to its market.
type Kind uint8

// The kinds of update.
const (
	KindPrice   Kind = iota // prices moved (a few selections)
	KindSuspend             // the market was suspended (prices kept, betting closed)
	KindReopen              // the market reopened, with new prices
	KindSettle              // the market was settled: final, results set
	KindOpen                // a new market opened in a settled one's slot
	NumKinds    = 5
)

var kindNames = [NumKinds]string{"price", "suspend", "reopen", "settle", "open"}

func (k Kind) String() string {
	if int(k) < len(kindNames) {
		return kindNames[k]
	}
	return "kind(" + strconv.Itoa(int(k)) + ")"
}

// Update is one message of the feed: the full current state of one market.
type Update struct {
	Channel string // "odds:<sport>:<event id>:m<number>", valid per codec.ValidateChannel
	Key     string // conflation key: the market id, the same for every update of the market
	Payload []byte // the market's JSON document; owned by the caller
	Kind    Kind
	Burst   bool  // part of a goal burst: its suspension or its reopening
	Event   int   // event slot, 0 the hottest
	Market  int   // market slot within the event
	Step    int64 // the step that produced it, from 1
}

type status uint8

const (
	open status = iota
	suspended
	settled
)

var statusNames = [...]string{"open", "suspended", "settled"}

type market struct {
	id, channel, name string
	sel               []string  // selection names
	prob              []float64 // the model's probabilities, summing to 1
	price             []int     // published prices, hundredths
	margin            float64   // the bookmaker's margin: overround is about 1+margin
	status            status
	winner            int
	version           int64
	rng               *rand.Rand // this market's own moves: Move is repeatable per market
}

type event struct {
	id, name, home, away string
	score                [2]int
	markets              []*market
	next                 int // number of the next new market
}

// scheduled is a reopening or a replacement due at a step.
type scheduled struct {
	due      int64
	ev, slot int
	m        *market // the market it was scheduled for; stale if the slot moved on
	kind     Kind
	burst    bool
}

// Feed is a simulated odds feed. Not safe for concurrent use.
type Feed struct {
	cfg       Config
	rng       *rand.Rand
	events    []*event
	eventCum  []float64 // cumulative Zipf weights of the event slots
	marketCum []float64 // cumulative weights of the market slots (main markets move more)
	step      int64
	queue     []scheduled // FIFO, due steps ascending per delay; see pop
	qhead     int
	pending   []Update // produced by a step, not yet returned by Take
	stats     Stats
}

// New returns a feed in its initial state: every market open.
func New(cfg Config) (*Feed, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	f := &Feed{cfg: cfg, rng: rand.New(rand.NewPCG(cfg.Seed, cfg.Seed^0x6f646473)),
		stats: Stats{BySelections: make([]SizeStat, cfg.MaxSelections+1)}}
	f.eventCum = cumulative(cfg.Events, cfg.Skew)
	f.marketCum = cumulative(cfg.MarketsPerEvent, 0.6)
	for i := 0; i < cfg.Events; i++ {
		home, away := 2*i, 2*i+1
		e := &event{id: "ev" + strconv.Itoa(1_000_000+i), home: teamName(home), away: teamName(away)}
		e.name = e.home + " v " + e.away
		e.markets = make([]*market, cfg.MarketsPerEvent)
		for s := range e.markets {
			e.markets[s] = f.newMarket(i, e, s)
		}
		f.events = append(f.events, e)
	}
	return f, nil
}

func cumulative(n int, s float64) []float64 {
	c := make([]float64, n)
	total := 0.0
	for k := range c {
		total += 1 / math.Pow(float64(k+1), s)
		c[k] = total
	}
	return c
}

func pick(rng *rand.Rand, cum []float64) int {
	return min(sort.SearchFloat64s(cum, rng.Float64()*cum[len(cum)-1]), len(cum)-1)
}

// newMarket makes the next market of event e (slot i) for slot s, open,
// with fresh prices.
func (f *Feed) newMarket(i int, e *event, s int) *market {
	e.next++
	t := templates[s%len(templates)]
	name := fill(t.name, e.home, e.away)
	if s >= len(templates) {
		name += " (" + strconv.Itoa(s/len(templates)+1) + ")"
	}
	num := strconv.Itoa(e.next)
	m := &market{id: e.id + "-m" + num, channel: "odds:" + f.cfg.Sport + ":" + e.id + ":m" + num, name: name,
		sel: selectionNames(t, e.home, e.away, f.cfg.MinSelections, f.cfg.MaxSelections),
		rng: rand.New(rand.NewPCG(f.cfg.Seed^uint64(i)<<20, uint64(e.next)))}
	n := len(m.sel)
	m.margin = min(0.03+0.006*float64(n), 0.15)
	m.prob = make([]float64, n)
	m.price = make([]int, n)
	total := 0.0
	for k := range m.prob {
		m.prob[k] = math.Exp(1.2 * m.rng.NormFloat64())
		total += m.prob[k]
	}
	for k := range m.prob {
		m.prob[k] /= total
	}
	m.normalise()
	m.reprice()
	return m
}

// minProb keeps every selection's probability where its price stays on
// the ladder (1/(0.0012·1.15) ≈ 725).
const minProb = 0.0012

// normalise brings the probabilities into [minProb, the probability
// priced 1.02], keeping their sum at 1 and their order, by mixing them with
// the uniform distribution as little as needed: no price is clamped to an
// end of the ladder, so the overround stays about 1+margin.
func (m *market) normalise() {
	n := float64(len(m.prob))
	total := 0.0
	for _, p := range m.prob {
		total += p
	}
	for k := range m.prob {
		m.prob[k] /= total
	}
	mix := func(lambda float64) {
		for k := range m.prob {
			m.prob[k] = (1-lambda)*m.prob[k] + lambda/n
		}
	}
	if hi, top := m.maxProb(), slices.Max(m.prob); top > hi {
		mix((top - hi) / (top - 1/n))
	}
	if low := slices.Min(m.prob); low < minProb {
		mix((minProb - low) / (1/n - low))
	}
}

// maxProb is the probability priced 1.02 with the market's margin.
func (m *market) maxProb() float64 { return 1 / (1.02 * (1 + m.margin)) }

// reprice sets the prices from the probabilities and the margin, rounded
// down to the ladder; it reports how many changed.
func (m *market) reprice() int {
	changed := 0
	for k, p := range m.prob {
		np := floorTick(1 / (p * (1 + m.margin)))
		if np != m.price[k] {
			m.price[k] = np
			changed++
		}
	}
	return changed
}

// move is a trader's price move: one or two times, a selection's price
// goes one or two ticks shorter or longer and another selection, one that
// can absorb it (its probability changes by at most 1/8), takes the
// opposite change of probability. The margin, hence the overround, stays.
func (m *market) move() {
	pairs := 1 + m.rng.IntN(2)
	for range pairs {
		for try := 0; try < 8; try++ {
			if m.shift() {
				break
			}
		}
	}
	m.reprice()
}

// shift tries one tick move; it reports whether it made one.
func (m *market) shift() bool {
	a := m.rng.IntN(len(m.prob))
	target := m.price[a]
	shorter := m.rng.IntN(2) == 0
	for range 1 + m.rng.IntN(2) {
		if shorter {
			target = tickDown(target)
		} else {
			target = tickUp(target)
		}
	}
	// The probability whose price floors to target: the middle of its tick.
	pa := 1 / ((float64(target) + float64(TickSize(target))/2) / 100 * (1 + m.margin))
	if target == m.price[a] || pa > m.maxProb() || pa < minProb {
		return false
	}
	d := pa - m.prob[a]
	b := m.rng.IntN(len(m.prob) - 1)
	if b >= a {
		b++
	}
	pb := m.prob[b] - d
	if math.Abs(d) > m.prob[b]/8 || pb < minProb || pb > m.maxProb() {
		return false
	}
	m.prob[a], m.prob[b] = pa, pb
	return true
}

// tickDown is the next shorter price on the ladder (MinPrice stays).
func tickDown(p int) int {
	if p <= MinPrice {
		return MinPrice
	}
	return p - TickSize(p-1)
}

// tickUp is the next longer price on the ladder (MaxPrice stays).
func tickUp(p int) int { return min(p+TickSize(p), MaxPrice) }

// shock moves every probability by a random factor (a goal, a red card):
// large moves, renormalised.
func (m *market) shock(sigma float64) {
	for k := range m.prob {
		m.prob[k] *= math.Exp(sigma * m.rng.NormFloat64())
	}
	total := 0.0
	for _, p := range m.prob {
		total += p
	}
	for k := range m.prob {
		m.prob[k] /= total
	}
	m.normalise()
	m.reprice()
}

// Step runs one step of the feed and appends its updates to dst: the
// reopenings and replacements due now, then one random action (a price
// move on a market of an event chosen by hotness, most often; or a goal,
// a suspension, a settlement). now is stamped into every document.
func (f *Feed) Step(dst []Update, now time.Time) []Update {
	f.step++
	f.stats.Steps++
	for f.qhead < len(f.queue) && f.queue[f.qhead].due <= f.step {
		s := f.queue[f.qhead]
		f.qhead++
		e := f.events[s.ev]
		switch {
		case s.kind == KindOpen && e.markets[s.slot] == s.m:
			e.markets[s.slot] = f.newMarket(s.ev, e, s.slot)
			dst = f.emit(dst, s.ev, s.slot, KindOpen, false, now)
		case s.kind == KindReopen && e.markets[s.slot] == s.m && s.m.status == suspended:
			s.m.status = open
			if s.burst {
				s.m.shock(0.5)
			} else {
				s.m.shock(0.1)
			}
			dst = f.emit(dst, s.ev, s.slot, KindReopen, s.burst, now)
		}
	}
	if f.qhead > 1024 && f.qhead*2 > len(f.queue) {
		f.queue = append(f.queue[:0], f.queue[f.qhead:]...)
		f.qhead = 0
	}
	r := f.rng.Float64()
	switch c := f.cfg; {
	case r < c.BurstProb:
		ev := f.rng.IntN(len(f.events))
		e := f.events[ev]
		e.score[f.rng.IntN(2)]++
		n := len(dst)
		for s, m := range e.markets {
			if m.status == open {
				m.status = suspended
				dst = f.emit(dst, ev, s, KindSuspend, true, now)
				f.schedule(scheduled{due: f.step + int64(c.GoalSuspendSteps), ev: ev, slot: s, m: m, kind: KindReopen, burst: true})
			}
		}
		if len(dst) > n {
			f.stats.Bursts++
		}
	case r < c.BurstProb+c.SettleProb:
		if ev, s, ok := f.pickOpen(); ok {
			m := f.events[ev].markets[s]
			m.status = settled
			m.winner = pick(m.rng, cumProb(m.prob))
			dst = f.emit(dst, ev, s, KindSettle, false, now)
			f.schedule(scheduled{due: f.step + int64(c.SuspendSteps), ev: ev, slot: s, m: m, kind: KindOpen})
		}
	case r < c.BurstProb+c.SettleProb+c.SuspendProb:
		if ev, s, ok := f.pickOpen(); ok {
			m := f.events[ev].markets[s]
			m.status = suspended
			dst = f.emit(dst, ev, s, KindSuspend, false, now)
			f.schedule(scheduled{due: f.step + int64(c.SuspendSteps), ev: ev, slot: s, m: m, kind: KindReopen})
		}
	default:
		if ev, s, ok := f.pickOpen(); ok {
			f.events[ev].markets[s].move()
			dst = f.emit(dst, ev, s, KindPrice, false, now)
		}
	}
	return dst
}

func cumProb(p []float64) []float64 {
	c := make([]float64, len(p))
	t := 0.0
	for k, v := range p {
		t += v
		c[k] = t
	}
	return c
}

// schedule queues s. Two delays exist, so the queue is two FIFOs merged:
// s is inserted before the entries due after it (rare: only when a
// GoalSuspendSteps entry is followed by a shorter one).
func (f *Feed) schedule(s scheduled) {
	i := len(f.queue)
	for i > f.qhead && f.queue[i-1].due > s.due {
		i--
	}
	f.queue = append(f.queue, scheduled{})
	copy(f.queue[i+1:], f.queue[i:])
	f.queue[i] = s
}

// pickOpen chooses an open market: an event by hotness, a market of it by
// weight (main markets move more). It tries a few times when the choice
// is not open (suspended for a goal, settled), then gives up: the step
// has no action.
func (f *Feed) pickOpen() (ev, slot int, ok bool) {
	for range 8 {
		ev = pick(f.rng, f.eventCum)
		slot = pick(f.rng, f.marketCum)
		if f.events[ev].markets[slot].status == open {
			return ev, slot, true
		}
	}
	return 0, 0, false
}

// emit appends the update of market slot of event ev, its version bumped.
func (f *Feed) emit(dst []Update, ev, slot int, k Kind, burst bool, now time.Time) []Update {
	e := f.events[ev]
	m := e.markets[slot]
	m.version++
	p := appendDoc(make([]byte, 0, 160+90*len(m.sel)), f.cfg.Sport, e, m, now)
	f.stats.add(k, len(m.sel), len(p))
	return append(dst, Update{Channel: m.channel, Key: m.id, Payload: p, Kind: k, Burst: burst, Event: ev, Market: slot, Step: f.step})
}

// Take returns the next n updates, stamping update i at start + i/Rate
// (updates of one step share the stamp of its first). Updates of a step
// beyond n are kept for the next call, already stamped.
func (f *Feed) Take(n int, start time.Time) []Update {
	out := make([]Update, 0, n)
	k := min(n, len(f.pending))
	out = append(out, f.pending[:k]...)
	f.pending = f.pending[k:]
	for len(out) < n {
		at := start.Add(time.Duration(float64(len(out)) / f.cfg.Rate * float64(time.Second)))
		f.pending = f.Step(f.pending[:0], at)
		k := min(n-len(out), len(f.pending))
		out = append(out, f.pending[:k]...)
		f.pending = f.pending[k:]
	}
	if len(f.pending) == 0 {
		f.pending = nil
	}
	return out
}

// Markets is the number of market slots: Events × MarketsPerEvent. Slot
// i is market i%MarketsPerEvent of event i/MarketsPerEvent.
func (f *Feed) Markets() int { return len(f.events) * f.cfg.MarketsPerEvent }

// Channel is the channel of the market now in slot i.
func (f *Feed) Channel(i int) string {
	return f.events[i/f.cfg.MarketsPerEvent].markets[i%f.cfg.MarketsPerEvent].channel
}

// Move makes one price move on the market in slot i (reopening it first
// if it is suspended; a settled one is replaced by a new market first),
// whatever the feed's hotness: for a load generator that picks channels
// itself. Each market has its own random source, so the k-th Move of a
// slot gives the same document whatever the other slots did, as long as
// Step is not called.
func (f *Feed) Move(i int, now time.Time) Update {
	ev, slot := i/f.cfg.MarketsPerEvent, i%f.cfg.MarketsPerEvent
	e := f.events[ev]
	k := KindPrice
	switch e.markets[slot].status {
	case settled:
		e.markets[slot] = f.newMarket(ev, e, slot)
		k = KindOpen
	case suspended:
		e.markets[slot].status = open
		k = KindReopen
	}
	e.markets[slot].move()
	return f.emit(nil, ev, slot, k, false, now)[0]
}

// Stats returns what the feed produced so far.
func (f *Feed) Stats() Stats {
	s := f.stats
	s.BySelections = append([]SizeStat(nil), s.BySelections...)
	return s
}

// Config returns the configuration in force, defaults filled in.
func (f *Feed) Config() Config { return f.cfg }
