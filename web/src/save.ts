// A form's request to the API: whether it is in flight, and the error it ended with.
import { useState } from 'react';
import { asApiError, type ApiError } from './api';

export function useSave() {
  const [saving, setSaving] = useState(false);
  const [error, setError] = useState<ApiError | null>(null);
  /** Clears the last error, as a new attempt (even one the form's own checks stop) begins. */
  const clearError = () => setError(null);
  /** Sends request (saving until it settles) and hands its answer to done, or keeps its error. */
  const save = <T>(request: Promise<T>, done: (answer: T) => void) => {
    setSaving(true);
    setError(null);
    request.then(
      (answer) => {
        setSaving(false);
        done(answer);
      },
      (err: unknown) => {
        setSaving(false);
        setError(asApiError(err));
      },
    );
  };
  return { saving, error, clearError, save };
}
