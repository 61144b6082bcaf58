// Loading a piece of server state with its loading, error and ready states, optionally polled.
import { useCallback, useEffect, useRef, useState } from 'react';
import { asApiError, type ApiError } from './api';

export type Resource<T> =
  | { status: 'loading'; data?: undefined; error?: undefined }
  | { status: 'error'; data?: T; error: ApiError }
  | { status: 'ready'; data: T; error?: undefined };

/** The resource plus a reload function that refetches without blanking what is shown. */
export type ResourceHandle<T> = Resource<T> & { reload: () => void };

/**
 * Loads with load() whenever key changes, and every pollMs if given. A poll that fails keeps the
 * last good data next to the error, so a flaky network does not wipe the agents list.
 */
export function useResource<T>(load: () => Promise<T>, key: string, pollMs?: number): ResourceHandle<T> {
  const [state, setState] = useState<Resource<T>>({ status: 'loading' });
  const [tick, setTick] = useState(0);
  const loadRef = useRef(load);
  loadRef.current = load;

  // A new key means different data: show loading rather than the previous item's data.
  const [shownKey, setShownKey] = useState(key);
  if (shownKey !== key) {
    setShownKey(key);
    setState({ status: 'loading' });
  }

  useEffect(() => {
    let current = true;
    loadRef.current().then(
      (data) => current && setState({ status: 'ready', data }),
      (e: unknown) =>
        current && setState((prev) => ({ status: 'error', data: prev.data, error: asApiError(e) })),
    );
    return () => {
      current = false;
    };
  }, [key, tick]);

  useEffect(() => {
    if (!pollMs) return;
    const id = window.setInterval(() => setTick((t) => t + 1), pollMs);
    return () => window.clearInterval(id);
  }, [pollMs, key]);

  const reload = useCallback(() => setTick((t) => t + 1), []);
  return { ...state, reload };
}
