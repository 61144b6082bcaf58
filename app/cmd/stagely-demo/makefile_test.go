package main

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// makeVar is a $(NAME) reference in a Makefile line.
var makeVar = regexp.MustCompile(`\$\(([A-Z_]+)\)`)

// makeBuildCommands reads the `go build` lines of the Makefile's build target, with $(VAR)
// taken from the Makefile's own NAME := value lines and VERSION set to version. A leading
// `cd DIR &&` becomes the command's WORKDIR under /src, as the Dockerfiles copy the checkout
// there. The result is keyed by the binary's file name.
func makeBuildCommands(path, version string) (map[string]goBuild, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	vars := map[string]string{"VERSION": version}
	var recipe []string
	inBuild := false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if name, value, ok := strings.Cut(line, " := "); ok && !strings.HasPrefix(line, "\t") && name != "VERSION" {
			vars[name] = value
		}
		switch {
		case strings.HasPrefix(line, "build:"):
			inBuild = true
		case inBuild && strings.HasPrefix(line, "\t"):
			recipe = append(recipe, strings.TrimPrefix(line, "\t"))
		default:
			inBuild = false
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	out := map[string]goBuild{}
	for _, line := range recipe {
		if strings.HasPrefix(line, "#") {
			continue // a comment the shell skips; its words need not parse
		}
		// Twice: LDFLAGS holds $(VERSION).
		for range 2 {
			line = makeVar.ReplaceAllStringFunc(line, func(ref string) string { return vars[makeVar.FindStringSubmatch(ref)[1]] })
		}
		b := goBuild{workdir: "/src"}
		if cd, rest, ok := strings.Cut(line, " && "); ok && strings.HasPrefix(cd, "cd ") {
			b.workdir, line = "/src/"+strings.TrimPrefix(cd, "cd "), rest
		}
		words, err := shellWords(line, nil)
		if err != nil {
			return nil, fmt.Errorf("%s: %s: %w", path, line, err)
		}
		i := slices.Index(words, "go")
		if i < 0 || i+1 >= len(words) || words[i+1] != "build" {
			continue
		}
		b.env, b.args = words[:i], words[i+1:]
		if o := slices.Index(b.args, "-o"); o >= 0 && o+1 < len(b.args) {
			b.output = b.args[o+1]
		}
		out[filepath.Base(b.output)] = b
	}
	return out, nil
}

// withoutOutput is args with the -o path left out, where the Makefile and an image differ.
func withoutOutput(args []string) []string {
	o := slices.Index(args, "-o")
	if o < 0 || o+1 >= len(args) {
		return args
	}
	return slices.Concat(args[:o], args[o+2:])
}

// The tests may run the binaries `make build` made instead of building them from the
// Dockerfiles (STAGELY_SERVER_BIN, STAGELY_AGENT_BIN): that is the same test only while the
// Makefile builds them as the images do.
func TestMakefile_BuildsTheBinariesAsTheDockerfilesDo(t *testing.T) {
	t.Parallel()
	mk, err := makeBuildCommands(filepath.Join(repoRoot(), "Makefile"), testVersion)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"Dockerfile.server", "Dockerfile.agent"} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			df, err := readDockerfile(filepath.Join(repoRoot(), "deploy", name))
			if err != nil {
				t.Fatal(err)
			}
			img, err := df.buildCommand(map[string]string{"VERSION": testVersion})
			if err != nil {
				t.Fatal(err)
			}
			bin := filepath.Base(img.output)
			got, ok := mk[bin]
			if !ok {
				t.Fatalf("make build does not build %s", bin)
			}
			if got.workdir != img.workdir || !slices.Equal(got.env, img.env) || !slices.Equal(withoutOutput(got.args), withoutOutput(img.args)) {
				t.Errorf("make build runs %v go %q in %s;\n%s runs %v go %q in %s", got.env, got.args, got.workdir, name, img.env, img.args, img.workdir)
			}
		})
	}
}
