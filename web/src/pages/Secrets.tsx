// A project's two secret sets side by side: production (what deploys of the deploy branch get)
// and previews (what pull request previews get). A production secret marked "also for previews"
// reaches previews too, unless the preview set has its own value for that scope and key. Values
// are write-only: the server never returns them and this page forgets a value once it is saved.
import { useRef, useState, type FormEvent, type KeyboardEvent } from 'react';
import { asApiError, type ApiError, type Secret, type SecretEnvironment } from '../api';
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
import { DotenvDialog, setNames } from './DotenvDialog';
import { secretKeyProblem, secretScopeProblem, secretValueProblem } from '../validation';

/** Secrets grouped by scope, "global" first and the services after it by name. */
export function groupByScope(secrets: Secret[]): [string, Secret[]][] {
  const groups = new Map<string, Secret[]>();
  for (const s of secrets) groups.set(s.scope, [...(groups.get(s.scope) ?? []), s]);
  return [...groups.entries()]
    .sort(([a], [b]) => (a === 'global' ? -1 : b === 'global' ? 1 : a.localeCompare(b)))
    .map(([scope, list]) => [scope, [...list].sort((x, y) => x.key.localeCompare(y.key))]);
}

/** Where the secret form starts: a new secret, or replacing one row's value. */
type Editing = { environment: SecretEnvironment; scope: string; key: string; n: number };

export function SecretsSection({ projectId }: { projectId: number }) {
  const api = useApi();
  const secrets = useResource(() => api.secrets(projectId), `secrets:${projectId}`);
  const [actionError, setActionError] = useState<ApiError | null>(null);
  const [editing, setEditing] = useState<Editing | null>(null);
  const [pasteInto, setPasteInto] = useState<SecretEnvironment | null>(null);
  const [importNote, setImportNote] = useState('');

  const act = (request: Promise<unknown>) => {
    setActionError(null);
    request.then(secrets.reload, (e: unknown) => setActionError(asApiError(e)));
  };
  const all = secrets.data ?? [];
  const production = all.filter((s) => s.environment !== 'preview');
  const preview = all.filter((s) => s.environment === 'preview');

  return (
    <section aria-labelledby="secrets-heading" className="card">
      <h2 id="secrets-heading">Secrets</h2>
      <p className="muted">
        Secrets reach your containers as environment variables: <code>global</code> ones for every service, the others
        only for the compose service of that name. Pull request previews get only the <strong>Previews</strong> set, plus
        production secrets marked <em>also for previews</em>. Values are encrypted on the server and never shown again.
      </p>
      {secrets.status === 'loading' && <Loading what="secrets" />}
      {secrets.status === 'error' && <ErrorMessage error={secrets.error} onRetry={secrets.reload} />}
      {secrets.status === 'ready' && all.length === 0 && (
        <Empty testId="secrets-empty">
          <p>No secrets yet. Add one below, such as DATABASE_URL in the global scope, or paste a .env file.</p>
        </Empty>
      )}
      {actionError && <ErrorMessage error={actionError} />}
      <span role="status" className="muted" data-testid="secrets-imported">
        {importNote}
      </span>
      <div className="secret-sets" data-testid="secrets-list">
        {(['production', 'preview'] as const).map((env) => (
          <SecretSet
            key={env}
            environment={env}
            secrets={env === 'production' ? production : preview}
            shared={env === 'preview' ? production.filter((s) => s.share_with_previews) : []}
            onPaste={() => {
              setImportNote('');
              setPasteInto(env);
            }}
            onReplace={(s) => setEditing((e) => ({ environment: env, scope: s.scope, key: s.key, n: (e?.n ?? 0) + 1 }))}
            onDelete={(s) => act(api.deleteSecret(projectId, s.scope, s.key, env))}
            onShare={(s, share) => act(api.shareSecret(projectId, s.scope, s.key, share))}
          />
        ))}
      </div>
      <SecretForm
        key={editing ? `${editing.environment}/${editing.scope}/${editing.key}/${editing.n}` : 'new'}
        projectId={projectId}
        initialEnvironment={editing?.environment ?? 'production'}
        initialScope={editing?.scope ?? 'global'}
        initialKey={editing?.key ?? ''}
        focusValue={editing !== null}
        knownScopes={groupByScope(all).map(([s]) => s)}
        onSaved={() => {
          setEditing(null);
          secrets.reload();
        }}
      />
      {pasteInto && (
        <DotenvDialog
          projectId={projectId}
          environment={pasteInto}
          onClose={() => setPasteInto(null)}
          onImported={(list) => {
            setPasteInto(null);
            setImportNote(`Imported ${list.length} ${list.length === 1 ? 'secret' : 'secrets'} into ${setNames[pasteInto]}.`);
            secrets.reload();
          }}
        />
      )}
    </section>
  );
}

