package stagelyyaml

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Limits and defaults of the preview: section (docs/stagely-yaml.md).
const (
	// DefaultMaxPreviews is how many previews of the project one agent runs at once when
	// preview.max_previews is left out; more wait in the order their pull requests came.
	DefaultMaxPreviews = 3
	// MaxMaxPreviews caps preview.max_previews: each preview is a whole compose stack.
	MaxMaxPreviews = 50
	// DefaultStopAfter stops a preview with no new push for a week, as Vercel-like hosts
	// reclaim idle previews.
	DefaultStopAfter = 7 * 24 * time.Hour
	MinStopAfter     = time.Minute
	MaxStopAfter     = 90 * 24 * time.Hour
	// maxDNSLabel is the longest label of a host name (RFC 1035).
	maxDNSLabel = 63
	// maxHostName is the longest host name (RFC 1035).
	maxHostName = 253
)

// Preview is stagely.yaml's preview: section, what a pull request's preview gets.
type Preview struct {
	// Set is true when stagely.yaml has a preview: section.
	Set bool
	Pos
	// Domain is the domain the preview host names go under, like preview.example.com (a
	// leading "*." is dropped).
	Domain    string
	DomainPos Pos
	// Services maps each compose service that gets a URL to its container port.
	Services map[string]PreviewService
	// MaxPreviews is how many previews of the project one agent runs at once.
	MaxPreviews int
	// StopAfter stops a preview that has had no new push for this long.
	StopAfter time.Duration
	// Shared lists what a preview may share with production: external volumes and
	// networks, containers named by network_mode or volumes_from, writable host paths.
	// The agent refuses a preview that shares anything not listed.
	Shared []string
}

// PreviewService is one service of preview.services.
type PreviewService struct {
	Port int
	Pos
}

func previewKeys() []string {
	return []string{"domain", "services", "max_previews", "stop_after", "shared"}
}

