package deploy

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/stagely/stagely/store"
)

// supersedeLatePush keeps a push from rolling its branch back. GitHub may deliver pushes out of
// order, and pushes recovered after an outage come back by redelivery in any order: a push that
// GitHub sent before another push to the same branch that was already queued or deployed is not
// deployed. Its deployment is recorded superseded by that newer one, and GitHub is told so on
// its commit; note says what happened ("#7 (web) by #5 (abc1234), …"). note is empty when the
// push is the newest seen, or is not a push that came as a webhook delivery.
//
// Pushes are ordered by when GitHub first sent them (store.NewerPushDeployment), from what the
// webhook deliveries and the recovery loop recorded, without asking GitHub.
func (o *Orchestrator) supersedeLatePush(ctx context.Context, p store.Project, sha, ref, trigger string, delivery *int64) (note string, err error) {
	if trigger != store.TriggerPush || delivery == nil {
		return "", nil
	}
	newer, err := o.opt.Store.NewerPushDeployment(ctx, p.ID, ref, *delivery)
	if errors.Is(err, store.ErrNotFound) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("order push of %s: %w", short(sha), err)
	}
	d, err := o.opt.Store.RecordSupersededPush(ctx, store.NewDeployment{
		ProjectID: p.ID, SHA: sha, Ref: ref, Trigger: trigger, DeliveryID: delivery,
	}, newer.ID, o.opt.Now())
	if err != nil {
		return "", fmt.Errorf("record superseded push of %s: %w", short(sha), err)
	}
	o.observe(d)
	o.reportFinal(ctx, p, d, nil)
	branch := strings.TrimPrefix(ref, "refs/heads/")
	return fmt.Sprintf("#%d (%s) by #%d (%s), a newer push to %s that reached Stagely first", d.ID, p.Name, newer.ID, short(newer.SHA), branch), nil
}
