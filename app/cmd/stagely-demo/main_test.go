package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/stagely/stagely/app/apptest"
)

// testVersion is stamped into the binaries TestMain builds, through the Dockerfiles' own
// VERSION build argument.
const testVersion = "v0.0.0-demotest"

// built holds the binaries the tests run and the version stamped into them. TestMain builds
// them with the Dockerfiles' `go build` lines, so the demo exercises exactly what the images
// carry; or it takes the ones `make build` made (apptest.RunWithBinaries), which
// TestMakefile_BuildsTheBinariesAsTheDockerfilesDo holds to the same lines.
var built apptest.Binaries

func TestMain(m *testing.M) {
	os.Exit(apptest.RunWithBinaries(m, &built, func(dir string) (apptest.Binaries, error) {
		b := apptest.Binaries{Version: testVersion}
		var err error
		if b.Server, err = buildFromDockerfile("Dockerfile.server", dir); err != nil {
			return b, err
		}
		b.Agent, err = buildFromDockerfile("Dockerfile.agent", dir)
		return b, err
	}))
}

// repoRoot is the checkout, seen from this package's directory.
func repoRoot() string { return filepath.Join("..", "..", "..") }

// buildFromDockerfile runs the build stage's `go build` of deploy/<name> on this machine,
// with the same environment words and flags, writing the binary into dir.
func buildFromDockerfile(name, dir string) (string, error) {
	df, err := readDockerfile(filepath.Join(repoRoot(), "deploy", name))
	if err != nil {
		return "", err
	}
	b, err := df.buildCommand(map[string]string{"VERSION": testVersion})
	if err != nil {
		return "", err
	}
	src, err := b.hostDir(repoRoot())
	if err != nil {
		return "", fmt.Errorf("%s: %w", name, err)
	}
	out := filepath.Join(dir, filepath.Base(b.output))
	args := append([]string(nil), b.args...)
	for i := range args {
		if i > 0 && args[i-1] == "-o" {
			args[i] = out
		}
	}
	cmd := exec.Command("go", args...)
	cmd.Dir = src
	cmd.Env = append(os.Environ(), b.env...)
	if msg, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("%s: go %v in %s: %v\n%s", name, args, src, err, msg)
	}
	return out, nil
}
