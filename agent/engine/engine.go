// Package engine reads the Docker Engine API over its socket with the standard library:
// the few read-only calls a deploy makes many times (a project's containers, an image's
// id), which a `docker` or `compose` process would cost tens of milliseconds each.
package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// DefaultSocket is where the engine listens when DOCKER_HOST is unset.
const DefaultSocket = "/var/run/docker.sock"

// maxBody bounds what one answer may hold: a project's containers fit many times over.
const maxBody = 32 << 20

// ErrUnsupportedHost is returned by New for a DOCKER_HOST the client cannot reach by
// itself (ssh://, or tcp:// with TLS): the caller then does without the engine API.
var ErrUnsupportedHost = errors.New("DOCKER_HOST is neither unix:// nor plain tcp://")

// Client calls the Engine API.
type Client struct {
	http *http.Client
	base string
}

// New returns a client for host, a DOCKER_HOST value ("" means DefaultSocket). tls is
// whether DOCKER_TLS_VERIFY is set, which a plain tcp:// client cannot honour.
func New(host string, tls bool) (*Client, error) {
	if host == "" {
		host = "unix://" + DefaultSocket
	}
	u, err := url.Parse(host)
	if err != nil {
		return nil, fmt.Errorf("parse DOCKER_HOST %q: %w", host, err)
	}
	switch {
	case u.Scheme == "unix" && u.Path != "":
		path := u.Path
		tr := &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", path)
		}}
		return &Client{http: &http.Client{Transport: tr}, base: "http://docker"}, nil
	case u.Scheme == "tcp" && !tls && u.Host != "":
		return &Client{http: &http.Client{Transport: &http.Transport{}}, base: "http://" + u.Host}, nil
	}
	return nil, fmt.Errorf("%w: %q", ErrUnsupportedHost, host)
}

// Container is one container as the engine lists it.
type Container struct {
	ID     string            `json:"Id"`
	Names  []string          `json:"Names"`
	Image  string            `json:"Image"`
	State  string            `json:"State"`
	Status string            `json:"Status"`
	Labels map[string]string `json:"Labels"`
	// Created is the Unix time the container was created.
	Created int64 `json:"Created"`
}

// Containers lists every container, stopped ones included, that carries label=value.
func (c *Client) Containers(ctx context.Context, label, value string) ([]Container, error) {
	filters, err := json.Marshal(map[string][]string{"label": {label + "=" + value}})
	if err != nil {
		return nil, err
	}
	q := url.Values{"all": {"1"}, "filters": {string(filters)}}
	var out []Container
	if err := c.get(ctx, "/containers/json?"+q.Encode(), &out); err != nil {
		return nil, fmt.Errorf("list containers with %s=%s: %w", label, value, err)
	}
	return out, nil
}

// ImageID returns the id of the local image ref, or "" when there is none.
func (c *Client) ImageID(ctx context.Context, ref string) (string, error) {
	if ref == "" || strings.ContainsAny(ref, "?#") {
		return "", fmt.Errorf("image reference %q is not valid", ref)
	}
	var img struct {
		ID string `json:"Id"`
	}
	err := c.get(ctx, (&url.URL{Path: "/images/" + ref + "/json"}).EscapedPath(), &img)
	var se *StatusError
	if errors.As(err, &se) && se.Code == http.StatusNotFound {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("inspect image %s: %w", ref, err)
	}
	return img.ID, nil
}

// StatusError is an answer other than 200 OK.
type StatusError struct {
	Code    int
	Message string
}

func (e *StatusError) Error() string {
	return fmt.Sprintf("engine answered %d: %s", e.Code, e.Message)
}

// requestTimeout bounds one call when ctx has no sooner deadline: the engine answers
// these in milliseconds, and a hung daemon must not hold a deploy for its whole timeout.
const requestTimeout = 30 * time.Second

func (c *Client) get(ctx context.Context, path string, into any) error {
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base+path, nil)
	if err != nil {
		return err
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxBody+1))
	if err != nil {
		return err
	}
	if len(body) > maxBody {
		return fmt.Errorf("answer over %d bytes", maxBody)
	}
	if resp.StatusCode != http.StatusOK {
		var msg struct {
			Message string `json:"message"`
		}
		_ = json.Unmarshal(body, &msg)
		return &StatusError{Code: resp.StatusCode, Message: msg.Message}
	}
	if err := json.Unmarshal(body, into); err != nil {
		return fmt.Errorf("parse answer: %w", err)
	}
	return nil
}
