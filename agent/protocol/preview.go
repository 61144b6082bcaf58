package protocol

// FeaturePreviews in HELLO's features says the agent runs pull request previews: it
// isolates a preview's compose project, routes its host names through Caddy, and tears it
// down on request. The server sends a DEPLOY with Preview set only to such an agent.
const FeaturePreviews = "previews"

// Preview makes a DEPLOY a pull request's preview (docs/previews.md). The agent deploys it
// as its own compose project with host port bindings removed and container_name refused,
// and after a healthy swap points each route's host at its service through Caddy. With
// Stop set the job tears the preview down instead: routes removed, `down --volumes
// --remove-orphans`, its files deleted; the job's source, config and secrets are then unused.
type Preview struct {
	// Number is the pull request's number.
	Number int `json:"number"`
	// Stop asks for the teardown.
	Stop bool `json:"stop,omitempty"`
	// Routes are the preview's public host names; empty when no service gets a URL.
	Routes []PreviewRoute `json:"routes,omitempty"`
	// Shared lists what the preview may share with production, from stagely.yaml's
	// preview.shared: names of external volumes and networks, containers named by
	// network_mode or volumes_from "container:<name>", and absolute host paths it binds
	// writable. Anything of these not listed makes the agent refuse the preview.
	Shared []string `json:"shared,omitempty"`
}

// PreviewRoute sends one host name to one port of one service of the preview.
type PreviewRoute struct {
	// Host is the full host name, like web--pr-7--shop.preview.example.com.
	Host    string `json:"host"`
	Service string `json:"service"`
	// Port is the container port the service listens on.
	Port int `json:"port"`
}
