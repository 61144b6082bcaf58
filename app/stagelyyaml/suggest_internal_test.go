package stagelyyaml

import "testing"

func TestSuggest(t *testing.T) {
	t.Parallel()
	keys := []string{"version", "project_id", "compose_file", "deployment", "hooks", "services"}
	tests := []struct {
		word, want string
	}{
		{"versoin", "version"},  // swapped letters cost one
		{"Version", "version"},  // case is ignored
		{"servics", "services"}, // one deletion
		{"compose-file", "compose_file"},
		{"projectid", "project_id"},
		{"hook", "hooks"},
		{"foo", ""},    // nothing close
		{"deploy", ""}, // four edits away is not a typo
		{"", ""},
	}
	for _, tt := range tests {
		t.Run(tt.word, func(t *testing.T) {
			t.Parallel()
			if got := suggest(tt.word, keys); got != tt.want {
				t.Fatalf("suggest(%q) = %q, want %q", tt.word, got, tt.want)
			}
		})
	}
}

func TestSuggest_TieGivesNoSuggestion(t *testing.T) {
	t.Parallel()
	if got := suggest("cat", []string{"bat", "hat"}); got != "" {
		t.Fatalf("suggest = %q, want none for a tie", got)
	}
}

func TestEditDistance(t *testing.T) {
	t.Parallel()
	tests := []struct {
		a, b string
		want int
	}{
		{"", "", 0},
		{"abc", "", 3},
		{"", "abc", 3},
		{"timeout", "timeout", 0},
		{"timeuot", "timeout", 1},
		{"kitten", "sitting", 3},
		{"ignore", "ignor", 1},
		{"ça", "ca", 1}, // runes, not bytes
	}
	for _, tt := range tests {
		t.Run(tt.a+"->"+tt.b, func(t *testing.T) {
			t.Parallel()
			if got := editDistance(tt.a, tt.b); got != tt.want {
				t.Fatalf("editDistance(%q, %q) = %d, want %d", tt.a, tt.b, got, tt.want)
			}
		})
	}
}
