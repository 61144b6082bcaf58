package stagelyyaml

import (
	"fmt"
	"maps"
	"slices"
	"strings"
)

// Validate checks a parsed stagely.yaml against the compose file's services (read from
// composePath) and against the project the repository is linked to. linkedProjectID is
// empty when no project is known yet (for example a pull request check before linking),
// which skips the project_id check. Problems are in stagely.yaml, ordered by position.
func Validate(cfg Config, compose map[string]ComposeService, composePath string, linkedProjectID string) []Problem {
	v := validator{r: &reporter{path: FileName}, cfg: cfg, compose: compose, composePath: composePath}
	v.projectID(linkedProjectID)
	v.hooks("hooks.pre_deploy", cfg.Hooks.PreDeploy)
	v.hooks("hooks.post_deploy", cfg.Hooks.PostDeploy)
	v.services()
	return v.r.sorted()
}

type validator struct {
	r           *reporter
	cfg         Config
	compose     map[string]ComposeService
	composePath string
}

func (v *validator) projectID(linked string) {
	if v.cfg.ProjectID == "" || linked == "" || v.cfg.ProjectID == linked {
		return
	}
	v.r.add(LevelFailure, v.cfg.ProjectIDPos,
		"project_id %q does not match %q, the Stagely project this repository is linked to; this file was written for another project: link the repository to %s, or change project_id to %q",
		v.cfg.ProjectID, linked, v.cfg.ProjectID, linked)
}

func (v *validator) hooks(name string, hooks []Hook) {
	for i, h := range hooks {
		if h.Service == "" {
			continue // Parse already reported it
		}
		if _, ok := v.compose[h.Service]; ok {
			continue
		}
		v.r.add(LevelFailure, h.ServicePos, "%s[%d] runs in service %q, which %s does not define%s; %s",
			name, i, h.Service, v.composePath, didYouMean(h.Service, v.names()), v.available())
	}
}

func (v *validator) services() {
	names := slices.Sorted(maps.Keys(v.cfg.Services))
	for _, name := range names {
		svc := v.cfg.Services[name]
		cs, ok := v.compose[name]
		if !ok {
			v.r.add(LevelFailure, svc.Pos, "services.%s names a service %s does not define%s; %s",
				name, v.composePath, didYouMean(name, v.names()), v.available())
			continue
		}
		v.gracePeriod(name, svc, cs)
	}
	if len(v.compose) == 0 {
		return
	}
	for name := range v.compose {
		if !v.cfg.Services[name].Ignore {
			return
		}
	}
	v.r.add(LevelWarning, v.cfg.ServicesPos,
		"every service in %s has ignore: true, so a deployment changes nothing; set ignore: false (or remove ignore) on the services Stagely should update",
		v.composePath)
}

func (v *validator) gracePeriod(name string, svc ServiceConfig, cs ComposeService) {
	grace := svc.HealthCheckGracePeriod
	if grace == 0 {
		return
	}
	key := "services." + name + ".health_check_grace_period"
	switch {
	case cs.HealthcheckDisabled:
		v.r.add(LevelWarning, svc.GracePeriodPos,
			"%s has no effect: the health check of service %q is disabled in %s; remove the grace period or enable the health check",
			key, name, v.composePath)
	case !cs.Healthcheck && !cs.Extends:
		// A warning, not a failure: the image may carry its own HEALTHCHECK, which we cannot see.
		v.r.add(LevelWarning, svc.GracePeriodPos,
			"%s only matters for a service with a health check, and service %q has no healthcheck in %s; add one there unless its image defines a HEALTHCHECK",
			key, name, v.composePath)
	}
	if timeout := v.cfg.Deployment.Timeout; grace > timeout {
		v.r.add(LevelWarning, svc.GracePeriodPos,
			"%s (%s) is longer than deployment.timeout (%s), so the deployment times out first; shorten the grace period or raise deployment.timeout",
			key, formatDuration(grace), formatDuration(timeout))
	}
}

func (v *validator) names() []string {
	return slices.Sorted(maps.Keys(v.compose))
}

// available lists the compose services for a message, shortened for large files.
func (v *validator) available() string {
	names := v.names()
	if len(names) == 0 {
		return fmt.Sprintf("%s defines no services", v.composePath)
	}
	const shown = 10
	more := ""
	if len(names) > shown {
		more = fmt.Sprintf(" and %d more", len(names)-shown)
		names = names[:shown]
	}
	return fmt.Sprintf("services in %s: %s%s", v.composePath, strings.Join(names, ", "), more)
}
