// A project's secrets, grouped by scope. Values are write-only: the server never returns them and
// this page forgets a value the moment it is saved.
import { useRef, useState, type FormEvent, type KeyboardEvent } from 'react';
import { asApiError, type ApiError, type Secret } from '../api';
import { useApi } from '../context';
import { useResource } from '../resource';
import { useSave } from '../save';
import { ConfirmButton } from '../components/ConfirmButton';
import { Empty } from '../components/Empty';
import { ErrorMessage } from '../components/ErrorMessage';
import { Loading } from '../components/Loading';
import { Time } from '../components/Time';
import { Field } from '../components/Field';
import { ActionsHeader } from '../components/ActionsHeader';
import { NameInput } from '../components/NameInput';
import { secretKeyProblem, secretScopeProblem, secretValueProblem } from '../validation';

/** Secrets grouped by scope, "global" first and the services after it by name. */
export function groupByScope(secrets: Secret[]): [string, Secret[]][] {
  const groups = new Map<string, Secret[]>();
  for (const s of secrets) groups.set(s.scope, [...(groups.get(s.scope) ?? []), s]);
  return [...groups.entries()]
    .sort(([a], [b]) => (a === 'global' ? -1 : b === 'global' ? 1 : a.localeCompare(b)))
    .map(([scope, list]) => [scope, [...list].sort((x, y) => x.key.localeCompare(y.key))]);
}

