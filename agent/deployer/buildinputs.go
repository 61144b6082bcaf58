package deployer

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/moby/patternmatcher"
	"github.com/moby/patternmatcher/ignorefile"
)

// buildSpec is the part of a service's resolved `build:` that decides whether its inputs
// can be read from this machine alone.
type buildSpec struct {
	Context            string          `json:"context"`
	Dockerfile         string          `json:"dockerfile"`
	DockerfileInline   string          `json:"dockerfile_inline"`
	AdditionalContexts json.RawMessage `json:"additional_contexts"`
	Secrets            json.RawMessage `json:"secrets"`
	SSH                json.RawMessage `json:"ssh"`
	Pull               bool            `json:"pull"`
	NoCache            bool            `json:"no_cache"`
}

// errUnknowable says a build's inputs reach beyond the build context and the local images
// (a remote context, a base image that is not local, pull: true, build secrets…): such a
// service is always built.
var errUnknowable = errors.New("the build's inputs are not all on this machine")

// imageIDs resolves an image reference to the id of the local image, "" when there is none.
type imageIDs func(ctx context.Context, ref string) (string, error)

// buildInputs is the digest of everything `docker compose build` of one service reads: its
// resolved build section (context, dockerfile, args, target, labels, …), the image name,
// the Dockerfile, every file of the context the .dockerignore keeps (path, type, mode,
// owner, content; not the modification time, which the build cache ignores too) and the
// ids of the local images its Dockerfile builds FROM or copies from. Two builds with the
// same digest see the same inputs, so the second would only repeat cached steps and make
// the same image.
func buildInputs(ctx context.Context, spec []byte, ref string, image imageIDs) (string, error) {
	var bs buildSpec
	if err := json.Unmarshal(spec, &bs); err != nil {
		return "", fmt.Errorf("read the build section: %w", err)
	}
	if bs.Pull || bs.NoCache || !emptyJSON(bs.AdditionalContexts) || !emptyJSON(bs.Secrets) || !emptyJSON(bs.SSH) ||
		!filepath.IsAbs(bs.Context) || strings.Contains(bs.Context, "://") {
		return "", errUnknowable
	}
	if fi, err := os.Stat(bs.Context); err != nil || !fi.IsDir() {
		return "", errUnknowable
	}
	h := sha256.New()
	fmt.Fprintf(h, "spec %d %s\nimage %q\n", len(spec), spec, ref)
	dockerfile := []byte(bs.DockerfileInline)
	ignoreFile := ""
	if bs.DockerfileInline == "" {
		name := bs.Dockerfile
		if name == "" {
			name = "Dockerfile"
		}
		if !filepath.IsAbs(name) {
			name = filepath.Join(bs.Context, name)
		}
		b, err := os.ReadFile(name)
		if err != nil {
			return "", fmt.Errorf("read the Dockerfile: %w", err)
		}
		dockerfile, ignoreFile = b, name+".dockerignore"
	}
	fmt.Fprintf(h, "dockerfile %d %s\n", len(dockerfile), dockerfile)
	refs, ok := dockerfileImages(string(dockerfile))
	if !ok {
		return "", errUnknowable
	}
	for _, r := range refs {
		id, err := image(ctx, r)
		if err != nil {
			return "", err
		}
		if id == "" {
			// The build would pull it, and what it pulls is not known here.
			return "", errUnknowable
		}
		fmt.Fprintf(h, "from %q %s\n", r, id)
	}
	ign, err := readDockerignore(bs.Context, ignoreFile)
	if err != nil {
		return "", err
	}
	if err := hashTree(h, bs.Context, ign); err != nil {
		return "", fmt.Errorf("read the build context %s: %w", bs.Context, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

func emptyJSON(raw json.RawMessage) bool {
	s := strings.TrimSpace(string(raw))
	return s == "" || s == "null" || s == "{}" || s == "[]"
}

// hashTree writes into h every entry under root the ignore rules keep, in lexical order.
func hashTree(h hash.Hash, root string, ign *dockerignore) error {
	return filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(root, path)
		if err != nil || rel == "." {
			return err
		}
		rel = filepath.ToSlash(rel)
		if ign.excludes(rel) {
			if d.IsDir() && !ign.exceptions() {
				return filepath.SkipDir
			}
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		var uid, gid uint32
		if st, ok := fi.Sys().(*syscall.Stat_t); ok {
			uid, gid = st.Uid, st.Gid
		}
		fmt.Fprintf(h, "entry %q %v %d %d %d\n", rel, fi.Mode(), uid, gid, fi.Size())
		switch {
		case fi.Mode()&fs.ModeSymlink != 0:
			target, err := os.Readlink(path)
			if err != nil {
				return err
			}
			fmt.Fprintf(h, "link %q\n", target)
		case fi.Mode().IsRegular():
			f, err := os.Open(path)
			if err != nil {
				return err
			}
			defer f.Close()
			if _, err := io.Copy(h, f); err != nil {
				return err
			}
		}
		return nil
	})
}

// dockerfileImages returns the images a Dockerfile builds FROM or copies --from, without
// its own stages and scratch. ok is false when they cannot be told from the text alone
// (a variable in a FROM, an escape directive, ADD of a URL, a RUN mount from an image).
func dockerfileImages(df string) (refs []string, ok bool) {
	stages := map[string]bool{}
	for _, line := range instructions(df) {
		f := strings.Fields(line)
		switch strings.ToUpper(f[0]) {
		case "FROM":
			args := withoutFlags(f[1:])
			if len(args) == 0 || strings.Contains(args[0], "$") {
				return nil, false
			}
			if img := strings.ToLower(args[0]); !stages[img] && img != "scratch" {
				refs = append(refs, args[0])
			}
			if len(args) >= 3 && strings.EqualFold(args[1], "as") {
				stages[strings.ToLower(args[2])] = true
			}
		case "COPY", "ADD":
			for _, a := range f[1:] {
				if from, found := strings.CutPrefix(a, "--from="); found {
					if strings.Contains(from, "$") {
						return nil, false
					}
					if _, err := strconv.Atoi(from); err != nil && !stages[strings.ToLower(from)] {
						refs = append(refs, from)
					}
				}
				if !strings.HasPrefix(a, "--") && strings.EqualFold(f[0], "ADD") && (strings.Contains(a, "://") || strings.HasPrefix(a, "git@")) {
					return nil, false
				}
			}
		case "RUN":
			if strings.Contains(line, "--mount") && strings.Contains(line, "from=") {
				return nil, false
			}
		}
	}
	return refs, true
}

// instructions splits a Dockerfile into its instructions, continuation lines joined and
// comments dropped. An escape directive makes it return one unknowable instruction.
func instructions(df string) []string {
	var out []string
	var cur strings.Builder
	sc := bufio.NewScanner(strings.NewReader(df))
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	for sc.Scan() {
		l := strings.TrimSpace(sc.Text())
		if strings.HasPrefix(l, "#") {
			if d := strings.ToLower(strings.ReplaceAll(l, " ", "")); strings.HasPrefix(d, "#escape=") && len(out) == 0 && cur.Len() == 0 {
				return []string{"FROM $escape"}
			}
			continue
		}
		if l == "" && cur.Len() == 0 {
			continue
		}
		if body, more := strings.CutSuffix(l, `\`); more {
			cur.WriteString(body + " ")
			continue
		}
		cur.WriteString(l)
		if s := strings.TrimSpace(cur.String()); s != "" {
			out = append(out, s)
		}
		cur.Reset()
	}
	if s := strings.TrimSpace(cur.String()); s != "" {
		out = append(out, s)
	}
	return out
}

func withoutFlags(args []string) []string {
	for len(args) > 0 && strings.HasPrefix(args[0], "--") {
		args = args[1:]
	}
	return args
}

// dockerignore is a build context's .dockerignore, read and matched by the library Docker
// itself uses (github.com/moby/patternmatcher), so the hash sees exactly the files a build
// is sent. A nil matcher keeps every file.
type dockerignore struct {
	pm *patternmatcher.PatternMatcher
}

// readDockerignore reads the context's .dockerignore. A Dockerfile-specific ignore file
// (perDockerfile, which BuildKit prefers) makes it keep every file: hashing more than the
// build reads only costs a build that was not needed.
func readDockerignore(context, perDockerfile string) (*dockerignore, error) {
	if perDockerfile != "" {
		if _, err := os.Stat(perDockerfile); err == nil {
			return &dockerignore{}, nil
		}
	}
	b, err := os.ReadFile(filepath.Join(context, ".dockerignore"))
	if errors.Is(err, fs.ErrNotExist) {
		return &dockerignore{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read .dockerignore: %w", err)
	}
	return parseDockerignore(string(b)), nil
}

// parseDockerignore reads the patterns as BuildKit does. A file Docker would refuse keeps
// every file: hashing more than the build reads only costs a build that was not needed.
func parseDockerignore(text string) *dockerignore {
	patterns, err := ignorefile.ReadAll(strings.NewReader(text))
	if err != nil {
		return &dockerignore{}
	}
	pm, err := patternmatcher.New(patterns)
	if err != nil {
		return &dockerignore{}
	}
	return &dockerignore{pm: pm}
}

// exceptions says whether some pattern keeps files back, so an excluded folder must still
// be walked.
func (ign *dockerignore) exceptions() bool { return ign.pm != nil && ign.pm.Exclusions() }

// excludes reports whether the build context leaves rel (slash-separated) out.
func (ign *dockerignore) excludes(rel string) bool {
	if ign.pm == nil {
		return false
	}
	// An error is a pattern the matcher cannot apply: keeping the file is the safe reading.
	m, err := ign.pm.MatchesOrParentMatches(rel)
	return err == nil && m
}
