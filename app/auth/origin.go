package auth

import (
	"net/http"
	"net/url"

	"github.com/gin-gonic/gin"
)

// SameOrigin refuses state-changing requests (anything but GET, HEAD, OPTIONS) that a browser
// sent from another site, with 403. It trusts, in order: Origin, Sec-Fetch-Site, Referer. A
// request with none of them is let through unless it carries a session cookie: browsers send
// Origin on every non-GET fetch, so such a request comes from a program, which holds no
// ambient credentials an attacker could borrow.
func (a *Auth) SameOrigin() gin.HandlerFunc {
	return func(c *gin.Context) {
		switch c.Request.Method {
		case http.MethodGet, http.MethodHead, http.MethodOptions:
			c.Next()
			return
		}
		if reason := a.crossSite(c.Request); reason != "" {
			abortJSON(c, http.StatusForbidden, "cross-site request refused: "+reason)
			return
		}
		c.Next()
	}
}

// crossSite says why r does not come from this server's own pages, or "" when it does.
func (a *Auth) crossSite(r *http.Request) string {
	if o := r.Header.Get("Origin"); o != "" {
		u, err := url.Parse(o)
		if o == "null" || err != nil || u.Host == "" || originOf(u) != a.origin {
			return "the Origin header does not name this server"
		}
		return ""
	}
	if s := r.Header.Get("Sec-Fetch-Site"); s != "" {
		// "none" is a navigation the person started (address bar, bookmark).
		if s == "same-origin" || s == "none" {
			return ""
		}
		return "Sec-Fetch-Site is " + s
	}
	if ref := r.Header.Get("Referer"); ref != "" {
		u, err := url.Parse(ref)
		if err != nil || u.Host == "" || originOf(u) != a.origin {
			return "the Referer header does not name this server"
		}
		return ""
	}
	if _, err := r.Cookie(SessionCookie); err == nil {
		return "a request with a session cookie must say where it comes from (Origin header)"
	}
	return ""
}
