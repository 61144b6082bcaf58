// How a page shows a failed call: the server's words, and a way to try again.
import type { ApiError } from '../api';

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
