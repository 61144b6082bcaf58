package stagelyyaml_test

import (
	"strings"
	"testing"

	"github.com/stagely/stagely/app/stagelyyaml"
)

func TestCleanRootDirectory_StoresOneSpellingAndRefusesEscapes(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in, want, err string
	}{
		{in: "", want: ""},
		{in: ".", want: ""},
		{in: "./", want: ""},
		{in: "services/api", want: "services/api"},
		{in: "./services/api/", want: "services/api"},
		{in: " services//api ", want: "services/api"},
		{in: "services/./api", want: "services/api"},
		{in: "/services/api", err: "no leading /"},
		{in: "C:/repo", err: "no leading /"},
		{in: "services/../../etc", err: `".." is not allowed`},
		{in: "services/..", err: `".." is not allowed`},
		{in: `services\api`, err: "backslashes"},
		{in: "services/\x00api", err: "control characters"},
		{in: strings.Repeat("a/", 600), err: "at most 1024 bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			t.Parallel()
			got, err := stagelyyaml.CleanRootDirectory(tt.in)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("CleanRootDirectory(%q) = %q, %v; want an error with %q", tt.in, got, err, tt.err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("CleanRootDirectory(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
			}
		})
	}
}

func TestWatch_MatchesRootDirectoryThenPatternsLastOneWins(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		root     string
		patterns []string
		file     string
		want     bool
	}{
		{"repository root watches every file", "", nil, "README.md", true},
		{"file under the root directory", "services/api", nil, "services/api/main.go", true},
		{"the root directory's own stagely.yaml", "services/api", nil, "services/api/stagely.yaml", true},
		{"sibling folder is not watched", "services/api", nil, "services/web/main.go", false},
		{"folder sharing a prefix is not under the root", "services/api", nil, "services/api-gateway/main.go", false},
		{"anchored glob with ** widens", "services/api", []string{"libs/shared/**"}, "libs/shared/go/util.go", true},
		{"anchored glob leaves other folders", "services/api", []string{"libs/shared/**"}, "libs/other/x.go", false},
		{"folder pattern covers everything beneath", "services/api", []string{"libs/shared"}, "libs/shared/a/b/c.go", true},
		{"leading slash anchors", "services/api", []string{"/go.mod"}, "go.mod", true},
		{"leading slash does not match deeper", "services/api", []string{"/go.mod"}, "tools/go.mod", false},
		{"pattern without slash matches at any depth", "services/api", []string{"*.proto"}, "proto/v1/api.proto", true},
		{"star stays within a folder", "services/api", []string{"proto/*.proto"}, "proto/v1/api.proto", false},
		{"double star in the middle", "services/api", []string{"proto/**/api.proto"}, "proto/v1/x/api.proto", true},
		{"double star matching no folder", "services/api", []string{"proto/**/api.proto"}, "proto/api.proto", true},
		{"question mark is one character", "services/api", []string{"lib?/x"}, "libs/x", true},
		{"character class", "services/api", []string{"lib[abc]/x"}, "libd/x", false},
		{"trailing slash matches folders only", "services/api", []string{"build/"}, "build", false},
		{"trailing slash matches files beneath", "services/api", []string{"build/"}, "tools/build/out.txt", true},
		{"negation unwatches docs of the root directory", "services/api", []string{"!services/api/docs/**"}, "services/api/docs/intro.md", false},
		{"negation leaves other files watched", "services/api", []string{"!services/api/docs/**"}, "services/api/main.go", true},
		{"negation on the repository root", "", []string{"!*.md"}, "docs/guide.md", false},
		{"later pattern overrides a negation", "", []string{"!docs/**", "docs/deploy.md"}, "docs/deploy.md", true},
		{"dot slash anchors", "services/api", []string{"./Makefile"}, "Makefile", true},
		{"dot slash does not match deeper", "services/api", []string{"./Makefile"}, "x/Makefile", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			w, err := stagelyyaml.NewWatch(tt.root, tt.patterns)
			if err != nil {
				t.Fatal(err)
			}
			if got := w.Matches(tt.file); got != tt.want {
				t.Fatalf("root %q, patterns %q: Matches(%q) = %v, want %v", tt.root, tt.patterns, tt.file, got, tt.want)
			}
		})
	}
}

func TestWatch_NarrowedOnlyWhenSomethingCanBeLeftOut(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		root     string
		patterns []string
		want     bool
	}{
		{"", nil, false},
		{"services/api", nil, true},
		{"", []string{"!docs/**"}, true},
	} {
		w, err := stagelyyaml.NewWatch(tt.root, tt.patterns)
		if err != nil {
			t.Fatal(err)
		}
		if w.Narrowed() != tt.want {
			t.Errorf("root %q, patterns %q: Narrowed() = %v, want %v", tt.root, tt.patterns, w.Narrowed(), tt.want)
		}
	}
}

func TestNewWatch_RefusesAPatternParseWouldRefuse(t *testing.T) {
	t.Parallel()
	if _, err := stagelyyaml.NewWatch("", []string{"../x"}); err == nil || !strings.Contains(err.Error(), `goes up with ".."`) {
		t.Fatalf("NewWatch with ../x: %v", err)
	}
}

func TestParse_WatchPathsKeptInOrder(t *testing.T) {
	t.Parallel()
	cfg, problems := stagelyyaml.Parse([]byte("watch_paths:\n  - libs/shared/**\n  - '!libs/shared/docs/**'\n  - go.mod\n"))
	if len(problems) != 0 {
		t.Fatalf("problems: %v", problems)
	}
	want := []string{"libs/shared/**", "!libs/shared/docs/**", "go.mod"}
	if strings.Join(cfg.WatchPaths, ",") != strings.Join(want, ",") {
		t.Fatalf("WatchPaths = %q, want %q", cfg.WatchPaths, want)
	}
	if cfg, problems := stagelyyaml.Parse([]byte("watch_paths:\n")); len(problems) != 0 || cfg.WatchPaths != nil {
		t.Fatalf("empty watch_paths: %v, %v", cfg.WatchPaths, problems)
	}
}
