package github

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// GitHub's published limits (see /work/shared/conformance/github-limits.md).
const (
	// MaxOutputChars bounds a check run's output title, summary and text.
	MaxOutputChars = 65535
	// MaxAnnotationsPerRequest is the Checks API's per-request annotation limit.
	MaxAnnotationsPerRequest = 50
	// MaxDescriptionChars bounds commit-status and deployment-status descriptions.
	MaxDescriptionChars = 140
	maxAnnotationTitle  = 255
	maxAnnotationBytes  = 64 * 1024
	maxActions          = 3
	maxActionLabel      = 20
	maxActionDesc       = 40
	maxActionID         = 20
)

// ellipsis marks every cut we make.
const ellipsis = "…"

// textLen counts characters the way the stricter of GitHub's possible counters would: UTF-16 code
// units. A string within a limit in UTF-16 units is within it in code points (Ruby's String#length,
// which the "maximum is N characters" messages come from) too, and a character outside the Basic
// Multilingual Plane (an emoji) counts twice, which only ever cuts a little earlier.
func textLen(s string) int {
	n := 0
	for _, r := range s {
		n++
		if r > 0xFFFF {
			n++
		}
	}
	return n
}

func runeUnits(r rune) int {
	if r > 0xFFFF {
		return 2
	}
	return 1
}

// truncateHead keeps the start of s and ends it with "…" so the result is at most limit characters.
func truncateHead(s string, limit int) string {
	if textLen(s) <= limit {
		return s
	}
	budget := limit - textLen(ellipsis)
	n, end := 0, 0
	for i, r := range s {
		if n+runeUnits(r) > budget {
			end = i
			break
		}
		n += runeUnits(r)
	}
	return s[:end] + ellipsis
}

// truncateTail keeps the end of s (a log tail: the last lines say what went wrong) behind a first
// line "… N earlier characters omitted", so the result is at most limit characters. N counts code
// points, the characters a reader would count. When the cut falls inside a line, the rest of that
// line goes too, so the tail starts at a line start; a last line longer than the limit is cut instead.
func truncateTail(s string, limit int) string {
	if textLen(s) <= limit {
		return s
	}
	total := utf8.RuneCountInString(s)
	// The header's width depends on N, which depends on the header's width: settle it by trying the
	// widest N first, which can only leave a digit or so of slack.
	header := fmt.Sprintf("%s %d earlier characters omitted\n", ellipsis, total)
	budget := limit - textLen(header)
	start, n := len(s), 0
	for start > 0 {
		r, size := utf8.DecodeLastRuneInString(s[:start])
		if n+runeUnits(r) > budget {
			break
		}
		n += runeUnits(r)
		start -= size
	}
	if nl := strings.IndexByte(s[start:], '\n'); nl >= 0 && nl < len(s)-start-1 {
		start += nl + 1
	}
	omitted := utf8.RuneCountInString(s[:start])
	return fmt.Sprintf("%s %d earlier characters omitted\n", ellipsis, omitted) + s[start:]
}

// truncateBytes keeps the start of s within limit bytes, cut on a rune boundary, ending in "…".
func truncateBytes(s string, limit int) string {
	if len(s) <= limit {
		return s
	}
	end := limit - len(ellipsis)
	for end > 0 && !utf8.RuneStart(s[end]) {
		end--
	}
	return s[:end] + ellipsis
}
