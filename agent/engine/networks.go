package engine

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
)

// Endpoint is one running container's address on one network.
type Endpoint struct {
	ContainerID string
	Network     string
	IP          string
}

// ServiceEndpoints lists the network addresses of the running containers of one service
// of a compose project, by compose's project and service labels.
func (c *Client) ServiceEndpoints(ctx context.Context, project, service string) ([]Endpoint, error) {
	filters, err := json.Marshal(map[string][]string{
		"label":  {"com.docker.compose.project=" + project, "com.docker.compose.service=" + service},
		"status": {"running"},
	})
	if err != nil {
		return nil, err
	}
	var out []struct {
		ID              string `json:"Id"`
		NetworkSettings struct {
			Networks map[string]struct {
				IPAddress string `json:"IPAddress"`
			} `json:"Networks"`
		} `json:"NetworkSettings"`
	}
	if err := c.get(ctx, "/containers/json?"+url.Values{"filters": {string(filters)}}.Encode(), &out); err != nil {
		return nil, fmt.Errorf("list the containers of %s in %s: %w", service, project, err)
	}
	var eps []Endpoint
	for _, ct := range out {
		for name, n := range ct.NetworkSettings.Networks {
			if n.IPAddress != "" {
				eps = append(eps, Endpoint{ContainerID: ct.ID, Network: name, IP: n.IPAddress})
			}
		}
	}
	return eps, nil
}
