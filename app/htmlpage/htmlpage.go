// Package htmlpage renders the few pages the server draws itself rather than the single-page
// app: the answers of sign-in to a browser's navigation and the /setup pages. They share one
// shell and one Content-Security-Policy that allows no script.
package htmlpage

import (
	"bytes"
	"html/template"
	"net/http"

	"github.com/gin-gonic/gin"
)

// Must parses a page template: body is what goes inside <body>, style the page's CSS. The
// data it is executed with must have a Title, shown in the window's title.
func Must(name, style, body string) *template.Template {
	return template.Must(template.New(name).Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{.Title}} · Stagely</title>
<style>` + style + `</style>
</head><body>
` + body + `</body></html>
`))
}

// Write answers t executed with data, with status. formAction lists where the page's forms
// may post (a Content-Security-Policy source list); empty, a form may post nowhere. Should the
// template fail, the answer is a plain-text 500 of fallback instead.
func Write(c *gin.Context, status int, t *template.Template, data any, formAction, fallback string) {
	var buf bytes.Buffer
	if err := t.Execute(&buf, data); err != nil {
		c.String(http.StatusInternalServerError, "%s", fallback)
		return
	}
	csp := "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'"
	if formAction != "" {
		csp += "; form-action " + formAction
	}
	c.Header("Content-Security-Policy", csp)
	c.Data(status, "text/html; charset=utf-8", buf.Bytes())
}
