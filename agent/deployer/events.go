package deployer

import "github.com/stagely/stagely/agent/protocol"

// Events receives what a deploy reports while it runs. The job runner implements it: it
// numbers log lines into LOG_CHUNK frames and forwards phases as JOB_PHASE. The deployer
// masks secret values before a line reaches Log.
type Events interface {
	// Phase reports that the job entered one of the protocol.Phase* phases.
	Phase(phase string)
	// Log reports one line of output; stream is one of the protocol.Stream* values.
	Log(stream, line string)
	// Plan reports what the swap will change, once known and before anything stops.
	Plan(plan protocol.Plan)
}
