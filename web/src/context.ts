import { createContext, useContext } from 'react';
import type { ApiClient } from './api';

/** The API client, handed down from main.tsx (or a test) rather than imported as a global. */
export const ApiContext = createContext<ApiClient | null>(null);

export function useApi(): ApiClient {
  const api = useContext(ApiContext);
  if (!api) throw new Error('useApi: no ApiContext.Provider above this component');
  return api;
}
