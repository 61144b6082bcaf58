// Package stagely carries the files that live at the top of the repository but are needed
// inside the server binary.
package stagely

import (
	"bytes"
	_ "embed" // app-manifest.yml is embedded below
)

//go:embed app-manifest.yml
var appManifest []byte

// AppManifestTemplate returns app-manifest.yml as written, ${PUBLIC_URL} placeholders included.
func AppManifestTemplate() []byte { return bytes.Clone(appManifest) }

//go:embed deploy/stagely-agent.service
var agentUnit []byte

// AgentUnit returns the agent's systemd unit, deploy/stagely-agent.service, which /install.sh
// installs.
func AgentUnit() []byte { return bytes.Clone(agentUnit) }
