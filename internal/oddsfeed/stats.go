package oddsfeed

// Stats count what a feed produced.
type Stats struct {
	Steps   int64           // steps run
	Bursts  int64           // goals that suspended markets (a goal while all are suspended has no update)
	Updates int64           // updates produced
	ByKind  [NumKinds]int64 // updates by Kind
	Bytes   int64           // payload bytes
	// MinBytes and MaxBytes are the smallest and largest payloads.
	MinBytes, MaxBytes int
	// BySelections[n] counts the updates of markets with n selections.
	BySelections []SizeStat
}

// SizeStat counts updates and their payload bytes.
type SizeStat struct {
	Updates, Bytes int64
}

// Mean is the mean payload size, 0 without updates.
func (s SizeStat) Mean() float64 {
	if s.Updates == 0 {
		return 0
	}
	return float64(s.Bytes) / float64(s.Updates)
}

func (s *Stats) add(k Kind, selections, bytes int) {
	s.Updates++
	s.ByKind[k]++
	s.Bytes += int64(bytes)
	if s.MinBytes == 0 || bytes < s.MinBytes {
		s.MinBytes = bytes
	}
	s.MaxBytes = max(s.MaxBytes, bytes)
	if selections < len(s.BySelections) {
		s.BySelections[selections].Updates++
		s.BySelections[selections].Bytes += int64(bytes)
	}
}
