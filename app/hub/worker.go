package hub

import (
	"sync"
)

// worker runs one agent's reports, in the order they arrived, off the connections'
// readers: storing lines and results and calling the sink may wait on the database or on
// GitHub, and a reader that waited with them would read no pong and drop a healthy agent.
// It belongs to the agent, not to a connection, so the departure of one connection is
// handled before the arrival of the next, and its goroutine lives only while work waits.
type worker struct {
	hub *Hub

	mu      sync.Mutex
	queue   []task
	bytes   int
	running bool
	// freed is closed and replaced whenever queued bytes drop, to wake a waiting reader.
	freed chan struct{}
}

// task is one piece of an agent's work; size counts against the queue's byte bound.
type task struct {
	size int
	run  func()
}

func newWorker(h *Hub) *worker {
	return &worker{hub: h, freed: make(chan struct{})}
}

// push queues a frame's work for c's agent. While the queue holds more than
// Options.WorkQueueBytes the reader waits (the agent's writes then wait on TCP), but never
// past the end of the connection; false means the connection ended first.
func (w *worker) push(c *conn, size int, run func()) bool {
	for {
		w.mu.Lock()
		if len(w.queue) == 0 || w.bytes+size <= w.hub.opts.WorkQueueBytes {
			w.addLocked(task{size: size, run: run})
			w.mu.Unlock()
			return true
		}
		freed := w.freed
		w.mu.Unlock()
		// The server is the slow party here: while the reader waits for room, a late pong
		// is not the agent's fault (see startPing).
		c.readerWaiting.Store(true)
		select {
		case <-freed:
			c.readerWaiting.Store(false)
			c.heard()
		case <-c.ctx.Done():
			c.readerWaiting.Store(false)
			return false
		}
	}
}

// control queues work that must not wait or be refused: a log flush, a connection's end.
func (w *worker) control(run func()) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.addLocked(task{run: run})
}

func (w *worker) addLocked(t task) {
	w.queue = append(w.queue, t)
	w.bytes += t.size
	if !w.running {
		w.running = true
		w.hub.workers.Add(1)
		go w.loop()
	}
}

// loop runs tasks until the queue is empty, then ends; the next push starts a new one.
func (w *worker) loop() {
	defer w.hub.workers.Done()
	for {
		w.mu.Lock()
		if len(w.queue) == 0 {
			w.running = false
			w.queue = nil
			w.mu.Unlock()
			return
		}
		t := w.queue[0]
		w.queue[0] = task{}
		w.queue = w.queue[1:]
		w.mu.Unlock()

		t.run()

		if t.size > 0 {
			w.mu.Lock()
			w.bytes -= t.size
			close(w.freed)
			w.freed = make(chan struct{})
			w.mu.Unlock()
		}
	}
}
