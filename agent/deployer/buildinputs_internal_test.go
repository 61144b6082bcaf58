package deployer

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

func TestDockerignore_MatchesAsDockerDoes(t *testing.T) {
	t.Parallel()
	tests := []struct {
		ignore string
		path   string
		want   bool
	}{
		{"*.md", "README.md", true},
		{"*.md", "docs/README.md", false},
		{"**/*.md", "docs/README.md", true},
		{"docs", "docs/a/b.txt", true},
		{"/docs/", "docs/a.txt", true},
		{"docs/**", "docs/a/b.txt", true},
		{"node_modules\n!node_modules/keep.js", "node_modules/keep.js", false},
		{"node_modules\n!node_modules/keep.js", "node_modules/other.js", true},
		{"# a comment\n\n  tmp  ", "tmp/x", true},
		{"#tmp", "#tmp", false},
		{"a?c", "abc", true},
		{"a?c", "a/c", false},
		{"[ab].txt", "b.txt", true},
		{"a.b", "axb", false},
		{"*", "anything/below", true},
	}
	for _, tt := range tests {
		if got := parseDockerignore(tt.ignore).excludes(tt.path); got != tt.want {
			t.Errorf("%q excludes %q = %v, want %v", tt.ignore, tt.path, got, tt.want)
		}
	}
}

func TestDockerfileImages_NamesTheImagesABuildReads(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		df   string
		want []string
		ok   bool
	}{
		{"one stage", "FROM node:20\nRUN npm ci\n", []string{"node:20"}, true},
		{"stages and scratch", "# syntax=docker/dockerfile:1\nFROM --platform=linux/amd64 golang:1.26 AS build\nRUN go build\nFROM scratch\nCOPY --from=build /app /app\n", []string{"golang:1.26"}, true},
		{"copy from an image", "FROM alpine\nCOPY --from=nginx:1 /etc/nginx /etc/nginx\nCOPY --from=0 /x /y\n", []string{"alpine", "nginx:1"}, true},
		{"continuation lines", "FROM \\\n  alpine:3 \\\n  AS base\nFROM base\n", []string{"alpine:3"}, true},
		{"a variable in FROM", "ARG BASE=alpine\nFROM $BASE\n", nil, false},
		{"ADD of a URL", "FROM alpine\nADD https://example.com/x.tgz /x\n", nil, false},
		{"a RUN mount from an image", "FROM alpine\nRUN --mount=type=bind,from=tools,target=/t ls\n", nil, false},
		{"an escape directive", "# escape=`\nFROM alpine\n", nil, false},
	}
	for _, tt := range tests {
		got, ok := dockerfileImages(tt.df)
		if ok != tt.ok || !slices.Equal(got, tt.want) {
			t.Errorf("%s: dockerfileImages = %v, %v; want %v, %v", tt.name, got, ok, tt.want, tt.ok)
		}
	}
}

func TestBuildInputs_ChangeWithWhatTheBuildReadsOnly(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	write := func(rel, content string) {
		t.Helper()
		p := filepath.Join(dir, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("Dockerfile", "FROM base:1\nCOPY . /app\n")
	write(".dockerignore", "*.md\n")
	write("app.txt", "v1")
	write("notes.md", "v1")
	baseID := "sha256:one"
	images := func(_ context.Context, ref string) (string, error) {
		if ref == "base:1" {
			return baseID, nil
		}
		return "", nil
	}
	spec := []byte(`{"context":"` + dir + `","dockerfile":"Dockerfile"}`)
	digest := func() string {
		t.Helper()
		d, err := buildInputs(context.Background(), spec, "shop-api", images)
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	first := digest()
	steps := []struct {
		name    string
		do      func()
		changes bool
	}{
		{"nothing", func() {}, false},
		{"an ignored file", func() { write("notes.md", "v2") }, false},
		{"a kept file", func() { write("app.txt", "v2") }, true},
		{"a new file", func() { write("sub/new.txt", "x") }, true},
		{"the mode of a file", func() { _ = os.Chmod(filepath.Join(dir, "app.txt"), 0o755) }, true},
		{"the Dockerfile", func() { write("Dockerfile", "FROM base:1\nCOPY . /srv\n") }, true},
		{"the base image", func() { baseID = "sha256:two" }, true},
		{"a build arg", func() { spec = []byte(`{"context":"` + dir + `","dockerfile":"Dockerfile","args":{"A":"1"}}`) }, true},
	}
	prev := first
	for _, st := range steps {
		st.do()
		got := digest()
		if (got != prev) != st.changes {
			t.Errorf("%s: digest changed %v, want %v", st.name, got != prev, st.changes)
		}
		prev = got
	}
	baseID = ""
	if _, err := buildInputs(context.Background(), spec, "shop-api", images); !errors.Is(err, errUnknowable) {
		t.Errorf("a base image that is not local: err = %v, want errUnknowable", err)
	}
	for _, s := range []string{`{"context":"https://github.com/acme/shop.git"}`, `{"context":"` + dir + `","pull":true}`, `{"context":"` + dir + `","secrets":[{"source":"npm"}]}`} {
		if _, err := buildInputs(context.Background(), []byte(s), "shop-api", images); !errors.Is(err, errUnknowable) {
			t.Errorf("%s: err = %v, want errUnknowable", s, err)
		}
	}
}
