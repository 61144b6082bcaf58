package githubsim_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
)

// descriptionFile is GitHub's published REST description, installed by `npm ci` in testdata/openapi.
var descriptionFile = filepath.Join("testdata", "openapi", "node_modules", "@octokit", "openapi", "generated", "api.github.com.json")

// spec is GitHub's REST description with a path matcher; loaded once per test binary.
type spec struct {
	doc    *openapi3.T
	routes []specRoute
}

type specRoute struct {
	re     *regexp.Regexp
	names  []string
	path   string
	item   *openapi3.PathItem
	static int // literal characters: the most specific template wins, as GitHub's router does
}

var loadSpec = sync.OnceValues(func() (*spec, error) {
	data, err := os.ReadFile(descriptionFile)
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("GitHub's REST description %s is missing: run `npm ci` in githubsim/testdata/openapi", descriptionFile)
	}
	if err != nil {
		return nil, fmt.Errorf("read REST description: %w", err)
	}
	data, err = prune(data)
	if err != nil {
		return nil, err
	}
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromData(data)
	if err != nil {
		return nil, fmt.Errorf("load REST description: %w", err)
	}
	sp := &spec{doc: doc}
	param := regexp.MustCompile(`\{([^}]+)\}`)
	for p, item := range doc.Paths.Map() {
		var names []string
		static := len(param.ReplaceAllString(p, ""))
		expr := regexp.MustCompile(`\\\{([^}]+)\\\}`).ReplaceAllStringFunc(regexp.QuoteMeta(p), func(m string) string {
			name := strings.TrimSuffix(strings.TrimPrefix(m, `\{`), `\}`)
			names = append(names, name)
			// Parameters marked x-multi-segment (ref, sha, path) may hold slashes.
			if multiSegment(item, name) {
				return `(.+)`
			}
			return `([^/]+)`
		})
		sp.routes = append(sp.routes, specRoute{re: regexp.MustCompile("^" + expr + "$"), names: names, path: p, item: item, static: static})
	}
	sort.Slice(sp.routes, func(i, j int) bool { return sp.routes[i].static > sp.routes[j].static })
	return sp, nil
})

// servedPaths are the description's path templates githubsim serves; the conformance test loads
// only these and the components they reach, which keeps the load under a second.
var servedPaths = []string{
	"/app",
	"/app/installations",
	"/app/installations/{installation_id}",
	"/app/installations/{installation_id}/access_tokens",
	"/app-manifests/{code}/conversions",
	"/app/hook/deliveries",
	"/app/hook/deliveries/{delivery_id}",
	"/app/hook/deliveries/{delivery_id}/attempts",
	"/repos/{owner}/{repo}/installation",
	"/repos/{owner}/{repo}",
	"/repos/{owner}/{repo}/commits/{ref}",
	"/repos/{owner}/{repo}/collaborators/{username}/permission",
	"/repos/{owner}/{repo}/git/ref/{ref}",
	"/repos/{owner}/{repo}/compare/{basehead}",
	"/repos/{owner}/{repo}/contents/{path}",
	"/repos/{owner}/{repo}/tarball/{ref}",
	"/repos/{owner}/{repo}/check-runs",
	"/repos/{owner}/{repo}/check-runs/{check_run_id}",
	"/repos/{owner}/{repo}/commits/{ref}/check-runs",
	"/repos/{owner}/{repo}/statuses/{sha}",
	"/repos/{owner}/{repo}/commits/{ref}/statuses",
	"/repos/{owner}/{repo}/deployments",
	"/repos/{owner}/{repo}/deployments/{deployment_id}/statuses",
	"/repos/{owner}/{repo}/issues/{issue_number}/comments",
	"/repos/{owner}/{repo}/issues/comments/{comment_id}",
	"/repos/{owner}/{repo}/pulls/{pull_number}",
	"/user",
	"/user/installations",
	"/user/installations/{installation_id}/repositories",
}

