package compose_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stagely/stagely/agent/compose"
)

func TestParsePS_BothOutputFormats(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		file string
		want []compose.Container
	}{
		{
			name: "one object per line from compose v2.40.3",
			file: "ps-jsonlines-v2.40.3.txt",
			want: []compose.Container{
				{ID: "e4926aff7106", Name: "psrec-api-1", Project: "psrec", Service: "api", State: "running"},
				{ID: "d3c7b1d567d0", Name: "psrec-web-1", Project: "psrec", Service: "web", State: "running", Health: "unhealthy"},
				{ID: "c981da6b4c22", Name: "psrec-worker-1", Project: "psrec", Service: "worker", State: "exited", ExitCode: 3},
			},
		},
		{
			name: "one JSON array before compose v2.21",
			file: "ps-array-pre-v2.21.json",
			want: []compose.Container{
				{ID: "1553b0236cf4d2715845f053a4ee97042c4f9a2ef655731ee34f1f7940eaa41a", Name: "example-bar-1", Project: "example", Service: "bar", State: "exited"},
				{ID: "f02a4efaabb67416e1ff127d51c4b5578634a0ad5743bd65225ff7d1909a3fa0", Name: "example-foo-1", Project: "example", Service: "foo", State: "running"},
			},
		},
		{
			name: "pretty-printed array before compose v2.21",
			file: "ps-array-pretty-pre-v2.21.json",
			want: []compose.Container{
				{ID: "aba85f638641033254a353baf0f73ac2bce302d46d843c0037849005171a4238", Name: "compose-ps-json-db-1", Project: "compose-ps-json", Service: "db", State: "running"},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			raw, err := os.ReadFile(filepath.Join("testdata", tt.file))
			if err != nil {
				t.Fatal(err)
			}
			got, err := compose.ParsePS(raw)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(tt.want) {
				t.Fatalf("got %d containers, want %d: %+v", len(got), len(tt.want), got)
			}
			for i := range got {
				if got[i] != tt.want[i] {
					t.Errorf("container %d = %+v, want %+v", i, got[i], tt.want[i])
				}
			}
		})
	}
}

func TestParsePS_EmptyOutputMeansNoContainers(t *testing.T) {
	t.Parallel()
	for _, in := range []string{"", "\n", "  \n", "[]"} {
		got, err := compose.ParsePS([]byte(in))
		if err != nil || len(got) != 0 {
			t.Errorf("ParsePS(%q) = %v, %v; want no containers", in, got, err)
		}
	}
}

func TestParsePS_GarbageIsAnError(t *testing.T) {
	t.Parallel()
	// null and other non-objects used to read as a container with no name (found by FuzzParsePS).
	for _, in := range []string{"[{", "{\"ID\":1}", "not json", "{not json", "null", "[null]", "{}\nnull", "[{}, 1]", "\"web\""} {
		if _, err := compose.ParsePS([]byte(in)); err == nil {
			t.Errorf("ParsePS(%q) succeeded; want an error", in)
		}
	}
}

func TestParsePS_SkipsBlankLinesBetweenObjects(t *testing.T) {
	t.Parallel()
	out := "{\"ID\":\"a1\",\"Service\":\"web\",\"State\":\"running\"}\n\n{\"ID\":\"b2\",\"Service\":\"worker\",\"State\":\"running\"}\n"
	got, err := compose.ParsePS([]byte(out))
	if err != nil {
		t.Fatal(err)
	}
	want := []compose.Container{{ID: "a1", Service: "web", State: "running"}, {ID: "b2", Service: "worker", State: "running"}}
	if len(got) != len(want) || got[0] != want[0] || got[1] != want[1] {
		t.Fatalf("parsed %+v, want %+v", got, want)
	}
}
