// Package cloudinit renders the #cloud-config that turns a fresh Debian or Ubuntu server into
// a Stagely agent: Docker from the distribution, /etc/stagely/config.json, and the agent
// container.
package cloudinit

import (
	"encoding/json"
	"fmt"
	"net/url"
	"path"
	"strings"
	"unicode"

	"gopkg.in/yaml.v3"
)

// DefaultDataDir is where the agent keeps projects, releases and its journal.
const DefaultDataDir = "/var/lib/stagely"

// ConfigPath is where the agent reads its server URL and token.
const ConfigPath = "/etc/stagely/config.json"

// ContainerName names the agent container on the host.
const ContainerName = "stagely-agent"

// Params is what one agent's cloud-config needs.
type Params struct {
	// ServerURL is the control plane's public base URL (http or https); the agent dials <url>/agent/ws.
	ServerURL string
	// Token is the agent's bearer token; it lands only in the 0600 config file.
	Token string
	// AgentImage is the container image of stagely-agent.
	AgentImage string
	// DataDir is the agent's data directory, the same path on the host and in the container;
	// empty means DefaultDataDir.
	DataDir string
}

// cloudConfig is the subset of cloud-config we emit; field order is the order cloud-init
// users expect to read it in.
type cloudConfig struct {
	PackageUpdate bool        `yaml:"package_update"`
	Packages      []string    `yaml:"packages"`
	WriteFiles    []writeFile `yaml:"write_files"`
	RunCmd        []argv      `yaml:"runcmd"`
}

type writeFile struct {
	Path        string `yaml:"path"`
	Owner       string `yaml:"owner"`
	Permissions string `yaml:"permissions"`
	Content     string `yaml:"content"`
}

// argv is one command as a list, so cloud-init runs it without a shell; it is written in
// flow style ([docker, run, ...]) to keep the document readable when pasted.
type argv []string

// MarshalYAML encodes the command as a flow sequence of scalars the encoder quotes as needed.
func (a argv) MarshalYAML() (any, error) {
	n := &yaml.Node{Kind: yaml.SequenceNode, Style: yaml.FlowStyle}
	for _, s := range a {
		var item yaml.Node
		if err := item.Encode(s); err != nil {
			return nil, err
		}
		n.Content = append(n.Content, &item)
	}
	return n, nil
}

type agentConfig struct {
	ServerURL string `json:"server_url"`
	Token     string `json:"token"`
}

// Render returns the #cloud-config document for p, or an error naming the bad parameter.
// Every value goes through the YAML encoder, never string concatenation, so no token or URL
// can change the document's structure; commands are argv lists, so no shell parses them.
func Render(p Params) (string, error) {
	if p.DataDir == "" {
		p.DataDir = DefaultDataDir
	}
	if err := validate(p); err != nil {
		return "", err
	}
	cfg, err := json.Marshal(agentConfig{ServerURL: strings.TrimRight(p.ServerURL, "/"), Token: p.Token})
	if err != nil {
		return "", fmt.Errorf("encode agent config: %w", err)
	}
	run := []string{
		"docker", "run", "-d",
		"--name", ContainerName,
		"--restart", "unless-stopped",
		// Longer than the agent's 2 min shutdown grace: Docker's 10 s default would kill a deploy mid-way.
		"--stop-timeout", "180",
		"-v", "/var/run/docker.sock:/var/run/docker.sock",
		// Same path inside and out: compose runs on the host's engine, which resolves the
		// bind mounts of the projects the agent unpacks under this directory on the host.
		"-v", p.DataDir + ":" + p.DataDir,
		"-v", path.Dir(ConfigPath) + ":" + path.Dir(ConfigPath) + ":ro",
	}
	if p.DataDir != DefaultDataDir {
		run = append(run, "-e", "STAGELY_DATA_DIR="+p.DataDir)
	}
	run = append(run, p.AgentImage)

	doc := cloudConfig{
		PackageUpdate: true,
		Packages:      []string{"docker.io"},
		WriteFiles: []writeFile{{
			Path:        ConfigPath,
			Owner:       "root:root",
			Permissions: "0600",
			Content:     string(cfg) + "\n",
		}},
		RunCmd: []argv{
			{"systemctl", "enable", "--now", "docker"},
			{"mkdir", "-p", p.DataDir},
			run,
		},
	}
	var body strings.Builder
	body.WriteString("#cloud-config\n")
	enc := yaml.NewEncoder(&body)
	enc.SetIndent(2)
	if err := enc.Encode(doc); err != nil {
		return "", fmt.Errorf("encode cloud-config: %w", err)
	}
	if err := enc.Close(); err != nil {
		return "", fmt.Errorf("encode cloud-config: %w", err)
	}
	return body.String(), nil
}

func validate(p Params) error {
	u, err := url.Parse(p.ServerURL)
	switch {
	case p.ServerURL == "":
		return fmt.Errorf("cloud-init: server URL is empty: set STAGELY_PUBLIC_URL to the address agents dial")
	case err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" ||
		u.User != nil || u.RawQuery != "" || u.Fragment != "":
		return fmt.Errorf("cloud-init: server URL %q must be http(s)://host[/prefix] without credentials, query or fragment", p.ServerURL)
	}
	if p.Token == "" || strings.IndexFunc(p.Token, notPrintable) >= 0 {
		return fmt.Errorf("cloud-init: agent token is empty or holds whitespace or control characters")
	}
	if p.AgentImage == "" || strings.HasPrefix(p.AgentImage, "-") || strings.IndexFunc(p.AgentImage, notPrintable) >= 0 {
		return fmt.Errorf("cloud-init: agent image %q must be an image reference like ghcr.io/stagely/agent:latest", p.AgentImage)
	}
	if !path.IsAbs(p.DataDir) || path.Clean(p.DataDir) != p.DataDir || p.DataDir == "/" ||
		strings.ContainsAny(p.DataDir, ":,") || strings.IndexFunc(p.DataDir, notPrintable) >= 0 {
		return fmt.Errorf("cloud-init: data dir %q must be a clean absolute path other than / without ':' or ','", p.DataDir)
	}
	return nil
}

// notPrintable is true for whitespace and control characters, which have no place in a
// token, an image reference or a path handed to docker.
func notPrintable(r rune) bool { return unicode.IsSpace(r) || !unicode.IsPrint(r) }