// prune keeps the served paths and every component they reach through $ref, unchanged.
func prune(data []byte) ([]byte, error) {
	var doc map[string]any
	if err := json.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("decode REST description: %w", err)
	}
	paths, _ := doc["paths"].(map[string]any)
	components, _ := doc["components"].(map[string]any)
	keptPaths := map[string]any{}
	for _, p := range servedPaths {
		item, ok := paths[p]
		if !ok {
			return nil, fmt.Errorf("REST description has no path %s", p)
		}
		keptPaths[p] = item
	}
	kept := map[string]map[string]any{}
	var queue []any
	queue = append(queue, keptPaths)
	for len(queue) > 0 {
		v := queue[len(queue)-1]
		queue = queue[:len(queue)-1]
		switch v := v.(type) {
		case map[string]any:
			if ref, ok := v["$ref"].(string); ok {
				parts := strings.Split(strings.TrimPrefix(ref, "#/components/"), "/")
				if len(parts) == 2 && kept[parts[0]][parts[1]] == nil {
					group, _ := components[parts[0]].(map[string]any)
					if target, ok := group[parts[1]]; ok {
						if kept[parts[0]] == nil {
							kept[parts[0]] = map[string]any{}
						}
						kept[parts[0]][parts[1]] = target
						queue = append(queue, target)
					}
				}
			}
			for _, x := range v {
				queue = append(queue, x)
			}
		case []any:
			queue = append(queue, v...)
		}
	}
	if err := fixInstallationsAccount(keptPaths); err != nil {
		return nil, err
	}
	doc["paths"] = keptPaths
	comps := map[string]any{}
	for k, v := range kept {
		comps[k] = v
	}
	doc["components"] = comps
	delete(doc, "webhooks")
	return json.Marshal(doc)
}

// fixInstallationsAccount corrects one defect of the published description: GET /app/installations
// inlines the installation's "account" as allOf [simple-user, enterprise], which no account can
// satisfy (a user has no slug), while components/schemas/installation, the same object everywhere
// else, says anyOf. The correction is made only where the defect is, and fails loudly if the
// description changes shape, so a fixed upstream makes this code fail rather than hide anything.
func fixInstallationsAccount(paths map[string]any) error {
	var node any = paths
	for _, k := range []string{"/app/installations", "get", "responses", "200", "content", "application/json", "schema", "items", "properties", "account"} {
		m, ok := node.(map[string]any)
		if !ok {
			return fmt.Errorf("REST description changed at %s: drop fixInstallationsAccount", k)
		}
		node = m[k]
	}
	account, ok := node.(map[string]any)
	if !ok || account["allOf"] == nil {
		return errors.New("GET /app/installations account is no longer allOf: drop fixInstallationsAccount")
	}
	account["anyOf"] = account["allOf"]
	delete(account, "allOf")
	return nil
}

func multiSegment(item *openapi3.PathItem, name string) bool {
	for _, op := range item.Operations() {
		for _, p := range op.Parameters {
			if p.Value != nil && p.Value.Name == name && p.Value.In == "path" {
				if v, ok := p.Value.Extensions["x-multi-segment"].(bool); ok && v {
					return true
				}
			}
		}
	}
	return name == "path"
}

// mustSpec fails the test (never skips) when the description is not installed.
func mustSpec(t testing.TB) *spec {
	t.Helper()
	sp, err := loadSpec()
	if err != nil {
		t.Fatal(err)
	}
	return sp
}

// find returns the operation serving method + path, and its path parameters.
func (sp *spec) find(method, path string) (*routers.Route, map[string]string, bool) {
	for _, r := range sp.routes {
		m := r.re.FindStringSubmatch(path)
		if m == nil {
			continue
		}
		op := r.item.GetOperation(strings.ToUpper(method))
		if op == nil {
			continue
		}
		params := map[string]string{}
		for i, n := range r.names {
			params[n] = m[i+1]
		}
		return &routers.Route{Spec: sp.doc, Path: r.path, PathItem: r.item, Method: method, Operation: op}, params, true
	}
	return nil, nil, false
}

