package intake

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/stagely/stagely/store"
	"github.com/stagely/stagely/webhook"
)

// EventHandler acts on the deliveries of one webhook event. It switches on the action and
// returns the delivery's one-line decision ("deployed as #12", "ignored: tag push"); an
// error means the delivery is tried again after a back-off.
type EventHandler interface {
	// Handles is the X-GitHub-Event name the handler acts on.
	Handles() string
	// Handle acts on one decoded delivery of that event; deliveryID is its
	// webhook_deliveries row.
	Handle(ctx context.Context, deliveryID int64, ev webhook.Event) (string, error)
}

// On is the EventHandler of the events of type E, made of a function that takes them, e.g.
// intake.On(deploy.NewPushHandler(o).Handle): the handler itself never sees another event.
func On[E webhook.Event](handle func(ctx context.Context, deliveryID int64, ev E) (string, error)) EventHandler {
	return typedHandler[E](handle)
}

type typedHandler[E webhook.Event] func(ctx context.Context, deliveryID int64, ev E) (string, error)

// Handles returns the event name of E.
func (typedHandler[E]) Handles() string {
	var zero E
	return zero.EventName()
}

// Handle passes ev on if it is an E; the worker only ever gives it one.
func (h typedHandler[E]) Handle(ctx context.Context, deliveryID int64, ev webhook.Event) (string, error) {
	e, ok := ev.(E)
	if !ok {
		return "", fmt.Errorf("the %s handler was given a %s event", h.Handles(), ev.EventName())
	}
	return h(ctx, deliveryID, e)
}

// Queue is the delivery table as the worker sees it.
type Queue interface {
	ClaimDeliveries(ctx context.Context, n int, lease time.Duration, now time.Time) ([]store.Delivery, error)
	FinishDelivery(ctx context.Context, id int64, status, decision string, at time.Time) error
	DelayDelivery(ctx context.Context, id int64, until time.Time) error
}

// WorkerOptions configures a Worker.
type WorkerOptions struct {
	Queue Queue
	// Handlers has at most one handler per event; events without one are decided
	// "ignored", as are events Stagely does not decode.
	Handlers []EventHandler
	Logger   *slog.Logger
	Metrics  Metrics
	// Workers bounds how many deliveries are processed at once.
	Workers int
	// Lease is how long a claimed delivery is held before another worker may retry it.
	Lease time.Duration
	// MaxAttempts is how often a delivery whose processing errs is tried before it is failed.
	MaxAttempts int
	// Poll is how often the table is read when nothing pokes the worker.
	Poll time.Duration
	// Timeout bounds the processing of one delivery.
	Timeout time.Duration
	Now     func() time.Time
}

// Worker processes recorded deliveries from the database. Deliveries about one repository
// are processed one after another in the order GitHub sent them, so that of two quick
// pushes the newer one is queued last and supersedes the older; different repositories
// proceed in parallel, up to Workers at once.
type Worker struct {
	opt      WorkerOptions
	handlers map[string]EventHandler
	wake     chan struct{}
	sem      chan struct{}

	mu sync.Mutex
	// queues holds, per ordering key, deliveries claimed and not yet processed; a key is
	// present exactly while a drain goroutine owns it.
	queues  map[string][]store.Delivery
	pending int
	// inflight holds the ids claimed and not yet finished here: a lease that runs out while a
	// delivery still waits in its queue lets the next claim return it again.
	inflight map[int64]bool
}

// NewWorker builds a Worker, filling defaults. Two handlers for one event are a wiring
// mistake, and panic.
func NewWorker(opt WorkerOptions) *Worker {
	handlers := map[string]EventHandler{}
	for _, h := range opt.Handlers {
		if _, dup := handlers[h.Handles()]; dup {
			panic(fmt.Sprintf("intake: two handlers for %s events", h.Handles()))
		}
		handlers[h.Handles()] = h
	}
	if opt.Workers <= 0 {
		opt.Workers = 4
	}
	if opt.Lease <= 0 {
		// Long enough for a delivery to wait behind others of its repository and be processed.
		opt.Lease = 5 * time.Minute
	}
	if opt.MaxAttempts <= 0 {
		opt.MaxAttempts = 5
	}
	if opt.Poll <= 0 {
		opt.Poll = 2 * time.Second
	}
	if opt.Timeout <= 0 {
		opt.Timeout = 45 * time.Second
	}
	if opt.Now == nil {
		opt.Now = time.Now
	}
	if opt.Logger == nil {
		opt.Logger = slog.New(slog.DiscardHandler)
	}
	return &Worker{
		opt:      opt,
		handlers: handlers,
		wake:     make(chan struct{}, 1),
		sem:      make(chan struct{}, opt.Workers),
		queues:   map[string][]store.Delivery{},
		inflight: map[int64]bool{},
	}
}

