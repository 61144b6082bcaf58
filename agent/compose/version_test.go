package compose_test

import (
	"context"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/stagely/stagely/agent/compose"
)

func TestRunner_VersionIsUnknownRatherThanDev(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ printed, want string }{
		{"v2.40.3\n", "2.40.3"},
		{"2.24.0", "2.24.0"},
		{"dev\n", ""},
		{"", ""},
	} {
		r := compose.NewRunner(compose.RunnerOptions{
			Docker:    os.Args[0],
			Env:       append(os.Environ(), helperEnv+"=print", helperEnv+"_PRINT="+tc.printed),
			KillGrace: time.Second,
		})
		if got := r.Version(context.Background()); got != tc.want {
			t.Errorf("compose printing %q: Version() = %q, want %q", tc.printed, got, tc.want)
		}
	}
}

func TestAtLeast_ComparesMajorAndMinorAndTrustsUnknownVersions(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		version string
		want    bool
	}{
		{"2.40.3", true}, {"2.24.0", true}, {"2.23.9", false}, {"1.29.2", false}, {"3.0.0", true}, {"", true},
	} {
		if got := compose.AtLeast(tc.version, 2, 24); got != tc.want {
			t.Errorf("AtLeast(%q, 2, 24) = %v, want %v", tc.version, got, tc.want)
		}
	}
}

func TestRunner_DropsComposesBakeWarningFromStderrOnly(t *testing.T) {
	t.Parallel()
	bake := `time="2026-12-02T12:44:16Z" level=warning msg="Docker Compose is configured to build using Bake, but buildx isn't installed"`
	var got []string
	r := compose.NewRunner(compose.RunnerOptions{
		Docker: os.Args[0],
		Env: append(os.Environ(), helperEnv+"=print",
			helperEnv+"_EPRINT="+bake+"\nStep 1/2 : FROM busybox\n", helperEnv+"_PRINT=echo "+bake+"\n"),
		KillGrace: time.Second,
	})
	err := r.Run(context.Background(), compose.Project{}, "build", nil, func(stream, line string) { got = append(got, stream+": "+line) })
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"stderr: Step 1/2 : FROM busybox", "stdout: echo " + bake}
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Errorf("lines = %q, want %q", got, want)
	}
}
