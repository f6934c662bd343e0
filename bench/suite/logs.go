package suite

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"sort"
	"strings"
)

// logWarnings summarizes the warning and error lines of a server's log:
// slog JSON lines at WARN or ERROR, counted by message.
func logWarnings(path string) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	counts := map[string]int{}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Bytes()
		var rec struct {
			Level string `json:"level"`
			Msg   string `json:"msg"`
		}
		if json.Unmarshal(line, &rec) != nil || (rec.Level != "WARN" && rec.Level != "ERROR") ||
			strings.HasPrefix(rec.Msg, "no API keys configured") { // the suite runs the edge without keys on purpose
			continue
		}
		counts[rec.Level+" "+rec.Msg]++
	}
	if len(counts) == 0 {
		return ""
	}
	keys := make([]string, 0, len(counts))
	for k := range counts {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return counts[keys[i]] > counts[keys[j]] })
	var parts []string
	for i, k := range keys {
		if i == 5 {
			parts = append(parts, fmt.Sprintf("and %d more kinds", len(keys)-5))
			break
		}
		parts = append(parts, fmt.Sprintf("%q x%d", k, counts[k]))
	}
	return strings.Join(parts, ", ")
}

// noteServerLogs notes the warnings of every server started for sr.
func (s *Suite) noteServerLogs(sr *ScenarioResult) {
	for _, p := range s.started {
		if w := logWarnings(p.LogPath); w != "" {
			s.note(sr, "%s log (%s) warnings: %s", p.Name, p.Addr, w)
		}
	}
	s.started = nil
}
