// Times as people read them, with the exact time one hover away.

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
