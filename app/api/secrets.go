package api

import (
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/stagely/stagely/agent/protocol"
	"github.com/stagely/stagely/app/secrets"
	"github.com/stagely/stagely/store"
)

// checkSecret validates each part of a secret on its own, so every bad field is named;
// the rules themselves are app/secrets' (one source of truth with the deploy path).
func checkSecret(scope, key string, value []byte) []Validation {
	const okScope, okKey = "global", "OK"
	var vs []Validation
	add := func(field string, err error) {
		if err != nil {
			msg := strings.TrimPrefix(err.Error(), secrets.ErrInvalid.Error()+": ")
			vs = append(vs, Validation{Field: field, Message: msg})
		}
	}
	add("scope", secrets.Validate(scope, okKey, nil))
	add("key", secrets.Validate(okScope, key, nil))
	if len(value) > secrets.MaxValueBytes {
		// The size only: the value itself is never quoted back.
		vs = append(vs, Validation{Field: "value", Message: fmt.Sprintf("is %d bytes, the limit is %d (64 KiB)", len(value), secrets.MaxValueBytes)})
	}
	return vs
}

// environmentParam reads the set a secret request addresses, ?environment=production (the
// default) or preview.
func environmentParam(c *gin.Context) (string, error) {
	env := c.DefaultQuery("environment", store.EnvProduction)
	if env != store.EnvProduction && env != store.EnvPreview {
		return "", invalid("unknown secret set", Validation{Field: "environment", Message: `must be "production" or "preview"`})
	}
	return env, nil
}

func (a *API) listSecrets(c *gin.Context, u store.User) error {
	p, err := a.userProject(c, u)
	if err != nil {
		return err
	}
	metas, err := a.secrets.List(c.Request.Context(), p.ID)
	if err != nil {
		return err
	}
	return list(c, metas, toSecretView)
}

type putSecretRequest struct {
	Value             *string `json:"value"`
	ShareWithPreviews *bool   `json:"share_with_previews"`
}

// checkShare refuses marking a preview secret as shared: it already is a preview secret.
func checkShare(env string, share *bool) []Validation {
	if env == store.EnvPreview && share != nil && *share {
		return []Validation{{Field: "share_with_previews", Message: "is for production secrets: a preview secret already reaches previews"}}
	}
	return nil
}

func (a *API) putSecret(c *gin.Context, u store.User) error {
	p, err := a.userProject(c, u)
	if err != nil {
		return err
	}
	env, err := environmentParam(c)
	if err != nil {
		return err
	}
	var req putSecretRequest
	if err := decode(c, &req); err != nil {
		return err
	}
	scope, key := c.Param("scope"), c.Param("key")
	var value []byte
	if req.Value != nil {
		value = []byte(*req.Value)
	}
	vs := checkSecret(scope, key, value)
	if req.Value == nil {
		vs = append(vs, Validation{Field: "value", Message: "is required (an empty string is allowed)"})
	}
	vs = append(vs, checkShare(env, req.ShareWithPreviews)...)
	if len(vs) > 0 {
		return invalid("the secret cannot be saved as sent", vs...)
	}
	ctx := c.Request.Context()
	meta, err := a.secrets.PutEntry(ctx, p.ID, secrets.Entry{Environment: env, Scope: scope, Key: key, Value: value, Share: req.ShareWithPreviews})
	if errors.Is(err, secrets.ErrInvalid) {
		return invalid(strings.TrimPrefix(err.Error(), secrets.ErrInvalid.Error()+": "))
	}
	if err != nil {
		return err
	}
	// The secret is already stored (the service owns that write), so a failed audit line is
	// logged rather than turned into an error the user would take for a failed save.
	a.auditSecret(c, u, "secret.put", p.ID, map[string]any{"environment": env, "scope": scope, "key": key, "share_with_previews": meta.ShareWithPreviews})
	c.JSON(http.StatusOK, toSecretView(meta))
	return nil
}

// auditSecret records a secret change the service already stored; a failure is logged only.
func (a *API) auditSecret(c *gin.Context, u store.User, action string, projectID int64, detail map[string]any) {
	if err := audit(c, a.st, u, action, "project", projectID, detail); err != nil {
		a.log.Error("audit secret change", "action", action, "project", projectID, "err", err)
	}
}

type patchSecretRequest struct {
	ShareWithPreviews *bool `json:"share_with_previews"`
}

