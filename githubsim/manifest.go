package githubsim

import (
	"encoding/json"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"time"
)

// manifestCodeTTL is GitHub's: "You must complete this step of the GitHub App Manifest flow within one hour."
const manifestCodeTTL = time.Hour

const docsManifest = "https://docs.github.com/apps/sharing-github-apps/registering-a-github-app-from-a-manifest"

// manifest is the GitHub App manifest as documented (app-manifest-params.md).
type manifest struct {
	Name           string `json:"name"`
	URL            string `json:"url"`
	HookAttributes *struct {
		URL    string `json:"url"`
		Active *bool  `json:"active"`
	} `json:"hook_attributes"`
	RedirectURL           string            `json:"redirect_url"`
	CallbackURLs          []string          `json:"callback_urls"`
	SetupURL              string            `json:"setup_url"`
	Description           string            `json:"description"`
	Public                bool              `json:"public"`
	DefaultEvents         []string          `json:"default_events"`
	DefaultPermissions    map[string]string `json:"default_permissions"`
	RequestOAuthOnInstall bool              `json:"request_oauth_on_install"`
	SetupOnUpdate         bool              `json:"setup_on_update"`
}

// newAppFromManifest is github.com/settings/apps/new: the person confirms at once, and GitHub
// redirects to the manifest's redirect_url with a temporary code and the state.
func (s *Sim) newAppFromManifest(w http.ResponseWriter, r *http.Request) {
	raw := r.FormValue("manifest")
	var m manifest
	switch {
	case raw == "":
		writeError(w, http.StatusUnprocessableEntity, "manifest parameter is required", docsManifest)
		return
	case json.Unmarshal([]byte(raw), &m) != nil:
		writeError(w, http.StatusUnprocessableEntity, "manifest is not valid JSON", docsManifest)
		return
	case m.URL == "":
		writeError(w, http.StatusUnprocessableEntity, "manifest: url is required", docsManifest)
		return
	case m.HookAttributes == nil || m.HookAttributes.URL == "":
		writeError(w, http.StatusUnprocessableEntity, "manifest: hook_attributes.url is required", docsManifest)
		return
	case len(m.CallbackURLs) > 10:
		writeError(w, http.StatusUnprocessableEntity, "manifest: up to 10 callback URLs are allowed", docsManifest)
		return
	case m.RedirectURL == "":
		// GitHub would show the new app's page; the simulator has nowhere to send the code.
		writeError(w, http.StatusUnprocessableEntity, "manifest: redirect_url is required by githubsim", docsManifest)
		return
	}
	target, err := url.Parse(m.RedirectURL)
	if err != nil || target.Scheme == "" {
		writeError(w, http.StatusUnprocessableEntity, "manifest: redirect_url is not a URL", docsManifest)
		return
	}
	code := randomHex(20)
	s.mu.Lock()
	s.st.manifestCodes[code] = &manifestCode{manifest: m, expiresAt: s.now().Add(manifestCodeTTL)}
	s.mu.Unlock()
	q := target.Query()
	q.Set("code", code)
	if st := r.URL.Query().Get("state"); st != "" {
		q.Set("state", st)
	}
	target.RawQuery = q.Encode()
	http.Redirect(w, r, target.String(), http.StatusFound)
}

var notSlug = regexp.MustCompile(`[^a-z0-9]+`)

// convertManifest is POST /app-manifests/{code}/conversions. The Sim has one App, so the conversion
// configures that App from the manifest and hands out its credentials; the code is single-use.
func (s *Sim) convertManifest(w http.ResponseWriter, r *http.Request) {
	code := r.PathValue("code")
	s.mu.Lock()
	defer s.mu.Unlock()
	mc := s.st.manifestCodes[code]
	if mc == nil || !s.now().Before(mc.expiresAt) {
		writeError(w, http.StatusNotFound, "Not Found", "https://docs.github.com/rest/apps/apps#create-a-github-app-from-a-manifest")
		return
	}
	delete(s.st.manifestCodes, code)
	m := mc.manifest
	a := &s.st.app
	if m.Name != "" {
		a.name = m.Name
		if slug := strings.Trim(notSlug.ReplaceAllString(strings.ToLower(m.Name), "-"), "-"); slug != "" {
			a.slug = slug
		}
	}
	a.description = m.Description
	a.externalURL = m.URL
	if m.HookAttributes.Active == nil || *m.HookAttributes.Active {
		a.webhookURL = m.HookAttributes.URL
	}
	if len(m.CallbackURLs) > 0 {
		a.callbackURLs = append([]string(nil), m.CallbackURLs...)
	}
	if m.DefaultPermissions != nil {
		a.permissions = copyPerms(m.DefaultPermissions)
		a.permissions["metadata"] = "read" // every App gets metadata read
	}
	if m.DefaultEvents != nil {
		a.events = append([]string(nil), m.DefaultEvents...)
	}
	body := s.st.appJSON()
	body["client_id"] = a.clientID
	body["client_secret"] = a.clientSecret
	body["webhook_secret"] = a.webhookSecret
	body["pem"] = string(a.pem())
	writeJSON(w, http.StatusCreated, body)
}
