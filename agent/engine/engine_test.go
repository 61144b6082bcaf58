package engine_test

import (
	"context"
	"errors"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/stagely/stagely/agent/dockertest"
	"github.com/stagely/stagely/agent/engine"
)

func TestNew_ReachesUnixAndPlainTCPHostsOnly(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		host string
		tls  bool
		ok   bool
	}{
		{"", false, true},
		{"unix:///run/docker.sock", false, true},
		{"tcp://10.0.0.2:2375", false, true},
		{"tcp://10.0.0.2:2376", true, false},
		{"ssh://deploy@host", false, false},
		{"npipe:////./pipe/docker_engine", false, false},
	} {
		_, err := engine.New(tc.host, tc.tls)
		if (err == nil) != tc.ok {
			t.Errorf("New(%q, tls=%v) error = %v, want ok=%v", tc.host, tc.tls, err, tc.ok)
		}
		if err != nil && !errors.Is(err, engine.ErrUnsupportedHost) {
			t.Errorf("New(%q) error = %v, want ErrUnsupportedHost", tc.host, err)
		}
	}
}

func TestClient_ListsAProjectsContainersAndFindsImages(t *testing.T) {
	t.Parallel()
	img := dockertest.BusyboxImage(t)
	project := dockertest.ProjectName("stg-engine")
	t.Cleanup(func() { dockertest.Down(t, project) })
	out, err := exec.Command("docker", "run", "-d", "--label", "com.docker.compose.project="+project,
		"--label", "com.docker.compose.service=web", img, "sleep", "600").CombinedOutput()
	if err != nil {
		t.Fatalf("docker run: %v: %s", err, out)
	}
	id := strings.TrimSpace(string(out))
	t.Cleanup(func() { _ = exec.Command("docker", "rm", "-f", id).Run() })

	c, err := engine.New("", false)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cs, err := c.Containers(ctx, "com.docker.compose.project", project)
	if err != nil {
		t.Fatal(err)
	}
	if len(cs) != 1 || cs[0].ID != id || cs[0].Labels["com.docker.compose.service"] != "web" || cs[0].State != "running" {
		t.Fatalf("containers = %+v, want the one running web container %s", cs, id)
	}
	want, err := exec.Command("docker", "image", "inspect", "--format", "{{.Id}}", img).Output()
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ ref, want string }{
		{img, strings.TrimSpace(string(want))},
		{"stagely-test/no-such-image:never", ""},
	} {
		got, err := c.ImageID(ctx, tc.ref)
		if err != nil || got != tc.want {
			t.Errorf("ImageID(%q) = %q, %v; want %q", tc.ref, got, err, tc.want)
		}
	}
	if _, err := c.ImageID(ctx, "bad?ref"); err == nil {
		t.Error("ImageID accepted a reference with '?'")
	}
}
