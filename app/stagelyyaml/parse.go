package stagelyyaml

import (
	"fmt"
	"path"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Keys each mapping of stagely.yaml accepts, in the order the docs list them. Functions
// rather than variables so no caller can change the schema at run time.
func topKeys() []string {
	return []string{"version", "project_id", "compose_file", "watch_paths", "deployment", "hooks", "services", "preview"}
}
func deploymentKeys() []string { return []string{"timeout", "strategy"} }
func hooksKeys() []string      { return []string{"pre_deploy", "post_deploy"} }
func hookKeys() []string       { return []string{"service", "command", "continue_on_error"} }
func serviceKeys() []string    { return []string{"health_check_grace_period", "ignore"} }
func strategies() []string     { return []string{string(StrategyRecreate), string(StrategyStopFirst)} }

// Parse reads stagely.yaml. An empty file (or one holding only comments or null) is the
// zero-config Default. Parse always returns a Config with defaults filled in; when any
// returned Problem is a failure, the Config is only good for further validation, not
// for deploying. Every Problem's Path is FileName.
func Parse(data []byte) (Config, []Problem) {
	cfg := Default()
	r := &reporter{path: FileName}
	if len(data) > MaxFileSize {
		r.add(LevelFailure, Pos{}, "%s is %d bytes, more than the %d-byte limit; keep it to settings only", FileName, len(data), MaxFileSize)
		return cfg, r.sorted()
	}
	docs := r.documents(data, 2)
	if len(docs) == 2 {
		r.fail(docs[1], "%s holds more than one YAML document; remove this \"---\" and everything after it, or merge the documents into one", FileName)
	}
	if len(docs) == 0 {
		return cfg, r.sorted()
	}
	root := content(docs[0])
	if root == nil {
		return cfg, r.sorted()
	}
	if root.Kind != yaml.MappingNode {
		r.fail(docs[0].Content[0], "%s must be a mapping of settings such as version, deployment and hooks; found %s", FileName, describe(root))
		return cfg, r.sorted()
	}
	p := parser{r: r}
	p.top(root, &cfg)
	return cfg, r.sorted()
}

// parser reads the stagely.yaml schema from yaml.v3 nodes, so every problem knows its line.
type parser struct {
	r *reporter
}

func (p *parser) fields(m *yaml.Node, where string, allowed []string) []field {
	var known []field
	for _, f := range p.r.fields(m, where, false) {
		if !slices.Contains(allowed, f.name) {
			p.unknownKey(f, where, allowed)
			continue
		}
		known = append(known, f)
	}
	return known
}

func (p *parser) unknownKey(f field, where string, allowed []string) {
	if hint := didYouMean(f.name, allowed); hint != "" {
		p.r.fail(f.key, "unknown key %q in %s%s", f.name, where, hint)
		return
	}
	p.r.fail(f.key, "unknown key %q in %s; the keys allowed there are %s", f.name, where, strings.Join(allowed, ", "))
}

func (p *parser) top(root *yaml.Node, cfg *Config) {
	for _, f := range p.fields(root, FileName, topKeys()) {
		switch f.name {
		case "version":
			p.version(f.val, cfg)
		case "project_id":
			if s, ok := p.nonEmptyString(f.val, "project_id", "remove the key or set it to this project's id"); ok {
				cfg.ProjectID, cfg.ProjectIDPos = s, posOf(f.val)
			}
		case "compose_file":
			p.composeFile(f.val, cfg)
		case "watch_paths":
			p.watchPaths(f.val, cfg)
		case "deployment":
			if m := p.section(f.val, "deployment"); m != nil {
				p.deployment(m, &cfg.Deployment)
			}
		case "hooks":
			if m := p.section(f.val, "hooks"); m != nil {
				p.hooks(m, &cfg.Hooks)
			}
		case "services":
			cfg.ServicesPos = posOf(f.key)
			if m := p.section(f.val, "services"); m != nil {
				p.services(m, cfg.Services)
			}
		case "preview":
			p.preview(f.key, f.val, &cfg.Preview)
		}
	}
}

func (p *parser) version(raw *yaml.Node, cfg *Config) {
	n := resolve(raw)
	// An unquoted 1.0 is a YAML float whose text is still "1.0"; accept both spellings.
	if n.Kind == yaml.ScalarNode && (n.ShortTag() == "!!str" || n.ShortTag() == "!!float") && n.Value == Version {
		cfg.Version = Version
		return
	}
	p.r.fail(raw, "unsupported version: found %s; write version: %q (or leave version out)", describe(raw), Version)
}

// section reads a mapping that may be left empty (`hooks:` alone); nil means nothing to read.
func (p *parser) section(raw *yaml.Node, name string) *yaml.Node {
	n := resolve(raw)
	if isNull(n) {
		return nil
	}
	if n.Kind != yaml.MappingNode {
		p.r.fail(raw, "%s must be a mapping; found %s", name, describe(raw))
		return nil
	}
	return n
}

func (p *parser) composeFile(raw *yaml.Node, cfg *Config) {
	s, ok := p.nonEmptyString(raw, "compose_file", "remove the key to use compose.yaml or another default name, or name the file")
	if !ok {
		return
	}
	clean, problem := cleanRepoPath(s)
	if problem != "" {
		p.r.fail(raw, "compose_file %q %s", s, problem)
		return
	}
	cfg.ComposeFile, cfg.ComposeFilePos = clean, posOf(raw)
}

// watchPaths reads watch_paths: a list of gitignore-style patterns (see Watch).
func (p *parser) watchPaths(raw *yaml.Node, cfg *Config) {
	p.stringList(raw, stringList{
		field: "watch_paths", what: "paths or globs, like [libs/shared/**]", limit: MaxWatchPaths,
		overLimit: "patterns, more than the limit of %d; watch folders rather than files",
		itemHint:  "write a path or glob relative to the repository root, or remove the item",
	}, func(item *yaml.Node, name, s string) {
		if _, problem := compileWatch(s); problem != "" {
			p.r.fail(item, "%s %q %s", name, s, problem)
			return
		}
		cfg.WatchPaths = append(cfg.WatchPaths, s)
	})
}

// stringList describes a list of strings in stagely.yaml, for the problems it words.
type stringList struct {
	field, what string
	limit       int
	// overLimit follows "<field> lists <n> ", with the limit for its %d.
	overLimit, itemHint string
}

// stringList reads a list of non-empty strings and hands each to use with its position's
// name ("watch_paths[2]"); a null list is an empty one.
func (p *parser) stringList(raw *yaml.Node, l stringList, use func(item *yaml.Node, name, s string)) {
	list := resolve(raw)
	if isNull(list) {
		return
	}
	if list.Kind != yaml.SequenceNode {
		p.r.fail(raw, "%s must be a list of %s; found %s", l.field, l.what, describe(raw))
		return
	}
	if len(list.Content) > l.limit {
		p.r.fail(raw, "%s lists %d "+l.overLimit, l.field, len(list.Content), l.limit)
		return
	}
	for i, item := range list.Content {
		name := fmt.Sprintf("%s[%d]", l.field, i)
		if s, ok := p.nonEmptyString(item, name, l.itemHint); ok {
			use(item, name, s)
		}
	}
}

// windowsDrive matches "C:" and "C:\" prefixes, absolute on the machines users write from.
var windowsDrive = regexp.MustCompile(`^[A-Za-z]:`)

// cleanRepoPath turns a path relative to the project's root directory into its clean form ("./a/b" -> "a/b"),
// or explains why it cannot name a file in the repository.
func cleanRepoPath(s string) (string, string) {
	switch {
	case strings.ContainsRune(s, 0):
		return "", "contains a NUL byte; give a plain path relative to the project's root directory"
	case strings.Contains(s, `\`):
		return "", `uses backslashes; separate directories with "/"`
	case strings.HasPrefix(s, "/") || windowsDrive.MatchString(s):
		return "", "is an absolute path; give a path relative to the project's root directory (the folder of stagely.yaml), like deploy/compose.yml"
	}
	clean := path.Clean(s)
	switch {
	case clean == ".." || strings.HasPrefix(clean, "../"):
		return "", "points outside the project's root directory (the folder of stagely.yaml); give a path inside it"
	case clean == ".":
		return "", "names the project's root directory, not a file; name the compose file, like deploy/compose.yml"
	}
	return clean, ""
}

func (p *parser) deployment(m *yaml.Node, d *Deployment) {
	for _, f := range p.fields(m, "deployment", deploymentKeys()) {
		switch f.name {
		case "timeout":
			if v, ok := p.duration(f.val, "deployment.timeout", MinTimeout, MaxTimeout); ok {
				d.Timeout, d.TimeoutPos = v, posOf(f.val)
			}
		case "strategy":
			s, ok := p.nonEmptyString(f.val, "deployment.strategy", "write recreate or stop-first, or remove the key for recreate")
			if !ok {
				continue
			}
			if !slices.Contains(strategies(), s) {
				p.r.fail(f.val, "unknown deployment.strategy %q%s; use recreate (the default) or stop-first", s, didYouMean(s, strategies()))
				continue
			}
			d.Strategy = Strategy(s)
		}
	}
}

func (p *parser) hooks(m *yaml.Node, h *Hooks) {
	for _, f := range p.fields(m, "hooks", hooksKeys()) {
		name := "hooks." + f.name
		list := resolve(f.val)
		if isNull(list) {
			continue
		}
		if list.Kind != yaml.SequenceNode {
			p.r.fail(f.val, "%s must be a list of hooks (each \"- service: ...\" with a command); found %s", name, describe(f.val))
			continue
		}
		var hooks []Hook
		for i, item := range list.Content {
			if hook, ok := p.hook(item, fmt.Sprintf("%s[%d]", name, i)); ok {
				hooks = append(hooks, hook)
			}
		}
		if f.name == "pre_deploy" {
			h.PreDeploy = hooks
		} else {
			h.PostDeploy = hooks
		}
	}
}

// hook reads one hook; ok is false when it has no usable service, the one thing
// later validation needs.
func (p *parser) hook(raw *yaml.Node, name string) (Hook, bool) {
	m := resolve(raw)
	if m.Kind != yaml.MappingNode {
		p.r.fail(raw, "%s must be a mapping with service and command; found %s", name, describe(raw))
		return Hook{}, false
	}
	h := Hook{Pos: posOf(raw)}
	var hasService, hasCommand bool
	for _, f := range p.fields(m, name, hookKeys()) {
		switch f.name {
		case "service":
			hasService = true
			if s, ok := p.nonEmptyString(f.val, name+".service", "name the compose service to run the command in"); ok {
				h.Service, h.ServicePos = s, posOf(f.val)
			}
		case "command":
			hasCommand = true
			if s, ok := p.nonEmptyString(f.val, name+".command", "write the shell command to run, or remove the hook"); ok {
				h.Command = s
			}
		case "continue_on_error":
			if b, ok := p.boolean(f.val, name+".continue_on_error"); ok {
				h.ContinueOnError = b
			}
		}
	}
	if !hasService {
		p.r.fail(raw, "%s has no service; add service: <compose service to run the command in>", name)
	}
	if !hasCommand {
		p.r.fail(raw, "%s has no command; add command: <shell command to run in the service>", name)
	}
	return h, h.Service != ""
}

func (p *parser) services(m *yaml.Node, out map[string]ServiceConfig) {
	for _, f := range p.r.fields(m, "services", false) {
		name := "services." + f.name
		if strings.TrimSpace(f.name) == "" {
			p.r.fail(f.key, "a service name under services is empty; use the compose service's name")
			continue
		}
		svc := ServiceConfig{Pos: posOf(f.key)}
		body := resolve(f.val)
		switch {
		case isNull(body):
		case body.Kind != yaml.MappingNode:
			p.r.fail(f.val, "%s must be a mapping of %s; found %s", name, strings.Join(serviceKeys(), " and "), describe(f.val))
		default:
			for _, sf := range p.fields(body, name, serviceKeys()) {
				switch sf.name {
				case "health_check_grace_period":
					if v, ok := p.duration(sf.val, name+".health_check_grace_period", 0, MaxGracePeriod); ok {
						svc.HealthCheckGracePeriod, svc.GracePeriodPos = v, posOf(sf.val)
					}
				case "ignore":
					if b, ok := p.boolean(sf.val, name+".ignore"); ok {
						svc.Ignore = b
					}
				}
			}
		}
		out[f.name] = svc
	}
}

// nonEmptyString reads a string scalar; fix says what to write instead of an empty value.
func (p *parser) nonEmptyString(raw *yaml.Node, name, fix string) (string, bool) {
	n := resolve(raw)
	switch {
	case isNull(n):
		p.r.fail(raw, "%s is empty; %s", name, fix)
		return "", false
	case n.Kind != yaml.ScalarNode || n.ShortTag() != "!!str":
		hint := ""
		if n.Kind == yaml.ScalarNode {
			hint = "; put it in quotes if you meant the text " + strconv.Quote(n.Value)
		}
		p.r.fail(raw, "%s must be a string; found %s%s", name, describe(raw), hint)
		return "", false
	case strings.TrimSpace(n.Value) == "":
		p.r.fail(raw, "%s is empty; %s", name, fix)
		return "", false
	}
	return n.Value, true
}

func (p *parser) boolean(raw *yaml.Node, name string) (bool, bool) {
	n := resolve(raw)
	if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!bool" {
		p.r.fail(raw, "%s must be true or false; found %s", name, describe(raw))
		return false, false
	}
	return strings.EqualFold(n.Value, "true"), true
}

// digits is a whole number of seconds; longer than 10 digits is out of range anyway
// and would overflow time.Duration.
var digits = regexp.MustCompile(`^[0-9]{1,10}$`)

// duration reads a Go duration ("300s", "5m", "1m30s") or a whole number of seconds
// (300), and checks it lies in [lo, hi].
func (p *parser) duration(raw *yaml.Node, name string, lo, hi time.Duration) (time.Duration, bool) {
	n := resolve(raw)
	tag := n.ShortTag()
	if n.Kind != yaml.ScalarNode || (tag != "!!str" && tag != "!!int" && tag != "!!float") {
		p.r.fail(raw, "%s must be a duration like 300s or 5m; found %s", name, describe(raw))
		return 0, false
	}
	value := strings.TrimSpace(n.Value)
	var d time.Duration
	if digits.MatchString(value) {
		secs, _ := strconv.ParseInt(value, 10, 64) // cannot fail: at most 10 digits
		d = time.Duration(secs) * time.Second
	} else {
		var err error
		d, err = time.ParseDuration(value)
		if err != nil || tag != "!!str" {
			p.r.fail(raw, "%s: %q is not a duration; write a whole number of seconds or a number with a unit (s, m, h), like 300s or 5m", name, n.Value)
			return 0, false
		}
	}
	if d < lo || d > hi {
		p.r.fail(raw, "%s is %s; it must be between %s and %s", name, formatDuration(d), formatDuration(lo), formatDuration(hi))
		return 0, false
	}
	return d, true
}

// formatDuration prints round durations the way users write them ("1h", not "1h0m0s").
func formatDuration(d time.Duration) string {
	switch {
	case d != 0 && d%time.Hour == 0:
		return fmt.Sprintf("%dh", d/time.Hour)
	case d != 0 && d%time.Minute == 0:
		return fmt.Sprintf("%dm", d/time.Minute)
	case d%time.Second == 0:
		return fmt.Sprintf("%ds", d/time.Second)
	}
	return d.String()
}
