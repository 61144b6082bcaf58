// "Paste .env": a whole .env file into one secret set at once. The server parses it
// (docs/api.md) and stores every variable or none; a bad line comes back named, and this
// dialog lists each one so the user fixes the file and pastes it again.
import { useEffect, useRef, useState, type FormEvent, type KeyboardEvent } from 'react';
import type { Secret, SecretEnvironment } from '../api';
import { useApi } from '../context';
import { useSave } from '../save';
import { ErrorMessage } from '../components/ErrorMessage';
import { Field } from '../components/Field';
import { NameInput } from '../components/NameInput';
import { secretScopeProblem } from '../validation';

/** What each secret set is called on the page. */
export const setNames: Record<SecretEnvironment, string> = { production: 'Production', preview: 'Previews' };

/** The line number of a validation field "line 7", or 0 for the file as a whole. */
export function lineOf(field: string): number {
  const m = /^line (\d+)$/.exec(field);
  return m ? Number(m[1]) : 0;
}

export function DotenvDialog({
  projectId,
  environment,
  onClose,
  onImported,
}: {
  projectId: number;
  environment: SecretEnvironment;
  onClose: () => void;
  onImported: (secrets: Secret[]) => void;
}) {
  const api = useApi();
  const [text, setText] = useState('');
  const [scope, setScope] = useState('global');
  const [share, setShare] = useState(false);
  const [scopeProblem, setScopeProblem] = useState<string | undefined>();
  const { saving, error, save } = useSave();
  const textRef = useRef<HTMLTextAreaElement>(null);
  useEffect(() => textRef.current?.focus(), []);

  const submit = (e: FormEvent) => {
    e.preventDefault();
    const problem = secretScopeProblem(scope);
    setScopeProblem(problem);
    if (problem) return;
    const opts = { scope: scope.trim(), share: environment === 'production' ? share : undefined };
    save(api.importSecrets(projectId, environment, text, opts), (list) => {
      // The pasted values leave this page's memory with the dialog.
      setText('');
      onImported(list);
    });
  };
  const onKey = (e: KeyboardEvent) => {
    if (e.key === 'Escape' && !saving) onClose();
  };

  const lineErrors = (error?.validations ?? []).filter((v) => v.field === 'dotenv' || lineOf(v.field) > 0);
  const headingId = `dotenv-${environment}-heading`;
  return (
    <div className="dialog-backdrop">
      <div className="dialog card" role="dialog" aria-modal="true" aria-labelledby={headingId} onKeyDown={onKey} data-testid="dotenv-dialog">
        <h3 id={headingId}>Paste a .env file into {setNames[environment]}</h3>
        <p className="hint">
          <code>KEY=VALUE</code> lines; <code>export</code>, comments, blank lines and quotes are understood. Every
          variable is saved, or none when a line is wrong. Existing keys are replaced.
        </p>
        <form className="form" onSubmit={submit} noValidate>
          <Field id="dotenv-text" label=".env file">
            <textarea
              ref={textRef}
              className="secret-value dotenv"
              value={text}
              onChange={(e) => setText(e.target.value)}
              rows={12}
              autoComplete="off"
              autoCorrect="off"
              autoCapitalize="off"
              spellCheck={false}
              placeholder={'DATABASE_URL=postgres://…\nexport API_KEY="…"'}
              data-testid="dotenv-text"
            />
          </Field>
          <Field id="dotenv-scope" label="Scope" hint='"global", or a compose service name: every variable goes there' error={scopeProblem ?? error?.fieldMessage('scope')}>
            <NameInput value={scope} onValue={setScope} data-testid="dotenv-scope" />
          </Field>
          {environment === 'production' && (
            <label className="checkbox">
              <input type="checkbox" checked={share} onChange={(e) => setShare(e.target.checked)} data-testid="dotenv-share" /> Also for
              previews
            </label>
          )}
          {lineErrors.length > 0 && (
            <div className="error" role="alert" data-testid="dotenv-errors">
              <p>{error?.message}</p>
              <ul>
                {lineErrors.map((v) => (
                  <li key={v.field + v.message} data-testid="dotenv-error" data-line={lineOf(v.field)}>
                    {lineOf(v.field) > 0 ? `Line ${lineOf(v.field)}: ` : ''}
                    {v.message}
                  </li>
                ))}
              </ul>
            </div>
          )}
          {error && lineErrors.length === 0 && <ErrorMessage error={error} />}
          <div className="actions">
            <button type="submit" className="primary" disabled={saving || text.trim() === ''} data-testid="dotenv-import">
              {saving ? 'Importing…' : `Import into ${setNames[environment]}`}
            </button>
            <button type="button" onClick={onClose} disabled={saving}>
              Cancel
            </button>
          </div>
        </form>
      </div>
    </div>
  );
}
