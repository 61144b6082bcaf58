// The status words of agents, deployments and previews, coloured by what they mean.

const badgeTone: Record<string, string> = {
  online: 'good',
  success: 'good',
  busy: 'busy',
  running: 'busy',
  dispatched: 'busy',
  queued: 'neutral',
  offline: 'neutral',
  superseded: 'neutral',
  cancelled: 'neutral',
  failure: 'bad',
  timed_out: 'bad',
  rolled_back: 'warn',
  waiting_for_first_connection: 'warn',
  // Pull request previews (docs/previews.md).
  live: 'good',
  deploying: 'busy',
  stopping: 'busy',
  failed: 'bad',
  awaiting_approval: 'warn',
  stopped: 'neutral',
};

/** A coloured status word; the word itself carries the meaning, the colour only helps. */
export function StatusBadge({ status, testId }: { status: string; testId?: string }) {
  return (
    <span className={`badge badge-${badgeTone[status] ?? 'neutral'}`} data-testid={testId}>
      {status.replace(/_/g, ' ')}
    </span>
  );
}
