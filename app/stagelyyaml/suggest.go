package stagelyyaml

import (
	"strconv"
	"strings"
)

// suggest returns the candidate closest to word when it is close enough to be a typo
// ("timeuot" -> "timeout"), or "" when none is, or when two are equally close.
func suggest(word string, candidates []string) string {
	word = strings.ToLower(word)
	// Allow one edit per three characters, at most two: "ignor" finds "ignore",
	// but "foo" does not become "version".
	limit := min(2, max(1, len([]rune(word))/3))
	best, bestDist, tie := "", limit+1, false
	for _, c := range candidates {
		d := editDistance(word, strings.ToLower(c))
		switch {
		case d < bestDist:
			best, bestDist, tie = c, d, false
		case d == bestDist:
			tie = true
		}
	}
	if tie || bestDist > limit {
		return ""
	}
	return best
}

// editDistance is the optimal-string-alignment distance: insertions, deletions,
// substitutions and swaps of neighbours each cost one, since swapped letters are the
// commonest typo in a key name.
func editDistance(a, b string) int {
	s, t := []rune(a), []rune(b)
	// Three rows suffice: the swap rule looks back two rows.
	prev2 := make([]int, len(t)+1)
	prev := make([]int, len(t)+1)
	cur := make([]int, len(t)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(s); i++ {
		cur[0] = i
		for j := 1; j <= len(t); j++ {
			cost := 1
			if s[i-1] == t[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
			if i > 1 && j > 1 && s[i-1] == t[j-2] && s[i-2] == t[j-1] {
				cur[j] = min(cur[j], prev2[j-2]+1)
			}
		}
		prev2, prev, cur = prev, cur, prev2
	}
	return prev[len(t)]
}

// didYouMean renders a suggestion as a message suffix, or "" without one.
func didYouMean(word string, candidates []string) string {
	if s := suggest(word, candidates); s != "" {
		return " (did you mean " + strconv.Quote(s) + "?)"
	}
	return ""
}
