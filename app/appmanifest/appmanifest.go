// Package appmanifest renders app-manifest.yml into the JSON GitHub's manifest flow takes.
package appmanifest

import (
	"encoding/json"
	"fmt"
	"net/url"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/stagely/stagely"
)

// Manifest is the GitHub App manifest, with the keys GitHub documents.
type Manifest struct {
	Name                  string            `yaml:"name,omitempty" json:"name,omitempty"`
	URL                   string            `yaml:"url" json:"url"`
	Description           string            `yaml:"description,omitempty" json:"description,omitempty"`
	Public                bool              `yaml:"public" json:"public"`
	HookAttributes        HookAttributes    `yaml:"hook_attributes" json:"hook_attributes"`
	RedirectURL           string            `yaml:"redirect_url" json:"redirect_url"`
	CallbackURLs          []string          `yaml:"callback_urls" json:"callback_urls"`
	SetupURL              string            `yaml:"setup_url" json:"setup_url"`
	SetupOnUpdate         bool              `yaml:"setup_on_update" json:"setup_on_update"`
	RequestOAuthOnInstall bool              `yaml:"request_oauth_on_install" json:"request_oauth_on_install"`
	DefaultPermissions    map[string]string `yaml:"default_permissions" json:"default_permissions"`
	DefaultEvents         []string          `yaml:"default_events" json:"default_events"`
}

// HookAttributes configures the App's webhook.
type HookAttributes struct {
	URL    string `yaml:"url" json:"url"`
	Active bool   `yaml:"active" json:"active"`
}

// Render fills the template with publicURL (no trailing slash needed) and parses it strictly.
func Render(publicURL string) (Manifest, error) {
	u, err := url.Parse(publicURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return Manifest{}, fmt.Errorf("render app manifest: public URL %q is not an http(s) URL", publicURL)
	}
	base := strings.TrimRight(u.String(), "/")
	text := strings.ReplaceAll(string(stagely.AppManifestTemplate()), "${PUBLIC_URL}", base)
	dec := yaml.NewDecoder(strings.NewReader(text))
	dec.KnownFields(true)
	var m Manifest
	if err := dec.Decode(&m); err != nil {
		return Manifest{}, fmt.Errorf("parse app-manifest.yml: %w", err)
	}
	return m, nil
}

// deliveredToEveryApp are the events GitHub sends every App without a subscription
// (GitHub's "Webhook events and payloads": "GitHub Apps receive this event by default").
var deliveredToEveryApp = []string{"installation", "installation_repositories", "installation_target", "github_app_authorization", "meta"}

// Events returns the events the App receives: those it subscribes to and those GitHub sends
// every App.
func (m Manifest) Events() []string {
	return append(append([]string(nil), m.DefaultEvents...), deliveredToEveryApp...)
}

// JSON is the manifest as GitHub's form field `manifest` wants it.
func (m Manifest) JSON() ([]byte, error) { return json.Marshal(m) }
