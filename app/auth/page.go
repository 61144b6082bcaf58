package auth

import (
	"github.com/gin-gonic/gin"

	"github.com/stagely/stagely/app/htmlpage"
)

// page is a small HTML answer to a browser navigation (the callback is one, not an API call).
type page struct {
	Title    string
	Message  string
	LinkURL  string
	LinkText string
}

var pageTemplate = htmlpage.Must("page",
	`body{font-family:system-ui,sans-serif;max-width:40rem;margin:4rem auto;padding:0 1rem;line-height:1.5;color:#1f2328}a{color:#0969da}`, `<h1>{{.Title}}</h1>
<p>{{.Message}}</p>
{{if .LinkURL}}<p><a href="{{.LinkURL}}">{{.LinkText}}</a></p>{{end}}
`)

func renderPage(c *gin.Context, status int, p page) {
	htmlpage.Write(c, status, pageTemplate, p, "", p.Title+": "+p.Message)
}
