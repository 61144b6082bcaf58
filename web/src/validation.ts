// The server's validation rules (docs/api.md), checked before sending so mistakes show at once.
// The server checks again; its validations[] messages are shown the same way.

export const projectNamePattern = /^[a-z0-9][a-z0-9_-]{0,62}$/;
export const secretKeyPattern = /^[A-Za-z_][A-Za-z0-9_]*$/;
export const maxSecretBytes = 64 * 1024;

export function projectNameProblem(name: string): string | undefined {
  if (name === '' || projectNamePattern.test(name)) return undefined;
  return 'Use 1–63 lower-case letters, digits, "-" or "_", starting with a letter or digit.';
}

export function agentNameProblem(name: string): string | undefined {
  const n = name.trim();
  if (n.length === 0) return 'Give the agent a name, such as the server it runs on.';
  if ([...n].length > 100) return 'Use at most 100 characters.';
  return undefined;
}

export function secretKeyProblem(key: string): string | undefined {
  if (key === '') return 'Enter a key, such as DATABASE_URL.';
  if (!secretKeyPattern.test(key)) return 'Use letters, digits and "_", not starting with a digit.';
  return undefined;
}

export function secretScopeProblem(scope: string): string | undefined {
  if (scope.trim() === '') return 'Enter "global" or the name of a compose service.';
  return undefined;
}

export function secretValueProblem(value: string): string | undefined {
  if (new TextEncoder().encode(value).length > maxSecretBytes) return 'Values can be at most 64 KiB.';
  return undefined;
}
