package main

import (
	"bytes"
	"debug/elf"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// The images cannot be built here (no registry for the base images); these tests check what
// can be: the binaries the Dockerfiles build (TestMain built them with the Dockerfiles' own
// `go build` lines, or took make build's, made with the same lines), that the runtime stages
// copy and run exactly those, the compose file and the systemd unit.

func TestDockerfiles_BuildStaticBinariesWithVersionAndHelp(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ name, bin, helpWord string }{
		{"stagely-server", built.Server, "STAGELY_DATABASE_URL"},
		{"stagely-agent", built.Agent, "STAGELY_SERVER_URL"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f, err := elf.Open(tc.bin)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			for _, p := range f.Progs {
				if p.Type == elf.PT_INTERP {
					t.Errorf("%s is dynamically linked; distroless/static and docker:cli (musl) need a static binary", tc.name)
				}
			}
			out, err := exec.Command(tc.bin, "--version").CombinedOutput()
			if err != nil || strings.TrimSpace(string(out)) != tc.name+" "+built.Version {
				t.Errorf("--version: %v %q, want %q", err, out, tc.name+" "+built.Version)
			}
			out, err = exec.Command(tc.bin, "--help").CombinedOutput()
			if err != nil || !strings.Contains(string(out), tc.helpWord) {
				t.Errorf("--help: %v, output lacks %s:\n%s", err, tc.helpWord, out)
			}
		})
	}
}

func TestDockerfiles_RuntimeStageRunsTheBinaryTheBuildStageMade(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ file, base string }{
		{"Dockerfile.server", "gcr.io/distroless/static-debian12:nonroot"},
		{"Dockerfile.agent", "docker:27-cli"},
	} {
		t.Run(tc.file, func(t *testing.T) {
			t.Parallel()
			df, err := readDockerfile(filepath.Join(repoRoot(), "deploy", tc.file))
			if err != nil {
				t.Fatal(err)
			}
			b, err := df.buildCommand(map[string]string{"VERSION": testVersion})
			if err != nil {
				t.Fatal(err)
			}
			final := df.final()
			if final.from != tc.base {
				t.Errorf("runtime stage FROM %s, want %s", final.from, tc.base)
			}
			var dest, entry string
			for _, in := range final.instrs {
				switch in.op {
				case "COPY":
					f := strings.Fields(in.args)
					if len(f) == 3 && f[0] == "--from=build" && f[1] == b.output {
						dest = f[2]
					}
				case "ENTRYPOINT":
					entry = in.args
				}
			}
			if dest == "" {
				t.Fatalf("the runtime stage does not COPY --from=build %s", b.output)
			}
			if !strings.HasPrefix(entry, `["`+dest+`"`) {
				t.Errorf("ENTRYPOINT %s does not run %s", entry, dest)
			}
			if env := strings.Join(b.env, " "); !strings.Contains(env, "CGO_ENABLED=0") {
				t.Errorf("go build runs with %q, want CGO_ENABLED=0", env)
			}
			if args := strings.Join(b.args, " "); !strings.Contains(args, "-trimpath") || !strings.Contains(args, "-X main.version="+testVersion) {
				t.Errorf("go build %s: want -trimpath and the VERSION build argument stamped", args)
			}
		})
	}
}

func TestDockerfileAgent_ImageChecksItHasDockerAndCompose(t *testing.T) {
	t.Parallel()
	df, err := readDockerfile(filepath.Join(repoRoot(), "deploy", "Dockerfile.agent"))
	if err != nil {
		t.Fatal(err)
	}
	var checked bool
	for _, in := range df.final().instrs {
		checked = checked || (in.op == "RUN" && strings.Contains(in.args, "docker compose version"))
	}
	if !checked {
		t.Error("the agent image's build does not run `docker compose version`, so an image without the plugin would build")
	}
}

