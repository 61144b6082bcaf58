package store

import (
	"context"
	"time"

	"github.com/lib/pq"
)

// LogLine is one line of a deployment's output.
type LogLine struct {
	DeploymentID int64     `db:"deployment_id"`
	Seq          int64     `db:"seq"`
	Stream       string    `db:"stream"`
	Line         string    `db:"line"`
	TS           time.Time `db:"ts"`
}

// AppendAgentLogs stores a batch of lines of one deployment in one statement, only if the
// deployment was dispatched to agentID, so no agent can write into another's logs. A line
// whose seq is already stored (sent again after a reconnect) is skipped: no doubles.
func (s *Store) AppendAgentLogs(ctx context.Context, deploymentID, agentID int64, lines []LogLine) error {
	if len(lines) == 0 {
		return nil
	}
	seqs := make([]int64, len(lines))
	streams := make([]string, len(lines))
	texts := make([]string, len(lines))
	stamps := make([]string, len(lines))
	for i, l := range lines {
		seqs[i], streams[i], texts[i] = l.Seq, l.Stream, l.Line
		stamps[i] = l.TS.UTC().Format(time.RFC3339Nano)
	}
	_, err := s.q.ExecContext(ctx, `
		INSERT INTO deployment_logs (deployment_id, seq, stream, line, ts)
		SELECT $1, * FROM unnest($2::bigint[], $3::text[], $4::text[], $5::timestamptz[])
		WHERE EXISTS (SELECT 1 FROM deployments WHERE id = $1 AND agent_id = $6)
		ON CONFLICT (deployment_id, seq) DO NOTHING`,
		deploymentID, pq.Array(seqs), pq.Array(streams), pq.Array(texts), pq.Array(stamps), agentID)
	return mapErr(err)
}

// Logs returns up to limit lines after seq afterSeq, in order.
func (s *Store) Logs(ctx context.Context, deploymentID, afterSeq int64, limit int) ([]LogLine, error) {
	return selectAs[LogLine](ctx, s, `
		SELECT * FROM deployment_logs WHERE deployment_id = $1 AND seq > $2 ORDER BY seq LIMIT $3`,
		deploymentID, afterSeq, limit)
}

// LogTail returns the last n lines, in order.
func (s *Store) LogTail(ctx context.Context, deploymentID int64, n int) ([]LogLine, error) {
	return selectAs[LogLine](ctx, s, `
		SELECT * FROM (
			SELECT * FROM deployment_logs WHERE deployment_id = $1 ORDER BY seq DESC LIMIT $2
		) t ORDER BY seq`, deploymentID, n)
}

// PruneDeploymentLogs deletes the log lines of up to batch deployments that finished before
// cutoff, whose outcome GitHub has been told (the report carries the log's tail) and that are
// not among their project's keepLast newest: production's keepLast, and its previews'
// keepLast apart, so a busy week of pull requests never pushes production's logs out. It returns how many deployments lost their logs
// and how many lines went. The deployments themselves stay.
func (s *Store) PruneDeploymentLogs(ctx context.Context, cutoff time.Time, keepLast, batch int) (deployments, lines int64, err error) {
	err = s.q.QueryRowxContext(ctx, `
		WITH doomed AS (
			SELECT id FROM (
				SELECT id, finished_at, status, reported_status,
				       row_number() OVER (PARTITION BY project_id, environment = 'production'
				                    ORDER BY created_at DESC, id DESC) AS newest
				FROM deployments) d
			WHERE finished_at < $1 AND reported_status = status AND newest > $2
			  AND EXISTS (SELECT 1 FROM deployment_logs l WHERE l.deployment_id = d.id)
			ORDER BY id LIMIT $3),
		gone AS (
			DELETE FROM deployment_logs l USING doomed WHERE l.deployment_id = doomed.id RETURNING l.deployment_id)
		SELECT count(DISTINCT deployment_id), count(*) FROM gone`, cutoff, keepLast, batch).Scan(&deployments, &lines)
	return deployments, lines, mapErr(err)
}
