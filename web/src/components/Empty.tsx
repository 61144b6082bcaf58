// What a list shows when it has nothing in it yet.
import type { ReactNode } from 'react';

/** A box for a list with no items, usually saying how to add the first one. */
export function Empty({ children, testId }: { children: ReactNode; testId?: string }) {
  return (
    <div className="empty" data-testid={testId ?? 'empty'}>
      {children}
    </div>
  );
}