// The server offers self-update only with the agents' VERSION beside them: the image must
// write the one it stamps, and never take a developer's from the build context.
func TestDockerfileServer_AgentsStageWritesTheVersionItStamps(t *testing.T) {
	t.Parallel()
	df, err := readDockerfile(filepath.Join(repoRoot(), "deploy", "Dockerfile.server"))
	if err != nil {
		t.Fatal(err)
	}
	st, err := df.stage("agents")
	if err != nil {
		t.Fatal(err)
	}
	vars := map[string]string{}
	wrote := false
	for _, in := range st.instrs {
		switch in.op {
		case "ARG":
			k, v, _ := strings.Cut(in.args, "=")
			vars[k] = v
			if k == "VERSION" {
				vars[k] = testVersion
			}
		case "RUN":
			// shellWords takes no redirection: split it off first.
			cmd, target, _ := strings.Cut(in.args, " >")
			words, err := shellWords(cmd, vars)
			wrote = wrote || err == nil && target == "/out/VERSION" && slices.Equal(words, []string{"echo", testVersion})
		}
	}
	if !wrote {
		t.Error(`the agents stage does not RUN echo "${VERSION}" >/out/VERSION`)
	}
	ignore, err := os.ReadFile(filepath.Join(repoRoot(), "deploy", "Dockerfile.server.dockerignore"))
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(string(ignore), "\n")
	for _, want := range []string{"app/agentdist/dist/stagely-agent-*", "app/agentdist/dist/VERSION"} {
		if !slices.Contains(lines, want) {
			t.Errorf("Dockerfile.server.dockerignore lacks %s", want)
		}
	}
}

// A container is updated by pulling a new image; a self-update would replace the binary in
// its writable layer, lost at the next start. The bootstrap exchange writes /etc/stagely.
func TestDockerfileAgent_SelfUpdateOffAndConfigDirWritable(t *testing.T) {
	t.Parallel()
	path := filepath.Join(repoRoot(), "deploy", "Dockerfile.agent")
	df, err := readDockerfile(path)
	if err != nil {
		t.Fatal(err)
	}
	var off bool
	for _, in := range df.final().instrs {
		off = off || in.op == "ENV" && in.args == "STAGELY_SELF_UPDATE=off"
	}
	if !off {
		t.Error("the agent image does not set ENV STAGELY_SELF_UPDATE=off")
	}
	for _, doc := range []string{path, filepath.Join(repoRoot(), "docs", "agents.md"), filepath.Join(repoRoot(), "docs", "production.md")} {
		b, err := os.ReadFile(doc)
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(b, []byte("/etc/stagely:/etc/stagely:ro")) {
			t.Errorf("%s mounts /etc/stagely read-only; the bootstrap exchange writes config.json there", doc)
		}
	}
}

