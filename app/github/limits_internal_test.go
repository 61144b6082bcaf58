package github

import (
	"strings"
	"testing"
	"unicode/utf8"
)

func TestTextLen_CountsUTF16Units(t *testing.T) {
	t.Parallel()
	for s, want := range map[string]int{"": 0, "abc": 3, "é": 1, "…": 1, "🚀": 2, "a🚀b": 4} {
		if got := textLen(s); got != want {
			t.Errorf("textLen(%q) = %d, want %d", s, got, want)
		}
	}
}

func TestTruncateHead_FitsAndMarksTheCut(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, in string
		limit    int
		want     string
	}{
		{"fits", "short", 140, "short"},
		{"exactly at the limit", strings.Repeat("a", 10), 10, strings.Repeat("a", 10)},
		{"one over", strings.Repeat("a", 11), 10, strings.Repeat("a", 9) + "…"},
		{"multibyte", strings.Repeat("é", 11), 10, strings.Repeat("é", 9) + "…"},
		{"emoji never split", strings.Repeat("🚀", 6), 10, strings.Repeat("🚀", 4) + "…"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := truncateHead(tt.in, tt.limit)
			if got != tt.want || textLen(got) > tt.limit || !utf8.ValidString(got) {
				t.Fatalf("truncateHead = %q (%d units), want %q", got, textLen(got), tt.want)
			}
		})
	}
}

func TestTruncateTail_KeepsWholeLastLinesBehindACount(t *testing.T) {
	t.Parallel()
	in := strings.Repeat("a", 30) + "\nbravo\ncharlie\n" // 45 characters
	got := truncateTail(in, 44)
	// Room for 12 characters after the header reaches into "bravo"; the partial line goes too.
	want := "… 37 earlier characters omitted\ncharlie\n"
	if got != want || textLen(got) > 44 {
		t.Fatalf("truncateTail = %q, want %q", got, want)
	}
	if s := strings.Repeat("x", 100); textLen(truncateTail(s, 50)) > 50 || !strings.HasSuffix(truncateTail(s, 50), "xxx") {
		t.Fatalf("one long line: %q", truncateTail(s, 50))
	}
	if got := truncateTail("fits", 10); got != "fits" {
		t.Fatalf("truncateTail changed a short string: %q", got)
	}
}

func TestTruncateBytes_CutsOnRuneBoundaries(t *testing.T) {
	t.Parallel()
	got := truncateBytes(strings.Repeat("é", 100), 51)
	if len(got) > 51 || !utf8.ValidString(got) || !strings.HasSuffix(got, "…") {
		t.Fatalf("truncateBytes = %q (%d bytes)", got, len(got))
	}
}

func TestChunk_AlwaysHasALastBatch(t *testing.T) {
	t.Parallel()
	for n, want := range map[int][]int{0: {0}, 1: {1}, 50: {50}, 51: {50, 1}, 120: {50, 50, 20}} {
		got := chunk(make([]int, n), 50)
		var sizes []int
		for _, c := range got {
			sizes = append(sizes, len(c))
		}
		if len(sizes) != len(want) {
			t.Fatalf("chunk(%d) sizes %v, want %v", n, sizes, want)
		}
		for i := range want {
			if sizes[i] != want[i] {
				t.Fatalf("chunk(%d) sizes %v, want %v", n, sizes, want)
			}
		}
	}
}
