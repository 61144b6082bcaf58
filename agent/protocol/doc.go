// Package protocol is the wire contract between the Stagely server and its agents.
//
// It is stdlib-only so that the server can import it without pulling in the agent's
// dependencies. Every frame is one JSON text message of the form
//
//	{"type": "<TYPE>", "payload": {...}}
//
// # Connection and handshake
//
// The agent dials GET <server_url>/agent/ws with "Authorization: Bearer <token>".
// A refused token is answered with HTTP 401 before the upgrade. After the upgrade the
// agent's first frame is HELLO, which carries Version in its protocol field and every
// JobResult the server has not acknowledged yet. A server that does not speak that
// protocol version closes the connection with StatusPolicyViolation and the reason
// CloseReasonProtocolVersion; the agent logs the reason and retries slowly.
//
// # Order of messages for one job
//
//	server -> agent  DEPLOY       {job_id, ...}
//	agent  -> server JOB_ACCEPTED {job_id}
//	agent  -> server JOB_PHASE    {job_id, phase}         (zero or more, in phase order)
//	agent  -> server JOB_PHASE    {job_id, "planned", plan} (at most once, before the swap begins)
//	agent  -> server LOG_CHUNK    {job_id, seq, ...}      (zero or more, seq strictly increasing from 1)
//	server -> agent  LOG_ACK      {job_id, seq}           (version 2: every line up to seq is stored)
//	agent  -> server JOB_RESULT   {job_id, status, ...}   (exactly once per job)
//	server -> agent  RESULT_ACK   {job_id}                (the agent then drops the result from its journal)
//
// CANCEL {job_id} may arrive at any time before JOB_RESULT; the job then ends with
// status "cancelled" (or with its real outcome if it finished first). A DEPLOY for a job
// the agent already finished is not run again: the agent answers with the journaled
// JOB_RESULT. A result that could not be delivered is journaled on disk and sent again in
// the next HELLO, until RESULT_ACK arrives, so a dropped connection loses nothing.
//
// Log lines are kept by the agent until a LOG_ACK covers them (version 2). The server sends
// LOG_ACK once the lines are stored, in order, so an ack for seq n confirms every line of the
// job up to n. After a reconnect the agent sends again, in order and before anything newer,
// each line not confirmed yet; the server ignores a (job_id, seq) it has stored already. A
// job's result follows its unconfirmed lines, so the server stores the lines first.
// RESULT_ACK also confirms every line of its job. LOG_ACK means "do not send again": it
// also covers lines the server dropped on purpose (a bad stream, a job not dispatched to
// this agent).
//
// A field added within a version is optional and ignored by a peer that does not know it:
// JOB_PHASE's plan (what the swap will create, recreate, leave alone, ignore or remove,
// sent once the agent knows and before anything stops) and a result service's change (the
// plan's word for it), so neither needed a new version.
//
// # Self-update
//
// HELLO carries the agent's platform (linux/amd64) and features; an agent listing
// FeatureSelfUpdate may receive UPDATE when idle. It answers UPDATE_FAILED when it does not
// apply it; on success it reconnects with a HELLO carrying the new version (update.go).
//
// # Limits
//
// Each side sets a read limit (MaxFrameBytes), and Decode refuses a larger frame too. A
// frame of an unknown type, or one larger than the limit, closes the connection with a
// reason that says so; it never crashes the peer (FuzzDecode holds Decode to that).
package protocol
