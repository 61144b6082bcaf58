package main

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// The packaging tests cannot build the images (no registry to pull base images from), so
// they read the Dockerfiles and run the very `go build` their build stage runs.

// dockerfile is what the tests need from a Dockerfile: its instructions per stage.
type dockerfile struct {
	path   string
	stages []stage
}

type stage struct {
	name   string // the "AS name" of FROM, or ""
	from   string
	instrs []instr
}

type instr struct {
	op   string // upper-case instruction: RUN, COPY, WORKDIR, ...
	args string
}

func readDockerfile(path string) (dockerfile, error) {
	f, err := os.Open(path)
	if err != nil {
		return dockerfile{}, err
	}
	defer f.Close()
	df := dockerfile{path: path}
	var logical strings.Builder
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if logical.Len() == 0 && (line == "" || strings.HasPrefix(line, "#")) {
			continue
		}
		if strings.HasPrefix(line, "#") { // a comment inside a continued instruction
			continue
		}
		if rest, ok := strings.CutSuffix(line, `\`); ok {
			logical.WriteString(rest + " ")
			continue
		}
		logical.WriteString(line)
		op, args, _ := strings.Cut(logical.String(), " ")
		logical.Reset()
		in := instr{op: strings.ToUpper(op), args: strings.TrimSpace(args)}
		if in.op == "FROM" {
			fields := strings.Fields(in.args)
			st := stage{from: fields[0]}
			if len(fields) == 3 && strings.EqualFold(fields[1], "AS") {
				st.name = fields[2]
			}
			df.stages = append(df.stages, st)
			continue
		}
		if len(df.stages) == 0 {
			df.stages = append(df.stages, stage{name: "(global)"})
		}
		df.stages[len(df.stages)-1].instrs = append(df.stages[len(df.stages)-1].instrs, in)
	}
	return df, sc.Err()
}

func (df dockerfile) stage(name string) (stage, error) {
	for _, s := range df.stages {
		if s.name == name {
			return s, nil
		}
	}
	return stage{}, fmt.Errorf("%s has no stage %q", df.path, name)
}

func (df dockerfile) final() stage { return df.stages[len(df.stages)-1] }

// goBuild is the `go build` of a Dockerfile's build stage, its words expanded with the ARGs.
type goBuild struct {
	workdir string   // WORKDIR in the image, e.g. /src/agent
	env     []string // VAR=value words before `go`
	args    []string // the words after `go`
	output  string   // the -o path in the image
}

// buildCommand finds the one RUN of stage "build" that runs `go build`.
func (df dockerfile) buildCommand(buildArgs map[string]string) (goBuild, error) {
	st, err := df.stage("build")
	if err != nil {
		return goBuild{}, err
	}
	vars := map[string]string{}
	var b goBuild
	found := 0
	for _, in := range st.instrs {
		switch in.op {
		case "ARG":
			k, v, _ := strings.Cut(in.args, "=")
			vars[k] = v
			if o, ok := buildArgs[k]; ok {
				vars[k] = o
			}
		case "WORKDIR":
			b.workdir = in.args
		case "RUN":
			words, err := shellWords(in.args, vars)
			if err != nil {
				return goBuild{}, fmt.Errorf("%s: RUN %s: %w", df.path, in.args, err)
			}
			i := 0
			for i < len(words) && strings.Contains(words[i], "=") {
				i++
			}
			if i+1 >= len(words) || words[i] != "go" || words[i+1] != "build" {
				continue
			}
			found++
			b.env, b.args = words[:i], words[i+1:]
		}
	}
	if found != 1 {
		return goBuild{}, fmt.Errorf("%s: stage build has %d `go build` RUN lines, want 1", df.path, found)
	}
	for i, a := range b.args {
		if a == "-o" && i+1 < len(b.args) {
			b.output = b.args[i+1]
		}
	}
	if b.output == "" {
		return goBuild{}, fmt.Errorf("%s: go build has no -o", df.path)
	}
	return b, nil
}

// hostDir maps the build stage's WORKDIR to the checkout: the Dockerfiles copy the
// repository root to /src.
func (b goBuild) hostDir(repoRoot string) (string, error) {
	rel, ok := strings.CutPrefix(b.workdir, "/src")
	if !ok {
		return "", fmt.Errorf("build WORKDIR %q is not under /src", b.workdir)
	}
	return filepath.Join(repoRoot, filepath.FromSlash(rel)), nil
}

// shellWords splits a simple shell command line: words, double and single quotes, ${VAR}
// and $VAR from vars. Anything fancier (pipes, &&, subshells) is refused, which keeps the
// build line in the Dockerfiles plain enough to run here.
func shellWords(s string, vars map[string]string) ([]string, error) {
	var words []string
	var cur strings.Builder
	inWord := false
	quote := byte(0)
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case quote == '\'':
			if c == '\'' {
				quote = 0
			} else {
				cur.WriteByte(c)
			}
		case c == '\'' || c == '"':
			if quote == c {
				quote = 0
			} else if quote == 0 {
				quote, inWord = c, true
			} else {
				cur.WriteByte(c)
			}
		case c == '$':
			name := ""
			if i+1 < len(s) && s[i+1] == '{' {
				end := strings.IndexByte(s[i:], '}')
				if end < 0 {
					return nil, fmt.Errorf("unclosed ${")
				}
				name, i = s[i+2:i+end], i+end
			} else {
				j := i + 1
				for j < len(s) && (s[j] == '_' || s[j] >= 'A' && s[j] <= 'Z' || s[j] >= 'a' && s[j] <= 'z' || s[j] >= '0' && s[j] <= '9') {
					j++
				}
				name, i = s[i+1:j], j-1
			}
			v, ok := vars[name]
			if !ok {
				return nil, fmt.Errorf("variable %s is not an ARG of the stage", name)
			}
			cur.WriteString(v)
			inWord = true
		case quote == 0 && (c == ' ' || c == '\t'):
			if inWord {
				words = append(words, cur.String())
				cur.Reset()
				inWord = false
			}
		case quote == 0 && strings.IndexByte("|&;<>()`", c) >= 0:
			return nil, fmt.Errorf("shell operator %q: keep the go build RUN a single plain command", c)
		default:
			cur.WriteByte(c)
			inWord = true
		}
	}
	if quote != 0 {
		return nil, fmt.Errorf("unclosed quote")
	}
	if inWord {
		words = append(words, cur.String())
	}
	return words, nil
}