// validation is one checked exchange.
type validation struct {
	Operation string
	Status    int
	Err       error
}

// validatingTransport checks every request to the API host, and the response to it, against GitHub's
// REST description: the request's parameters and body, the status code (it must be declared for a
// 2xx/3xx) and the response body's schema.
type validatingTransport struct {
	spec    *spec
	apiHost string
	base    http.RoundTripper

	mu      sync.Mutex
	results []validation
}

func (vt *validatingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.URL.Host != vt.apiHost || strings.HasPrefix(req.URL.Path, "/login/") || strings.HasPrefix(req.URL.Path, "/settings/") {
		return vt.base.RoundTrip(req)
	}
	var reqBody []byte
	if req.Body != nil {
		b, err := io.ReadAll(req.Body)
		if err != nil {
			return nil, err
		}
		reqBody = b
		req.Body = io.NopCloser(bytes.NewReader(b))
	}
	resp, err := vt.base.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	respBody, err := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if err != nil {
		return nil, err
	}
	resp.Body = io.NopCloser(bytes.NewReader(respBody))
	vt.record(req, reqBody, resp, respBody)
	return resp, nil
}

func (vt *validatingTransport) record(req *http.Request, reqBody []byte, resp *http.Response, respBody []byte) {
	v := validation{Operation: req.Method + " " + req.URL.Path, Status: resp.StatusCode}
	v.Err = vt.spec.check(req, reqBody, resp.StatusCode, resp.Header, respBody)
	vt.mu.Lock()
	vt.results = append(vt.results, v)
	vt.mu.Unlock()
}

// check validates one exchange against the description.
func (sp *spec) check(req *http.Request, reqBody []byte, status int, header http.Header, respBody []byte) error {
	route, params, ok := sp.find(req.Method, req.URL.Path)
	if !ok {
		return fmt.Errorf("%s %s is not an operation of GitHub's REST API", req.Method, req.URL.Path)
	}
	ctx := context.Background()
	opts := &openapi3filter.Options{
		MultiError:         true,
		AuthenticationFunc: openapi3filter.NoopAuthenticationFunc,
		// A successful status must be one GitHub declares; error statuses are checked when declared.
		IncludeResponseStatus: status < 400,
	}
	if string(bytes.TrimSpace(reqBody)) == "null" {
		// ghinstallation posts a JSON null when it asks for an unrestricted token; GitHub reads
		// that as no body, and so does this check.
		reqBody = nil
	}
	clone := req.Clone(ctx)
	clone.Body = io.NopCloser(bytes.NewReader(reqBody))
	in := &openapi3filter.RequestValidationInput{Request: clone, PathParams: params, Route: route, Options: opts}
	var errs []error
	if status < 400 {
		// Requests the server refused on purpose (limits, bad credentials) need not match.
		if err := openapi3filter.ValidateRequest(ctx, in); err != nil {
			errs = append(errs, fmt.Errorf("request: %w", err))
		}
	}
	out := &openapi3filter.ResponseValidationInput{RequestValidationInput: in, Status: status, Header: header, Options: opts}
	out.SetBodyBytes(respBody)
	if err := openapi3filter.ValidateResponse(ctx, out); err != nil {
		errs = append(errs, fmt.Errorf("response %d: %w", status, err))
	}
	if len(errs) > 0 {
		return fmt.Errorf("%s %s (%s): %w", req.Method, req.URL.Path, route.Path, errors.Join(errs...))
	}
	return nil
}

// checked returns the validated exchanges so far.
func (vt *validatingTransport) checked() []validation {
	vt.mu.Lock()
	defer vt.mu.Unlock()
	return append([]validation(nil), vt.results...)
}
