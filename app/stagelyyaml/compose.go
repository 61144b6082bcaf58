package stagelyyaml

import (
	"fmt"
	"strings"

	"gopkg.in/yaml.v3"
)

// MaxComposeFileSize bounds the compose file we read.
const MaxComposeFileSize = 1 << 20

// maxComposeDocuments bounds how many "---"-separated documents we read from one compose file.
const maxComposeDocuments = 64

// ComposeCandidates returns the names docker compose looks for when no file is given,
// in its order of preference (compose-go's DefaultFileNames).
func ComposeCandidates() []string {
	return []string{"compose.yaml", "compose.yml", "docker-compose.yml", "docker-compose.yaml"}
}

// ResolveComposeFile picks the compose file to deploy: cfg.ComposeFile when set,
// otherwise the first of ComposeCandidates in the project's root directory. exists reports whether
// a repository-relative path is a file at the commit being deployed. A missing file is a
// *ValidationError placed in stagely.yaml; an error from exists is returned wrapped.
func ResolveComposeFile(cfg Config, exists func(path string) (bool, error)) (string, error) {
	if cfg.ComposeFile != "" {
		ok, err := exists(cfg.ComposeFile)
		if err != nil {
			return "", fmt.Errorf("look for compose file %s: %w", cfg.ComposeFile, err)
		}
		if !ok {
			return "", &ValidationError{Problems: []Problem{{
				Path: FileName, Line: cfg.ComposeFilePos.Line, Column: cfg.ComposeFilePos.Column, Level: LevelFailure,
				Message: fmt.Sprintf("compose_file %q is not in the repository at this commit; commit it or fix the path (relative to the project's root directory)", cfg.ComposeFile),
			}}}
		}
		return cfg.ComposeFile, nil
	}
	candidates := ComposeCandidates()
	for _, name := range candidates {
		ok, err := exists(name)
		if err != nil {
			return "", fmt.Errorf("look for compose file %s: %w", name, err)
		}
		if ok {
			return name, nil
		}
	}
	return "", &ValidationError{Problems: []Problem{{
		Path: FileName, Level: LevelFailure,
		Message: fmt.Sprintf("no compose file in the project's root directory (looked for %s); add one, or set compose_file in %s to its path", strings.Join(candidates, ", "), FileName),
	}}}
}

// ComposeService is what Stagely needs to know about one service of the compose file.
type ComposeService struct {
	Name string
	// Pos is where the service's name appears under services:.
	Pos
	Image string
	// Build is true when the service has a build: section.
	Build bool
	// Healthcheck is true when the compose file gives the service a health check that is
	// not disabled. Without one the image's own HEALTHCHECK, if any, applies.
	Healthcheck bool
	// HealthcheckDisabled is true for `disable: true` or `test: ["NONE"]`.
	HealthcheckDisabled bool
	// Extends is true when the service extends another, which may supply image and health check.
	Extends bool
	// ContainerName is true when the service fixes its container's name, which a preview
	// cannot run with; ContainerNamePos is where.
	ContainerName    bool
	ContainerNamePos Pos
}

// ParseComposeServices reads the service list of the compose file at path (repository
// relative; it becomes Problem.Path). It reads YAML structure only: no interpolation,
// no include: or extends: resolution. Anchors, aliases and merge keys (<<) are followed.
// Problems come back as a *ValidationError.
func ParseComposeServices(path string, data []byte) (map[string]ComposeService, error) {
	r := &reporter{path: path}
	if len(data) > MaxComposeFileSize {
		r.add(LevelFailure, Pos{}, "%s is %d bytes, more than the %d-byte limit Stagely reads", path, len(data), MaxComposeFileSize)
		return nil, AsError(r.problems)
	}
	c := composeReader{r: r, services: map[string]ComposeService{}}
	docs := r.documents(data, maxComposeDocuments+1)
	if len(docs) > maxComposeDocuments {
		r.fail(docs[maxComposeDocuments], "%s holds more than %d YAML documents; merge them", path, maxComposeDocuments)
		docs = docs[:maxComposeDocuments]
	}
	for _, doc := range docs {
		c.document(doc)
	}
	if HasFailure(r.problems) {
		return nil, AsError(r.sorted())
	}
	if len(c.services) == 0 && !c.include {
		r.add(LevelFailure, c.servicesPos, "%s defines no services; add a services: section with at least one service", path)
	}
	for _, name := range c.order {
		s := c.services[name]
		if s.Image == "" && !s.Build && !s.Extends {
			r.add(LevelFailure, s.Pos, "service %q has neither image nor build; add image: <image name> or build: <directory with a Dockerfile>", name)
		}
	}
	if err := AsError(r.sorted()); err != nil {
		return nil, err
	}
	return c.services, nil
}

