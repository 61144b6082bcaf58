package github

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"sync"
)

// Client is the server's one way to GitHub. It acts as the App's installations once there is an
// App, as a signed-in user with that user's token, and without credentials for the OAuth code
// exchange and the manifest conversion; every call goes through the same retrying, logging
// transport. It is safe for concurrent use.
type Client struct {
	*conn
	webURL string
	appKey func(ctx context.Context) (int64, []byte, error)

	mu     sync.Mutex
	app    *App
	appPEM []byte
}

// NewClient checks the options and builds a Client; opts.AppKey says which App it acts as.
func NewClient(opts Options) (*Client, error) {
	c, err := newConn(opts)
	if err != nil {
		return nil, err
	}
	web := opts.WebURL
	if web == "" {
		web = DefaultWebURL
	}
	if _, err := absoluteURL("github web url", web); err != nil {
		return nil, err
	}
	appKey := opts.AppKey
	if appKey == nil {
		appKey = func(context.Context) (int64, []byte, error) { return 0, nil, errNoAppKey }
	}
	return &Client{conn: c, webURL: strings.TrimRight(web, "/"), appKey: appKey}, nil
}

// errNoAppKey answers installation calls of a Client built without Options.AppKey.
var errNoAppKey = errors.New("github client: no GitHub App (Options.AppKey is not set)")

// Installation returns a client for one installation of whichever App Options.AppKey names at
// the time of each call: until there is one, every call returns AppKey's error and sends nothing.
func (c *Client) Installation(installationID int64) *Installation {
	return &Installation{id: installationID, conn: c.conn, app: c.currentApp}
}

// currentApp is the App that AppKey names now, built once per key and then reused, so that
// installation tokens are shared by every caller.
func (c *Client) currentApp(ctx context.Context) (*App, error) {
	id, keyPEM, err := c.appKey(ctx)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.app != nil && c.app.appID == id && bytes.Equal(c.appPEM, keyPEM) {
		return c.app, nil
	}
	a, err := newApp(c.conn, id, keyPEM)
	if err != nil {
		return nil, err
	}
	c.app, c.appPEM = a, bytes.Clone(keyPEM)
	c.log.Info("acting as GitHub App", "app_id", id)
	return a, nil
}
