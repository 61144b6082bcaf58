package conn

import "time"

// Backoff computes capped exponential delays with full jitter: the ceiling doubles
// from Base on every attempt up to Max, and the delay is drawn uniformly between Min
// and the ceiling, so a fleet of agents cut off together does not redial together.
type Backoff struct {
	// Base is the ceiling of the first delay.
	Base time.Duration
	// Max caps the ceiling.
	Max time.Duration
	// Min is a floor under every delay (zero for ordinary failures).
	Min time.Duration
}

// Delay returns the wait before retry number attempt (0 for the first retry); rnd is
// a uniform draw in [0, 1).
func (b Backoff) Delay(attempt int, rnd float64) time.Duration {
	ceil := b.Base
	for i := 0; i < attempt && ceil < b.Max; i++ {
		ceil *= 2
	}
	if ceil > b.Max {
		ceil = b.Max
	}
	if ceil < b.Min {
		ceil = b.Min
	}
	if rnd < 0 {
		rnd = 0
	}
	if rnd >= 1 {
		rnd = 0.999999
	}
	return b.Min + time.Duration(rnd*float64(ceil-b.Min))
}