// Poke wakes the worker; it never blocks.
func (w *Worker) Poke() {
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// Run processes deliveries until ctx ends, then waits for those in flight.
func (w *Worker) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	defer wg.Wait()
	t := time.NewTicker(w.opt.Poll)
	defer t.Stop()
	// Claim a little ahead of the workers, so one installation's backlog does not starve others.
	window := 4 * w.opt.Workers
	for {
		w.mu.Lock()
		free := window - w.pending
		w.mu.Unlock()
		if free > 0 {
			batch, err := w.opt.Queue.ClaimDeliveries(ctx, free, w.opt.Lease, w.opt.Now())
			if err != nil && ctx.Err() == nil {
				w.opt.Logger.Error("claim webhook deliveries", "err", err)
			}
			for _, d := range batch {
				w.submit(ctx, &wg, d)
			}
			if len(batch) == free {
				continue // there may be more waiting
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-w.wake:
		case <-t.C:
		}
	}
}

// orderKey names what a delivery must stay in order with: its repository, or, for events
// about no repository (installation), its installation. Both were read from the payload
// when the delivery was recorded.
func orderKey(d store.Delivery) string {
	if d.RepositoryID.Valid {
		return fmt.Sprintf("repo:%d", d.RepositoryID.Int64)
	}
	return fmt.Sprintf("installation:%d", d.InstallationID.Int64)
}

func (w *Worker) submit(ctx context.Context, wg *sync.WaitGroup, d store.Delivery) {
	key := orderKey(d)
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.inflight[d.ID] {
		return
	}
	w.inflight[d.ID] = true
	w.pending++
	q, draining := w.queues[key]
	w.queues[key] = append(q, d)
	if !draining {
		wg.Add(1)
		go w.drain(ctx, wg, key)
	}
}

func (w *Worker) drain(ctx context.Context, wg *sync.WaitGroup, key string) {
	defer wg.Done()
	for {
		w.mu.Lock()
		q := w.queues[key]
		if len(q) == 0 {
			delete(w.queues, key)
			w.mu.Unlock()
			return
		}
		d := q[0]
		w.queues[key] = q[1:]
		w.mu.Unlock()

		w.sem <- struct{}{}
		backOff := w.process(ctx, d)
		<-w.sem

		w.mu.Lock()
		w.pending--
		delete(w.inflight, d.ID)
		w.mu.Unlock()
		// The back-off is written only once the delivery is no longer held here: a claim that
		// comes after it has passed must find the delivery free, or the attempt it counts
		// would never run.
		if backOff > 0 {
			w.delay(ctx, d, backOff)
		}
		w.Poke()
	}
}

// process handles one delivery with its own bounded context, detached from Run's, so a
// shutdown lets the delivery finish rather than leaving it half done. A delivery whose
// processing erred and may be tried again is left claimed, and process returns how long it
// waits before the next attempt.
func (w *Worker) process(parent context.Context, d store.Delivery) (backOff time.Duration) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(parent), w.opt.Timeout)
	defer cancel()
	log := w.logger(d)

	decision, err := w.decide(ctx, d)
	status := store.DeliveryDone
	if err != nil {
		var bad *badPayloadError
		switch {
		case errors.As(err, &bad):
			status, decision = store.DeliveryFailed, "rejected: "+bad.Error()
		case d.Attempts < w.opt.MaxAttempts:
			backOff = min(5*time.Second<<(d.Attempts-1), 2*time.Minute)
			log.Warn("process webhook delivery; will retry", "err", err, "retry_in", backOff)
			return backOff
		default:
			status, decision = store.DeliveryFailed, fmt.Sprintf("failed after %d attempts: %v", d.Attempts, err)
		}
	}
	if err := w.opt.Queue.FinishDelivery(ctx, d.ID, status, decision, w.opt.Now()); err != nil {
		log.Error("record webhook decision", "err", err)
		return 0
	}
	if w.opt.Metrics != nil {
		w.opt.Metrics.Webhook(d.Event, outcome(status, decision))
	}
	log.Info("webhook processed", "decision", decision)
	return 0
}

// delay keeps a claimed delivery until its back-off has passed; then a claim takes it again.
func (w *Worker) delay(parent context.Context, d store.Delivery, backOff time.Duration) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(parent), w.opt.Timeout)
	defer cancel()
	if err := w.opt.Queue.DelayDelivery(ctx, d.ID, w.opt.Now().Add(backOff)); err != nil {
		w.logger(d).Error("delay webhook delivery; it is retried when its lease ends", "err", err)
	}
}

func (w *Worker) logger(d store.Delivery) *slog.Logger {
	return w.opt.Logger.With("delivery", d.DeliveryID, "event", d.Event, "action", d.Action, "attempt", d.Attempts)
}

type badPayloadError struct{ err error }

func (e *badPayloadError) Error() string { return e.err.Error() }

func (w *Worker) decide(ctx context.Context, d store.Delivery) (string, error) {
	ev, err := webhook.Decode(d.Event, d.Payload)
	if err != nil {
		return "", &badPayloadError{err}
	}
	if ping, ok := ev.(webhook.Ping); ok {
		return fmt.Sprintf("pong: %s", ping.Zen), nil
	}
	h, ok := w.handlers[ev.EventName()]
	if !ok {
		if d.Action != "" {
			return fmt.Sprintf("ignored: Stagely does not act on %s %s", d.Event, d.Action), nil
		}
		return fmt.Sprintf("ignored: Stagely does not act on %s", d.Event), nil
	}
	return h.Handle(ctx, d.ID, ev)
}

func outcome(status, decision string) string {
	switch {
	case status == store.DeliveryFailed:
		return "failed"
	case len(decision) >= 8 && decision[:8] == "ignored:":
		return "ignored"
	default:
		return "processed"
	}
}