// dnsName is a host name: dot-separated labels of letters, digits and inner hyphens.
var dnsName = regexp.MustCompile(`^([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)*[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)

func (p *parser) preview(key, raw *yaml.Node, out *Preview) {
	*out = Preview{Set: true, Pos: posOf(key), Services: map[string]PreviewService{}, MaxPreviews: DefaultMaxPreviews, StopAfter: DefaultStopAfter}
	m := p.section(raw, "preview")
	if m == nil {
		return
	}
	for _, f := range p.fields(m, "preview", previewKeys()) {
		switch f.name {
		case "domain":
			p.previewDomain(f.val, out)
		case "services":
			p.previewServices(f.val, out)
		case "max_previews":
			if n, ok := p.integer(f.val, "preview.max_previews", 1, MaxMaxPreviews); ok {
				out.MaxPreviews = n
			}
		case "stop_after":
			if d, ok := p.duration(f.val, "preview.stop_after", MinStopAfter, MaxStopAfter); ok {
				out.StopAfter = d
			}
		case "shared":
			p.previewShared(f.val, out)
		}
	}
}

func (p *parser) previewDomain(raw *yaml.Node, out *Preview) {
	s, ok := p.nonEmptyString(raw, "preview.domain", "write the domain the previews' host names go under, like preview.example.com")
	if !ok {
		return
	}
	d := strings.TrimSuffix(strings.TrimPrefix(strings.ToLower(strings.TrimSpace(s)), "*."), ".")
	if !dnsName.MatchString(d) || len(d) > maxHostName-maxDNSLabel-1 {
		p.r.fail(raw, "preview.domain %q is not a domain name; write one like preview.example.com, whose wildcard *.preview.example.com points at the agent's server", s)
		return
	}
	out.Domain, out.DomainPos = d, posOf(raw)
}

func (p *parser) previewServices(raw *yaml.Node, out *Preview) {
	m := p.section(raw, "preview.services")
	if m == nil {
		return
	}
	for _, f := range p.r.fields(m, "preview.services", false) {
		name := "preview.services." + f.name
		if strings.TrimSpace(f.name) == "" {
			p.r.fail(f.key, "a service name under preview.services is empty; use the compose service's name")
			continue
		}
		if port, ok := p.integer(f.val, name, 1, 65535); ok {
			out.Services[f.name] = PreviewService{Port: port, Pos: posOf(f.key)}
		}
	}
}

// MaxPreviewShared caps preview.shared.
const MaxPreviewShared = 50

// previewShared reads preview.shared: names of volumes, networks and containers, and
// absolute host paths.
func (p *parser) previewShared(raw *yaml.Node, out *Preview) {
	p.stringList(raw, stringList{
		field: "preview.shared", what: "volume, network or container names and host paths, like [pgdata, /var/run/docker.sock]",
		limit: MaxPreviewShared, overLimit: "items, more than the limit of %d",
		itemHint: "write the name of an external volume, network or container, or an absolute host path, or remove the item",
	}, func(item *yaml.Node, name, s string) {
		if strings.ContainsAny(s, "\x00\n") || strings.TrimSpace(s) != s {
			p.r.fail(item, "%s %q is not a name or path: it has spaces at its ends, a line break or a NUL byte", name, s)
			return
		}
		out.Shared = append(out.Shared, s)
	})
}

// integer reads a whole number in [lo, hi].
func (p *parser) integer(raw *yaml.Node, name string, lo, hi int) (int, bool) {
	n := resolve(raw)
	if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!int" {
		p.r.fail(raw, "%s must be a whole number between %d and %d; found %s", name, lo, hi, describe(raw))
		return 0, false
	}
	v, err := strconv.Atoi(n.Value)
	if err != nil || v < lo || v > hi {
		p.r.fail(raw, "%s is %s; it must be between %d and %d", name, n.Value, lo, hi)
		return 0, false
	}
	return v, true
}

// ValidatePreview checks what a pull request's preview needs of stagely.yaml and the compose
// file (both the pull request's own): a preview: section with a domain, services that exist,
// and no container_name, which would collide with production's container of the same name.
// Problems are failures, in the file they are in.
func ValidatePreview(cfg Config, compose map[string]ComposeService, composePath string) []Problem {
	r := &reporter{path: FileName}
	pv := cfg.Preview
	switch {
	case !pv.Set:
		r.add(LevelFailure, Pos{}, "previews are on for this project, but %s has no preview: section; add one with the domain and the services that get a URL, like preview: {domain: preview.example.com, services: {web: 8080}}", FileName)
	case pv.Domain == "":
		r.add(LevelFailure, pv.Pos, "preview has no domain; add domain: <the domain whose wildcard points at the agent's server>, like preview.example.com")
	}
	for _, name := range slices.Sorted(maps.Keys(pv.Services)) {
		if _, ok := compose[name]; !ok {
			r.add(LevelFailure, pv.Services[name].Pos, "preview.services.%s names a service %s does not define%s",
				name, composePath, didYouMean(name, slices.Sorted(maps.Keys(compose))))
		}
	}
	problems := r.sorted()
	cr := &reporter{path: composePath}
	for _, name := range slices.Sorted(maps.Keys(compose)) {
		if cs := compose[name]; cs.ContainerName {
			cr.add(LevelFailure, cs.ContainerNamePos, "service %q sets container_name, which a preview cannot use: the preview's container would take the name of production's (or another preview's); remove container_name, as compose names containers after the project anyway", name)
		}
	}
	return append(problems, cr.sorted()...)
}

// PreviewHost is the host name of service's URL in pull request number's preview of project:
// <service>--pr-<n>--<project>.<domain>, in lower case with anything but letters, digits and
// hyphens made a hyphen. A first label longer than DNS allows (63 bytes) keeps its service
// and pull request parts whole, cuts the project name, and ends in 8 hex digits of a hash of
// the full label, so two long project names never share a host.
func PreviewHost(service string, number int, project, domain string) string {
	label := fmt.Sprintf("%s--pr-%d--%s", hostPart(service), number, hostPart(project))
	if len(label) > maxDNSLabel {
		sum := sha256.Sum256([]byte(label))
		tag := hex.EncodeToString(sum[:4])
		label = strings.TrimRight(label[:maxDNSLabel-len(tag)-1], "-") + "-" + tag
	}
	return label + "." + domain
}

// hostPart makes a name fit a DNS label: lower case, other characters hyphens, no hyphen at
// either end.
func hostPart(s string) string {
	b := []byte(strings.ToLower(s))
	for i, c := range b {
		if (c < 'a' || c > 'z') && (c < '0' || c > '9') {
			b[i] = '-'
		}
	}
	return strings.Trim(string(b), "-")
}
