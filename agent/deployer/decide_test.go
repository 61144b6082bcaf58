package deployer

import (
	"fmt"
	"testing"

	"github.com/stagely/stagely/agent/compose"
	"github.com/stagely/stagely/agent/engine"
	"github.com/stagely/stagely/agent/protocol"
)

func TestDecide_FollowsComposesOwnRecreateRules(t *testing.T) {
	t.Parallel()
	two, zero := 2, 0
	resolved := &compose.Config{Services: map[string]compose.ServiceConfig{
		"api": {}, "web": {}, "db": {}, "cache": {}, "jobs": {Scale: &two}, "off": {Scale: &zero}, "admin": {},
	}}
	ctr := func(svc, hash, image, state string, oneOff bool) engine.Container {
		l := map[string]string{labelService: svc, labelHash: hash, labelImage: image}
		if oneOff {
			l[labelOneOff] = "True"
		}
		return engine.Container{State: state, Labels: l}
	}
	in := planInputs{
		hashes: map[string]string{"api": "h-api-new", "web": "h-web", "db": "h-db", "cache": "h-cache", "jobs": "h-jobs", "off": "h-off"},
		images: map[string]string{"api": "sha256:a", "web": "sha256:w-new", "db": "sha256:d", "cache": "sha256:c", "jobs": "sha256:j", "off": "sha256:o"},
		before: []engine.Container{
			ctr("api", "h-api-old", "sha256:a", "running", false), // configuration changed
			ctr("web", "h-web", "sha256:w-old", "running", false), // image rebuilt
			ctr("db", "h-db", "sha256:d", "running", false),       // unchanged
			ctr("db", "h-db-old", "sha256:d", "exited", true),     // a hook's one-off container is no replica
			ctr("cache", "h-cache", "sha256:c", "exited", false),  // stopped: started again
			ctr("jobs", "h-jobs", "sha256:j", "running", false),   // one replica of two
			ctr("old", "h-old", "sha256:x", "running", false),     // gone from the compose file
			ctr("admin", "h-admin", "sha256:x", "running", false), // ignored
		},
	}
	got := decide(resolved, []string{"api", "cache", "db", "jobs", "new", "off", "web"}, []string{"admin"}, in)
	want := protocol.Plan{
		Create: []string{"new"}, Recreate: []string{"api", "web"}, Start: []string{"cache"}, Scale: []string{"jobs"},
		Unchanged: []string{"db", "off"}, Ignored: []string{"admin"}, Remove: []string{"old"},
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("plan = %+v\nwant   %+v", got, want)
	}
}

func TestParseStatus_ReadsHealthAndExitCodeAsDockerPsShowsThem(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		status string
		health string
		code   int
	}{
		{"Up 3 seconds (healthy)", "healthy", 0},
		{"Up 2 seconds (health: starting)", "starting", 0},
		{"Up About a minute (unhealthy)", "unhealthy", 0},
		{"Up 5 seconds", "", 0},
		{"Exited (137) 4 seconds ago", "", 137},
		{"Exited (0) About an hour ago", "", 0},
		{"Created", "", 0},
	} {
		health, code := parseStatus(tc.status)
		if health != tc.health || code != tc.code {
			t.Errorf("parseStatus(%q) = %q, %d; want %q, %d", tc.status, health, code, tc.health, tc.code)
		}
	}
}
