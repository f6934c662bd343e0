package oddsfeed

import (
	"errors"
	"fmt"
)

// Config shapes a feed. The zero value of every field means its default;
// a probability below zero means never.
type Config struct {
	// Events is the number of live events (default 200). Event slot 0 is
	// the hottest: slot k updates about 1/(k+1)^Skew as often.
	Events int
	// MarketsPerEvent (default 30): the templates of a football match, the
	// most watched first.
	MarketsPerEvent int
	// MinSelections and MaxSelections bound the selections of a market
	// (defaults 2 and 20): a template with more is cut, one with fewer is
	// padded with "Other k" selections.
	MinSelections, MaxSelections int
	// Rate is the update rate the feed stands for, in updates per second
	// (default 1000): Take stamps update i at start + i/Rate, and the
	// command paces its publishing with it. The model itself counts steps.
	Rate float64
	// Skew is the Zipf exponent of event hotness (default 1.0): with 200
	// events, the hottest gets about 17% of the price moves and the median
	// one about 0.2%.
	Skew float64
	// BurstProb is the probability that a step is a goal (default 0.0002):
	// every open market of one event, chosen uniformly (goals do not follow
	// popularity), is suspended in that step and reopened with new prices
	// GoalSuspendSteps later.
	BurstProb float64
	// SuspendProb is the probability that a step suspends one market
	// (default 0.002); it reopens SuspendSteps later.
	SuspendProb float64
	// SettleProb is the probability that a step settles one market
	// (default 0.0005); a new market of the same kind, with a new id and
	// channel, opens in its slot SuspendSteps later.
	SettleProb float64
	// GoalSuspendSteps (default 10000: 10 s at 1000 updates/s) and
	// SuspendSteps (default 3000) are how long suspensions last, in steps.
	GoalSuspendSteps, SuspendSteps int
	// Sport names the sport in channel names and documents (default
	// "football"): 1 to 32 bytes of a-z, 0-9, _ and -.
	Sport string
	// Seed makes the feed repeatable: the same Config gives the same updates.
	Seed uint64
}

// ErrConfig is wrapped by every error New returns for a bad Config.
var ErrConfig = errors.New("oddsfeed: bad config")

func (c Config) withDefaults() (Config, error) {
	def := func(v *int, d int) {
		if *v == 0 {
			*v = d
		}
	}
	deff := func(v *float64, d float64) {
		if *v == 0 {
			*v = d
		} else if *v < 0 {
			*v = 0
		}
	}
	def(&c.Events, 200)
	def(&c.MarketsPerEvent, 30)
	def(&c.MinSelections, 2)
	def(&c.MaxSelections, 20)
	def(&c.GoalSuspendSteps, 10000)
	def(&c.SuspendSteps, 3000)
	if c.Rate == 0 {
		c.Rate = 1000
	}
	if c.Skew == 0 {
		c.Skew = 1
	}
	deff(&c.BurstProb, 0.0002)
	deff(&c.SuspendProb, 0.002)
	deff(&c.SettleProb, 0.0005)
	if c.Sport == "" {
		c.Sport = "football"
	}
	bad := func(format string, args ...any) (Config, error) {
		return Config{}, fmt.Errorf("%w: %s", ErrConfig, fmt.Sprintf(format, args...))
	}
	switch {
	case c.Events < 1 || c.Events > 1_000_000:
		return bad("Events is %d, want 1 to 1000000", c.Events)
	case c.MarketsPerEvent < 1 || c.MarketsPerEvent > 10_000:
		return bad("MarketsPerEvent is %d, want 1 to 10000", c.MarketsPerEvent)
	case c.MinSelections < 2 || c.MaxSelections > 100 || c.MinSelections > c.MaxSelections:
		return bad("selections %d to %d, want 2 <= MinSelections <= MaxSelections <= 100", c.MinSelections, c.MaxSelections)
	case !(c.Rate > 0) || c.Rate > 1e9:
		return bad("Rate is %v, want more than 0", c.Rate)
	case !(c.Skew > 0) || c.Skew > 10:
		return bad("Skew is %v, want more than 0, at most 10", c.Skew)
	case !(c.BurstProb+c.SuspendProb+c.SettleProb < 1):
		return bad("BurstProb + SuspendProb + SettleProb is %v, want below 1", c.BurstProb+c.SuspendProb+c.SettleProb)
	case c.GoalSuspendSteps < 1 || c.SuspendSteps < 1:
		return bad("GoalSuspendSteps and SuspendSteps must be positive")
	case len(c.Sport) > 32:
		return bad("Sport is %d bytes, the limit is 32", len(c.Sport))
	}
	for i := 0; i < len(c.Sport); i++ {
		b := c.Sport[i]
		if !(b >= 'a' && b <= 'z' || b >= '0' && b <= '9' || b == '_' || b == '-') {
			return bad("Sport has a forbidden character at byte %d (a-z, 0-9, _ and - only)", i)
		}
	}
	return c, nil
}
