// Small building blocks every page shares: loading, error and empty states, badges, times, copy.
import { useEffect, useRef, useState, type ReactNode } from 'react';
import type { ApiError } from '../api';

export function Loading({ what }: { what: string }) {
  return (
    <p className="muted" role="status" data-testid="loading">
      Loading {what}…
    </p>
  );
}

/** Shows the server's message (and detail), with a retry button when the caller can retry. */
export function ErrorMessage({ error, onRetry }: { error: ApiError; onRetry?: () => void }) {
  return (
    <div className="error" role="alert" data-testid="error-message">
      <p>{error.message}</p>
      {error.detail && <p className="muted">{error.detail}</p>}
      {onRetry && (
        <button type="button" onClick={onRetry}>
          Try again
        </button>
      )}
    </div>
  );
}

export function Empty({ children, testId }: { children: ReactNode; testId?: string }) {
  return (
    <div className="empty" data-testid={testId ?? 'empty'}>
      {children}
    </div>
  );
}

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
};

/** A coloured status word; the word itself carries the meaning, the colour only helps. */
export function StatusBadge({ status, testId }: { status: string; testId?: string }) {
  return (
    <span className={`badge badge-${badgeTone[status] ?? 'neutral'}`} data-testid={testId}>
      {status.replace(/_/g, ' ')}
    </span>
  );
}

const relative = new Intl.RelativeTimeFormat(undefined, { numeric: 'auto' });

/** "3 minutes ago", with the exact UTC time on hover and for machines. */
export function Time({ at, now = Date.now() }: { at: string | null; now?: number }) {
  if (!at) return <span className="muted">never</span>;
  const t = Date.parse(at);
  if (Number.isNaN(t)) return <span>{at}</span>;
  const seconds = Math.round((t - now) / 1000);
  const abs = Math.abs(seconds);
  const text =
    abs < 60
      ? relative.format(seconds, 'second')
      : abs < 3600
        ? relative.format(Math.round(seconds / 60), 'minute')
        : abs < 86400
          ? relative.format(Math.round(seconds / 3600), 'hour')
          : relative.format(Math.round(seconds / 86400), 'day');
  return (
    <time dateTime={at} title={new Date(t).toUTCString()}>
      {text}
    </time>
  );
}

async function copyText(text: string): Promise<void> {
  if (navigator.clipboard && window.isSecureContext) {
    await navigator.clipboard.writeText(text);
    return;
  }
  // Plain-http servers have no Clipboard API; a hidden textarea and execCommand still work there.
  const area = document.createElement('textarea');
  area.value = text;
  area.setAttribute('readonly', '');
  area.style.position = 'fixed';
  area.style.opacity = '0';
  document.body.appendChild(area);
  area.select();
  try {
    if (!document.execCommand('copy')) throw new Error('copy refused');
  } finally {
    document.body.removeChild(area);
  }
}

/** Copies text and says so; if the browser refuses, asks the user to copy by hand. */
export function CopyButton({ text, label, testId }: { text: string; label: string; testId?: string }) {
  const [state, setState] = useState<'idle' | 'copied' | 'failed'>('idle');
  useEffect(() => {
    if (state === 'idle') return;
    const id = window.setTimeout(() => setState('idle'), 2500);
    return () => window.clearTimeout(id);
  }, [state]);
  return (
    <>
      <button
        type="button"
        data-testid={testId}
        onClick={() => copyText(text).then(() => setState('copied'), () => setState('failed'))}
      >
        {label}
      </button>
      <span role="status" className="muted copy-status">
        {state === 'copied' ? 'Copied.' : state === 'failed' ? 'Copy failed: select the text and copy it.' : ''}
      </span>
    </>
  );
}

/**
 * A destructive button that asks on the page instead of window.confirm, so keyboard users and
 * browser tests see the question as ordinary buttons.
 */
export function ConfirmButton({
  label,
  question,
  confirmLabel,
  onConfirm,
  busy,
  testId,
}: {
  label: string;
  question: string;
  confirmLabel: string;
  onConfirm: () => void;
  busy?: boolean;
  testId?: string;
}) {
  const [asking, setAsking] = useState(false);
  const confirmRef = useRef<HTMLButtonElement>(null);
  useEffect(() => {
    if (asking) confirmRef.current?.focus();
  }, [asking]);
  if (!asking) {
    return (
      <button type="button" className="danger-outline" data-testid={testId} onClick={() => setAsking(true)} disabled={busy}>
        {label}
      </button>
    );
  }
  return (
    <span className="confirm" role="group" aria-label={question}>
      <span>{question}</span>
      <button
        type="button"
        className="danger"
        ref={confirmRef}
        data-testid={testId ? `${testId}-confirm` : undefined}
        onClick={() => {
          setAsking(false);
          onConfirm();
        }}
      >
        {confirmLabel}
      </button>
      <button type="button" onClick={() => setAsking(false)}>
        Cancel
      </button>
    </span>
  );
}