func TestBinaries_RefuseMissingOrMalformedConfiguration(t *testing.T) {
	t.Parallel()
	badConfig := filepath.Join(t.TempDir(), "config.json")
	if err := os.WriteFile(badConfig, []byte(`{"server-url": "https://x"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		bin  string
		args []string
		env  []string
		want string
	}{
		{"server without a database URL", built.Server, nil, nil, "STAGELY_DATABASE_URL"},
		{"server with a short secret key", built.Server, nil, []string{"STAGELY_DATABASE_URL=postgres://x@127.0.0.1:1/x", "STAGELY_SECRET_KEY=c2hvcnQ="}, "STAGELY_SECRET_KEY"},
		{"agent with a missing --config file", built.Agent, []string{"--config", "/nonexistent/config.json"}, nil, "config"},
		{"agent with an unknown key in config.json", built.Agent, []string{"--config", badConfig}, nil, "server-url"},
		{"agent with an unknown flag", built.Agent, []string{"--bogus"}, nil, "bogus"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cmd := exec.Command(tc.bin, tc.args...)
			cmd.Env = append([]string{"PATH=" + os.Getenv("PATH")}, tc.env...)
			out, err := cmd.CombinedOutput()
			if err == nil {
				t.Fatalf("started although misconfigured:\n%s", out)
			}
			if !strings.Contains(string(out), tc.want) {
				t.Errorf("message does not name %s:\n%s", tc.want, out)
			}
		})
	}
}

func TestCompose_ValidWithSettingsAndRefusedWithout(t *testing.T) {
	t.Parallel()
	file := filepath.Join(repoRoot(), "deploy", "docker-compose.yml")
	env := filepath.Join(t.TempDir(), "stagely.env")
	example, err := os.ReadFile(filepath.Join(repoRoot(), "deploy", "stagely.env.example"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(env, example, 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("docker", "compose", "-f", file, "--env-file", env, "--profile", "tls", "config").CombinedOutput()
	if err != nil {
		t.Fatalf("docker compose config with the example settings: %v\n%s", err, out)
	}
	for _, want := range []string{"image: postgres:15", "dockerfile: deploy/Dockerfile.server", "condition: service_healthy", "image: caddy:2", "STAGELY_PUBLIC_URL: https://stagely.example.com"} {
		if !bytes.Contains(out, []byte(want)) {
			t.Errorf("resolved config lacks %q:\n%s", want, out)
		}
	}
	// Compose names one missing required variable, not always the same one (it walks a map),
	// so any of them will do, as long as the refusal says where to set it.
	out, err = exec.Command("docker", "compose", "-f", file, "--env-file", os.DevNull, "config", "-q").CombinedOutput()
	named := false
	for _, v := range []string{"POSTGRES_PASSWORD", "STAGELY_SECRET_KEY", "STAGELY_PUBLIC_URL"} {
		named = named || bytes.Contains(out, []byte("set "+v+" in deploy/.env"))
	}
	if err == nil || !named {
		t.Errorf("without settings: %v, want a refusal naming a required setting and deploy/.env:\n%s", err, out)
	}
}

func TestSystemdUnit_VerifiesWithTheBuiltAgent(t *testing.T) {
	t.Parallel()
	unit, err := os.ReadFile(filepath.Join(repoRoot(), "deploy", "stagely-agent.service"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"Restart=always", "TimeoutStopSec=180", "ExecStart=/usr/local/bin/stagely-agent --config /etc/stagely/config.json"} {
		if !bytes.Contains(unit, []byte(want)) {
			t.Errorf("unit lacks %s", want)
		}
	}
	// ProtectSystem=full makes /etc and /usr read-only; the agent writes its config directory
	// (the bootstrap exchange) and its binary's (self-update).
	if !bytes.Contains(unit, []byte("\nProtectSystem=full\n")) {
		t.Error("unit lacks ProtectSystem=full, which the writable paths below are for")
	}
	writable := unitValues(unit, "ReadWritePaths")
	for _, dir := range []string{"/etc/stagely", "/usr/local/bin"} {
		if !slices.Contains(writable, dir) && !slices.Contains(writable, "-"+dir) {
			t.Errorf("the agent cannot write %s under ProtectSystem: ReadWritePaths are %q", dir, writable)
		}
	}
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Fatalf("systemd-analyze is needed to check the unit (apt-get install systemd): %v", err)
	}
	// verify insists that ExecStart exists, so point it at the agent the Dockerfile builds.
	path := filepath.Join(t.TempDir(), "stagely-agent.service")
	if err := os.WriteFile(path, bytes.ReplaceAll(unit, []byte("/usr/local/bin/stagely-agent"), []byte(built.Agent)), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(analyze, "verify", path).CombinedOutput(); err != nil {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}
}

// unitValues lists the values of a systemd unit's key, each path of each line on its own.
func unitValues(unit []byte, key string) []string {
	var out []string
	for _, line := range strings.Split(string(unit), "\n") {
		if v, ok := strings.CutPrefix(line, key+"="); ok {
			out = append(out, strings.Fields(v)...)
		}
	}
	return out
}
