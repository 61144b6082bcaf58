// Package cloudinit renders the #cloud-config that turns a fresh server into a Stagely agent:
// it writes /etc/stagely/config.json and runs the control plane's own /install.sh, which
// installs Docker, the agent binary it serves and the systemd unit.
package cloudinit

import (
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
	"unicode"

	"gopkg.in/yaml.v3"
)

// ConfigPath is where the agent reads its server URL and token.
const ConfigPath = "/etc/stagely/config.json"

// installerPath is where the user data saves /install.sh before running it, so a failed
// download fails the command instead of feeding an empty script to sh.
const installerPath = "/run/stagely-install.sh"

// installCmd downloads and runs the installer; the server URL arrives as $1, so no shell
// ever parses it. The installer keeps the config.json written before it.
const installCmd = `curl -fsSL --retry 5 -o ` + installerPath + ` "$1/install.sh" && sh ` + installerPath

// Params is what one agent's cloud-config needs.
type Params struct {
	// ServerURL is the control plane's public base URL (http or https); the agent dials <url>/agent/ws.
	ServerURL string
	// Token is the agent's bearer token; it lands only in the 0600 config file.
	Token string
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
	if err := validate(p); err != nil {
		return "", err
	}
	serverURL := strings.TrimRight(p.ServerURL, "/")
	cfg, err := json.Marshal(agentConfig{ServerURL: serverURL, Token: p.Token})
	if err != nil {
		return "", fmt.Errorf("encode agent config: %w", err)
	}
	doc := cloudConfig{
		PackageUpdate: true,
		// curl fetches the installer; it installs Docker for the distribution it finds.
		Packages: []string{"curl"},
		WriteFiles: []writeFile{{
			Path:        ConfigPath,
			Owner:       "root:root",
			Permissions: "0600",
			Content:     string(cfg) + "\n",
		}},
		RunCmd: []argv{{"sh", "-c", installCmd, "stagely-install", serverURL}},
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
	return nil
}

// notPrintable is true for whitespace and control characters, which have no place in a token.
func notPrintable(r rune) bool { return unicode.IsSpace(r) || !unicode.IsPrint(r) }
