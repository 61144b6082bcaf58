package setup

import (
	"github.com/gin-gonic/gin"

	"github.com/stagely/stagely/app/htmlpage"
)

// view is everything the setup pages show.
type view struct {
	Title    string
	Message  string
	Problem  string
	LinkURL  string
	LinkText string

	// The registration form.
	Form     bool
	Action   string
	Manifest string
	// ManifestPretty is Manifest indented for reading.
	ManifestPretty string
	Owner          string
	Org            string

	// The configured App.
	Configured bool
	FromEnv    bool
	AppID      int64
	Slug       string
	HTMLURL    string
	InstallURL string
}

// The page posts the manifest to GitHub with a plain form and no script: the person first picks
// the account that will own the App, which an auto-submitting page would not let them do.
var pageTemplate = htmlpage.Must("setup", `body{font-family:system-ui,sans-serif;max-width:42rem;margin:4rem auto;padding:0 1rem;line-height:1.5;color:#1f2328}
a{color:#0969da}button{font:inherit;padding:.5rem 1rem;cursor:pointer}.problem{color:#d1242f}
pre{background:#f6f8fa;padding:1rem;overflow:auto;font-size:.85rem}input{font:inherit;padding:.3rem}`, `<h1>{{.Title}}</h1>
{{if .Problem}}<p class="problem">{{.Problem}}</p>{{end}}
{{if .Message}}<p>{{.Message}}</p>{{end}}
{{if .Configured}}
  {{if .FromEnv}}
  <p>Stagely uses the GitHub App with id {{.AppID}}, configured through environment variables
  (STAGELY_GITHUB_APP_ID and the others). Install it on the accounts whose repositories you want to deploy
  from the App's page on GitHub (Settings → Developer settings → GitHub Apps → Install App).</p>
  {{else}}
  <p>Stagely uses the GitHub App {{if .HTMLURL}}<a href="{{.HTMLURL}}">{{.Slug}}</a>{{else}}{{.Slug}}{{end}} (id {{.AppID}}).</p>
  {{if .InstallURL}}<p><a href="{{.InstallURL}}">Install it</a> on the accounts whose repositories you want to deploy.</p>{{end}}
  {{end}}
  <p><a href="/">Go to the dashboard</a></p>
{{end}}
{{if .Form}}
  <p>Stagely talks to GitHub as a GitHub App that you own. The button below registers that App on GitHub
  with the permissions, events and URLs Stagely needs (app-manifest.yml). GitHub asks you to name it,
  then sends you back here, and Stagely stores its credentials sealed in its database.</p>
  <form method="post" action="{{.Action}}">
    <input type="hidden" name="manifest" value="{{.Manifest}}">
    <button type="submit">Create the GitHub App on {{.Owner}}</button>
  </form>
  <h2>Owned by an organization?</h2>
  <p>To create the App under an organization you administer, name it here first.</p>
  <form method="get" action="/setup">
    <label>Organization <input name="org" value="{{.Org}}" autocomplete="off"></label>
    <button type="submit">Use this organization</button>
  </form>
  <details><summary>What the App asks for</summary><pre>{{.ManifestPretty}}</pre></details>
{{end}}
{{if .LinkURL}}<p><a href="{{.LinkURL}}">{{.LinkText}}</a></p>{{end}}
`)

// render writes a page. Its forms may only post here or to GitHub.
func (s *Setup) render(c *gin.Context, status int, v view) {
	c.Header("Cache-Control", "no-store")
	// Nothing of these pages' addresses reaches GitHub or anyone else in a Referer.
	c.Header("Referrer-Policy", "no-referrer")
	htmlpage.Write(c, status, pageTemplate, v, "'self' "+s.githubOrigin, v.Title)
}
