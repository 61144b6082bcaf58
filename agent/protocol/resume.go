package protocol

// What lets a job survive a dropped connection or a restart on either side (version 2).

// TypeLogAck is the server's confirmation that it stored a job's lines (server to agent).
const TypeLogAck = "LOG_ACK"

// LogAck tells the agent the server has stored every line of the job up to Seq: the agent
// forgets them. Lines sent but not confirmed are sent again after a reconnect.
type LogAck struct {
	JobID string `json:"job_id"`
	Seq   int64  `json:"seq"`
}

// CloseReasonRetryLater closes a connection (StatusTryAgainLater) whose reports the server
// could not store for a while, its database down, say: the agent reconnects with its usual
// backoff and sends again what was not acknowledged.
const CloseReasonRetryLater = "server could not store the agent's reports; send them again later"

// States of a job the agent holds, as HELLO lists them.
const (
	// JobQueued waits behind the running job.
	JobQueued = "queued"
	// JobRunning is being deployed, or brought to a known state after an agent restart.
	JobRunning = "running"
	// JobFinished has a result the agent has not delivered yet (it follows the job's lines).
	JobFinished = "finished"
)

// HeldJob is one job the agent holds, as listed in HELLO.
type HeldJob struct {
	JobID string `json:"job_id"`
	State string `json:"state"`
}