/** One set's secrets by scope; the preview set also lists what production shares with it. */
function SecretSet({
  environment,
  secrets,
  shared,
  onPaste,
  onReplace,
  onDelete,
  onShare,
}: {
  environment: SecretEnvironment;
  secrets: Secret[];
  shared: Secret[];
  onPaste: () => void;
  onReplace: (s: Secret) => void;
  onDelete: (s: Secret) => void;
  onShare: (s: Secret, share: boolean) => void;
}) {
  const headingId = `secrets-${environment}-heading`;
  const own = new Set(secrets.map((s) => `${s.scope}/${s.key}`));
  return (
    <section className="secret-set" aria-labelledby={headingId} data-testid={`secret-set-${environment}`}>
      <div className="heading">
        <h3 id={headingId}>{setNames[environment]}</h3>
        <button type="button" onClick={onPaste} data-testid={`secrets-paste-${environment}`}>
          Paste .env
        </button>
      </div>
      <p className="hint">
        {environment === 'production'
          ? 'Deploys of the deploy branch. Tick "also for previews" for values previews may use too.'
          : 'Pull request previews only. A key set here wins over a shared production one.'}
      </p>
      {secrets.length === 0 && <p className="muted">None.</p>}
      {groupByScope(secrets).map(([scope, list]) => (
        <div key={scope} className="scope" data-testid="secret-scope-group" data-scope={scope} data-environment={environment}>
          <h4>{scope === 'global' ? 'global (every service)' : `service: ${scope}`}</h4>
          <table className="list">
            <thead>
              <tr>
                <th scope="col">Key</th>
                <th scope="col">Updated</th>
                {environment === 'production' && <th scope="col">Previews</th>}
                <ActionsHeader />
              </tr>
            </thead>
            <tbody>
              {list.map((s) => (
                <tr key={s.key} data-testid="secret-row" data-scope={s.scope} data-key={s.key} data-environment={environment}>
                  <td>
                    <code>{s.key}</code>
                  </td>
                  <td>
                    <Time at={s.updated_at} />
                  </td>
                  {environment === 'production' && (
                    <td>
                      <label className="checkbox">
                        <input
                          type="checkbox"
                          checked={s.share_with_previews}
                          onChange={(e) => onShare(s, e.target.checked)}
                          data-testid="secret-share"
                        />
                        also for previews
                      </label>
                    </td>
                  )}
                  <td className="row-actions">
                    <button type="button" onClick={() => onReplace(s)} aria-label={`Replace the value of ${s.key} in ${s.scope} (${setNames[environment]})`}>
                      Replace value
                    </button>
                    <ConfirmButton
                      label="Delete"
                      question={`Delete ${s.key} from ${s.scope} (${setNames[environment]})?`}
                      confirmLabel="Delete secret"
                      onConfirm={() => onDelete(s)}
                      testId="secret-delete"
                    />
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      ))}
      {shared.length > 0 && (
        <div className="shared" data-testid="secrets-shared">
          <h4>Also from production</h4>
          <ul>
            {shared.map((s) => {
              const overridden = own.has(`${s.scope}/${s.key}`);
              return (
                <li key={`${s.scope}/${s.key}`} data-testid="secret-shared-row" data-scope={s.scope} data-key={s.key}>
                  <code className={overridden ? 'overridden' : undefined}>{s.key}</code> <span className="muted">({s.scope})</span>
                  {overridden && <span className="muted"> — the preview value above wins</span>}
                </li>
              );
            })}
          </ul>
        </div>
      )}
    </section>
  );
}

/**
 * Adds or replaces one secret of either set. The value lives only in this form's state until the
 * PUT succeeds, then it is cleared; nothing writes it to storage, the URL or the list.
 */
export function SecretForm({
  projectId,
  initialEnvironment = 'production',
  initialScope = 'global',
  initialKey = '',
  focusValue = false,
  knownScopes = [],
  onSaved,
}: {
  projectId: number;
  initialEnvironment?: SecretEnvironment;
  initialScope?: string;
  initialKey?: string;
  focusValue?: boolean;
  knownScopes?: string[];
  onSaved?: (s: Secret) => void;
}) {
  const api = useApi();
  const [environment, setEnvironment] = useState<SecretEnvironment>(initialEnvironment);
  const [scope, setScope] = useState(initialScope);
  const [key, setKey] = useState(initialKey);
  const [value, setValue] = useState('');
  // Left untouched, a replaced secret keeps its mark (the server's rule when none is sent).
  const [share, setShare] = useState<boolean | undefined>(undefined);
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
    const opts = { environment, share: environment === 'production' ? share : undefined };
    save(api.putSecret(projectId, scope.trim(), key, value, opts), (s) => {
      setValue('');
      setReveal(false);
      setKey('');
      setShare(undefined);
      const where = s.environment === 'preview' ? ' (Previews)' : '';
      setSavedNote(`Saved ${s.key} in ${s.scope}${where}. The value is no longer shown anywhere.`);
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
      <Field id="secret-environment" label="Set" hint="Production deploys, or pull request previews">
        <select value={environment} onChange={(e) => setEnvironment(e.target.value as SecretEnvironment)} data-testid="secret-environment">
          <option value="production">Production</option>
          <option value="preview">Previews</option>
        </select>
      </Field>
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
      {environment === 'production' && (
        <label className="checkbox">
          <input type="checkbox" checked={share ?? false} onChange={(e) => setShare(e.target.checked)} data-testid="secret-form-share" /> Also
          for previews
        </label>
      )}
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
