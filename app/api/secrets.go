package api

import (
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/gin-gonic/gin"

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
	Value *string `json:"value"`
}

func (a *API) putSecret(c *gin.Context, u store.User) error {
	p, err := a.userProject(c, u)
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
	if len(vs) > 0 {
		return invalid("the secret cannot be saved as sent", vs...)
	}
	ctx := c.Request.Context()
	meta, err := a.secrets.Put(ctx, p.ID, scope, key, value)
	if errors.Is(err, secrets.ErrInvalid) {
		return invalid(strings.TrimPrefix(err.Error(), secrets.ErrInvalid.Error()+": "))
	}
	if err != nil {
		return err
	}
	// The secret is already stored (the service owns that write), so a failed audit line is
	// logged rather than turned into an error the user would take for a failed save.
	if err := audit(c, a.st, u, "secret.put", "project", p.ID, map[string]any{"scope": scope, "key": key}); err != nil {
		a.log.Error("audit secret change", "project", p.ID, "scope", scope, "key", key, "err", err)
	}
	c.JSON(http.StatusOK, toSecretView(meta))
	return nil
}

func (a *API) deleteSecret(c *gin.Context, u store.User) error {
	p, err := a.userProject(c, u)
	if err != nil {
		return err
	}
	scope, key := c.Param("scope"), c.Param("key")
	ctx := c.Request.Context()
	err = a.st.InTx(ctx, func(tx *store.Store) error {
		if err := tx.DeleteSecret(ctx, p.ID, store.EnvProduction, scope, key); err != nil {
			return err
		}
		return audit(c, tx, u, "secret.delete", "project", p.ID, map[string]any{"scope": scope, "key": key})
	})
	if err != nil {
		return err
	}
	c.Status(http.StatusNoContent)
	return nil
}