export function SecretsSection({ projectId }: { projectId: number }) {
  const api = useApi();
  const secrets = useResource(() => api.secrets(projectId), `secrets:${projectId}`);
  const [deleteError, setDeleteError] = useState<ApiError | null>(null);
  const [editing, setEditing] = useState<{ scope: string; key: string; n: number } | null>(null);

  const remove = (s: Secret) => {
    setDeleteError(null);
    api.deleteSecret(projectId, s.scope, s.key).then(secrets.reload, (e: unknown) =>
      setDeleteError(asApiError(e)),
    );
  };

  const scopes = groupByScope(secrets.data ?? []);

  return (
    <section aria-labelledby="secrets-heading" className="card">
      <h2 id="secrets-heading">Secrets</h2>
      <p className="muted">
        Secrets reach your containers as environment variables: <code>global</code> ones for every service, the others
        only for the compose service of that name. Values are encrypted on the server and never shown again.
      </p>
      {secrets.status === 'loading' && <Loading what="secrets" />}
      {secrets.status === 'error' && <ErrorMessage error={secrets.error} onRetry={secrets.reload} />}
      {secrets.status === 'ready' && scopes.length === 0 && (
        <Empty testId="secrets-empty">
          <p>No secrets yet. Add one below, such as DATABASE_URL in the global scope.</p>
        </Empty>
      )}
      {deleteError && <ErrorMessage error={deleteError} />}
      <div data-testid="secrets-list">
        {scopes.map(([scope, list]) => (
          <div key={scope} className="scope" data-testid="secret-scope-group" data-scope={scope}>
            <h3>{scope === 'global' ? 'global (every service)' : `service: ${scope}`}</h3>
            <table className="list">
              <thead>
                <tr>
                  <th scope="col">Key</th>
                  <th scope="col">Scope</th>
                  <th scope="col">Updated</th>
                  <ActionsHeader />
                </tr>
              </thead>
              <tbody>
                {list.map((s) => (
                  <tr key={s.key} data-testid="secret-row" data-scope={s.scope} data-key={s.key}>
                    <td>
                      <code>{s.key}</code>
                    </td>
                    <td>{s.scope}</td>
                    <td>
                      <Time at={s.updated_at} />
                    </td>
                    <td className="row-actions">
                      <button
                        type="button"
                        onClick={() => setEditing((e) => ({ scope: s.scope, key: s.key, n: (e?.n ?? 0) + 1 }))}
                        aria-label={`Replace the value of ${s.key} in ${s.scope}`}
                      >
                        Replace value
                      </button>
                      <ConfirmButton
                        label="Delete"
                        question={`Delete ${s.key} from ${s.scope}?`}
                        confirmLabel="Delete secret"
                        onConfirm={() => remove(s)}
                        testId="secret-delete"
                      />
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        ))}
      </div>
      <SecretForm
        key={editing ? `${editing.scope}/${editing.key}/${editing.n}` : 'new'}
        projectId={projectId}
        initialScope={editing?.scope ?? 'global'}
        initialKey={editing?.key ?? ''}
        focusValue={editing !== null}
        knownScopes={scopes.map(([s]) => s)}
        onSaved={() => {
          setEditing(null);
          secrets.reload();
        }}
      />
    </section>
  );
}

/**
 * Adds or replaces one secret. The value lives only in this form's state until the PUT succeeds,
 * then it is cleared; nothing writes it to storage, the URL or the list.
 */
export function SecretForm({
  projectId,
  initialScope = 'global',
  initialKey = '',
  focusValue = false,
  knownScopes = [],
  onSaved,
}: {
  projectId: number;
  initialScope?: string;
  initialKey?: string;
  focusValue?: boolean;
  knownScopes?: string[];
  onSaved?: (s: Secret) => void;
}) {
  const api = useApi();
  const [scope, setScope] = useState(initialScope);
  const [key, setKey] = useState(initialKey);
  const [value, setValue] = useState('');
  const [reveal, setReveal] = useState(false);
  const { saving, error, clearError, save } = useSave();
  const [problems, setProblems] = useState<Partial<Record<'scope' | 'key' | 'value', string>>>({});
  const [savedNote, setSavedNote] = useState('');
  const keyRef = useRef<HTMLInputElement>(null);
  const valueRef = useRef<HTMLTextAreaElement>(null);

  const submit = (e: FormEvent) => {
    e.preventDefault();
    const found = {
      scope: secretScopeProblem(scope),
      key: secretKeyProblem(key),
      value: secretValueProblem(value),
    };
    const first = (['scope', 'key', 'value'] as const).find((f) => found[f]);
    setProblems(found);
    clearError();
    setSavedNote('');
    if (first) {
      document.getElementById(`secret-${first}`)?.focus();
      return;
    }
    save(api.putSecret(projectId, scope.trim(), key, value), (s) => {
      setValue('');
      setReveal(false);
      setKey('');
      setSavedNote(`Saved ${s.key} in ${s.scope}. The value is no longer shown anywhere.`);
      keyRef.current?.focus();
      onSaved?.(s);
    });
  };

  // A textarea takes Enter as a newline (PEM keys are multi-line), so Ctrl/Cmd+Enter saves.
  const onValueKey = (e: KeyboardEvent<HTMLTextAreaElement>) => {
    if (e.key === 'Enter' && (e.ctrlKey || e.metaKey)) {
      e.preventDefault();
      e.currentTarget.form?.requestSubmit();
    }
  };

  const fieldError = (f: 'scope' | 'key' | 'value') => problems[f] ?? error?.fieldMessage(f);

  return (
    <form className="form secret-form" onSubmit={submit} noValidate data-testid="secret-form" aria-labelledby="secret-form-heading">
      <h3 id="secret-form-heading">{initialKey ? `Replace ${initialKey}` : 'Add or replace a secret'}</h3>
      <Field id="secret-scope" label="Scope" hint='"global", or a compose service name' error={fieldError('scope')}>
        <NameInput value={scope} onValue={setScope} list="secret-scopes" data-testid="secret-scope" />
      </Field>
      <datalist id="secret-scopes">
        {[...new Set(['global', ...knownScopes])].map((s) => (
          <option key={s} value={s} />
        ))}
      </datalist>
      <Field id="secret-key" label="Key" error={fieldError('key')}>
        <NameInput ref={keyRef} value={key} onValue={setKey} placeholder="DATABASE_URL" data-testid="secret-key" />
      </Field>
      <Field id="secret-value" label="Value" hint="Ctrl+Enter saves. Shown masked; never displayed after saving." error={fieldError('value')}>
        <textarea
          ref={valueRef}
          // Focus the value when the user chose "Replace value" on a row: key and scope are known.
          autoFocus={focusValue}
          className={reveal ? 'secret-value' : 'secret-value masked'}
          value={value}
          onChange={(e) => setValue(e.target.value)}
          onKeyDown={onValueKey}
          rows={3}
          autoComplete="off"
          autoCorrect="off"
          autoCapitalize="off"
          spellCheck={false}
          data-testid="secret-value"
        />
      </Field>
      <label className="checkbox">
        <input type="checkbox" checked={reveal} onChange={(e) => setReveal(e.target.checked)} data-testid="secret-reveal" /> Show
        the value while typing
      </label>
      {error && <ErrorMessage error={error} />}
      <div className="actions">
        <button type="submit" className="primary" disabled={saving} data-testid="secret-save">
          {saving ? 'Saving…' : 'Save secret'}
        </button>
        <span role="status" className="muted" data-testid="secret-saved">
          {savedNote}
        </span>
      </div>
    </form>
  );
}
