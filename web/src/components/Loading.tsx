// What a page shows while its data is on the way.

/** A status line saying what is loading, announced to screen readers. */
export function Loading({ what }: { what: string }) {
  return (
    <p className="muted" role="status" data-testid="loading">
      Loading {what}…
    </p>
  );
}