// composeReader gathers services across the documents of one compose file; a later
// document's settings override an earlier one's, as compose merges them.
type composeReader struct {
	r           *reporter
	services    map[string]ComposeService
	order       []string
	servicesPos Pos
	// include is set when services may come from other files we do not read.
	include bool
}

func (c *composeReader) document(doc *yaml.Node) {
	root := content(doc)
	if root == nil {
		return
	}
	if root.Kind != yaml.MappingNode {
		c.r.fail(doc.Content[0], "%s must be a mapping with a services: section; found %s", c.r.path, describe(root))
		return
	}
	for _, f := range c.r.fields(root, c.r.path, true) {
		switch f.name {
		case "include":
			c.include = true
		case "services":
			if c.servicesPos == (Pos{}) {
				c.servicesPos = posOf(f.key)
			}
			m := resolve(f.val)
			if isNull(m) {
				continue
			}
			if m.Kind != yaml.MappingNode {
				c.r.fail(f.val, "services must be a mapping of service names to their settings; found %s", describe(f.val))
				continue
			}
			for _, sf := range c.r.fields(m, "services", true) {
				c.service(sf)
			}
		}
	}
}

func (c *composeReader) service(f field) {
	if strings.TrimSpace(f.name) == "" {
		c.r.fail(f.key, "a service name is empty; give the service a name")
		return
	}
	body := resolve(f.val)
	if body == nil || body.Kind != yaml.MappingNode {
		c.r.fail(f.val, "service %q must be a mapping of settings (image:, build:, ...); found %s", f.name, describe(f.val))
		return
	}
	s, ok := c.services[f.name]
	if !ok {
		s = ComposeService{Name: f.name, Pos: posOf(f.key)}
		c.order = append(c.order, f.name)
	}
	where := "service " + f.name
	for _, sf := range c.r.fields(body, where, true) {
		v := resolve(sf.val)
		switch sf.name {
		case "image":
			if v.Kind != yaml.ScalarNode || isNull(v) {
				c.r.fail(sf.val, "image of service %q must be an image name; found %s", f.name, describe(sf.val))
				continue
			}
			s.Image = v.Value
		case "build":
			s.Build = !isNull(v)
		case "extends":
			s.Extends = !isNull(v)
		case "container_name":
			s.ContainerName, s.ContainerNamePos = !isNull(v), posOf(sf.key)
		case "healthcheck":
			c.healthcheck(sf.val, f.name, &s)
		}
	}
	c.services[f.name] = s
}

func (c *composeReader) healthcheck(raw *yaml.Node, service string, s *ComposeService) {
	m := resolve(raw)
	if isNull(m) {
		return
	}
	if m.Kind != yaml.MappingNode {
		c.r.fail(raw, "healthcheck of service %q must be a mapping (test:, interval:, ...); found %s", service, describe(raw))
		return
	}
	s.Healthcheck, s.HealthcheckDisabled = true, false
	for _, f := range c.r.fields(m, "healthcheck of service "+service, true) {
		v := resolve(f.val)
		switch f.name {
		case "disable":
			if v.Kind == yaml.ScalarNode && v.ShortTag() == "!!bool" && strings.EqualFold(v.Value, "true") {
				s.Healthcheck, s.HealthcheckDisabled = false, true
			}
		case "test":
			// ["NONE"] is compose's other spelling of disable: true.
			if v.Kind == yaml.SequenceNode && len(v.Content) > 0 {
				if first := resolve(v.Content[0]); first.Kind == yaml.ScalarNode && first.Value == "NONE" {
					s.Healthcheck, s.HealthcheckDisabled = false, true
				}
			}
		}
	}
}
