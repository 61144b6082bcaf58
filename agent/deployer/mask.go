package deployer

import (
	"sort"
	"strings"
	"sync"

	"github.com/stagely/stagely/agent/protocol"
)

// minMaskLen is the shortest secret value that is masked: masking "1" or "on" would
// shred every log line while hiding nothing an attacker could not guess.
const minMaskLen = 4

// masker replaces secret values in log lines with ***.
type masker struct {
	r *strings.Replacer
}

// newMasker masks each value and, for multi-line values, each of their lines, since
// commands print a multi-line value one line at a time.
func newMasker(secrets []protocol.Secret) masker {
	seen := map[string]bool{}
	var vals []string
	add := func(v string) {
		v = strings.TrimRight(v, "\r")
		if len(v) >= minMaskLen && !seen[v] {
			seen[v] = true
			vals = append(vals, v)
		}
	}
	for _, s := range secrets {
		add(s.Value)
		if strings.ContainsAny(s.Value, "\n") {
			for _, l := range strings.Split(s.Value, "\n") {
				add(l)
			}
		}
	}
	// Longest first, so a value containing another is masked whole.
	sort.Slice(vals, func(i, j int) bool { return len(vals[i]) > len(vals[j]) })
	pairs := make([]string, 0, 2*len(vals))
	for _, v := range vals {
		pairs = append(pairs, v, "***")
	}
	return masker{r: strings.NewReplacer(pairs...)}
}

func (m masker) mask(line string) string { return m.r.Replace(line) }

// maskedEvents masks every line before it reaches the job's Events, and serialises the
// calls: the commands of one step may run at once.
type maskedEvents struct {
	mu *sync.Mutex
	ev Events
	m  masker
}

func (e maskedEvents) Phase(phase string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.ev.Phase(phase)
}

func (e maskedEvents) Plan(plan protocol.Plan) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.ev.Plan(plan)
}

func (e maskedEvents) Log(stream, line string) {
	line = e.m.mask(line)
	e.mu.Lock()
	defer e.mu.Unlock()
	e.ev.Log(stream, line)
}