// patchSecret marks or unmarks a production secret for previews, leaving its value alone.
func (a *API) patchSecret(c *gin.Context, u store.User) error {
	p, err := a.userProject(c, u)
	if err != nil {
		return err
	}
	env, err := environmentParam(c)
	if err != nil {
		return err
	}
	var req patchSecretRequest
	if err := decode(c, &req); err != nil {
		return err
	}
	switch {
	case req.ShareWithPreviews == nil:
		return invalid("nothing to change: send share_with_previews", Validation{Field: "share_with_previews", Message: "is required"})
	case env == store.EnvPreview:
		return invalid("a preview secret already reaches previews",
			Validation{Field: "share_with_previews", Message: "is for production secrets"})
	}
	scope, key := c.Param("scope"), c.Param("key")
	meta, err := a.secrets.SetSharing(c.Request.Context(), p.ID, scope, key, *req.ShareWithPreviews)
	if err != nil {
		return err
	}
	a.auditSecret(c, u, "secret.share", p.ID, map[string]any{"scope": scope, "key": key, "share_with_previews": meta.ShareWithPreviews})
	c.JSON(http.StatusOK, toSecretView(meta))
	return nil
}

func (a *API) deleteSecret(c *gin.Context, u store.User) error {
	p, err := a.userProject(c, u)
	if err != nil {
		return err
	}
	env, err := environmentParam(c)
	if err != nil {
		return err
	}
	scope, key := c.Param("scope"), c.Param("key")
	ctx := c.Request.Context()
	err = a.st.InTx(ctx, func(tx *store.Store) error {
		if err := tx.DeleteSecret(ctx, p.ID, env, scope, key); err != nil {
			return err
		}
		return audit(c, tx, u, "secret.delete", "project", p.ID, map[string]any{"environment": env, "scope": scope, "key": key})
	})
	if err != nil {
		return err
	}
	c.Status(http.StatusNoContent)
	return nil
}

type importSecretsRequest struct {
	// Dotenv is the pasted file.
	Dotenv string `json:"dotenv"`
	// Scope is where every variable of the file goes (default global).
	Scope             *string `json:"scope"`
	ShareWithPreviews *bool   `json:"share_with_previews"`
}

// importSecrets stores every variable of a pasted .env file in one set, all or none: a bad
// line is a 400 naming each bad line (field "line N"), and nothing is stored.
func (a *API) importSecrets(c *gin.Context, u store.User) error {
	p, err := a.userProject(c, u)
	if err != nil {
		return err
	}
	env, err := environmentParam(c)
	if err != nil {
		return err
	}
	var req importSecretsRequest
	if err := decode(c, &req); err != nil {
		return err
	}
	scope := protocol.ScopeGlobal
	if req.Scope != nil {
		scope = *req.Scope
	}
	vs := checkShare(env, req.ShareWithPreviews)
	if err := secrets.Validate(scope, "OK", nil); err != nil {
		vs = append(vs, Validation{Field: "scope", Message: strings.TrimPrefix(err.Error(), secrets.ErrInvalid.Error()+": ")})
	}
	vars, lineErrs := secrets.ParseDotenv(req.Dotenv)
	for _, le := range lineErrs {
		field := "dotenv"
		if le.Line > 0 {
			field = fmt.Sprintf("line %d", le.Line)
		}
		vs = append(vs, Validation{Field: field, Message: le.Message})
	}
	if len(vars) == 0 && len(lineErrs) == 0 {
		vs = append(vs, Validation{Field: "dotenv", Message: "holds no KEY=VALUE line"})
	}
	if len(vs) > 0 {
		return invalid("nothing was imported: fix these lines and paste the file again", vs...)
	}
	entries := make([]secrets.Entry, 0, len(vars))
	keys := make([]string, 0, len(vars))
	for _, v := range vars {
		entries = append(entries, secrets.Entry{Environment: env, Scope: scope, Key: v.Key, Value: []byte(v.Value), Share: req.ShareWithPreviews})
		keys = append(keys, v.Key)
	}
	metas, err := a.secrets.PutAll(c.Request.Context(), p.ID, entries)
	if err != nil {
		return err
	}
	a.auditSecret(c, u, "secret.import", p.ID, map[string]any{"environment": env, "scope": scope, "keys": keys})
	return list(c, metas, toSecretView)
}
