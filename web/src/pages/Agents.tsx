// The user's agents with live status, creation with a copy-once token, rotation and deletion.
import { Fragment, useEffect, useRef, useState, type FormEvent } from 'react';
import { asApiError, type Agent, type AgentCredentials, type AgentEvent, type ApiError } from '../api';
import { useApi } from '../context';
import { useResource } from '../resource';
import { useSave } from '../save';
import { ConfirmButton } from '../components/ConfirmButton';
import { CopyButton } from '../components/CopyButton';
import { Empty } from '../components/Empty';
import { ErrorMessage } from '../components/ErrorMessage';
import { Loading } from '../components/Loading';
import { StatusBadge } from '../components/StatusBadge';
import { Time } from '../components/Time';
import { Field } from '../components/Field';
import { ActionsHeader } from '../components/ActionsHeader';
import { NameInput } from '../components/NameInput';
import { agentNameProblem } from '../validation';

type Shown = { credentials: AgentCredentials; why: 'created' | 'rotated' };

export function AgentsPage({ pollMs = 5000 }: { pollMs?: number }) {
  const api = useApi();
  const agents = useResource(() => api.agents(), 'agents', pollMs);
  // The token lives only here, in memory: leaving or reloading the page loses it on purpose.
  const [shown, setShown] = useState<Shown | null>(null);
  const [actionError, setActionError] = useState<ApiError | null>(null);
  const [busyId, setBusyId] = useState<number | null>(null);
  const [eventsOf, setEventsOf] = useState<number | null>(null);

  const fail = (e: unknown) => setActionError(asApiError(e));

  const rotate = (a: Agent) => {
    setActionError(null);
    setBusyId(a.id);
    api.rotateAgentToken(a.id).then(
      (c) => {
        setBusyId(null);
        setShown({ credentials: c, why: 'rotated' });
        agents.reload();
      },
      (e: unknown) => {
        setBusyId(null);
        fail(e);
      },
    );
  };

  const setAutoUpdate = (a: Agent, on: boolean) => {
    setActionError(null);
    setBusyId(a.id);
    api.setAgentAutoUpdate(a.id, on).then(
      () => {
        setBusyId(null);
        agents.reload();
      },
      (e: unknown) => {
        setBusyId(null);
        fail(e);
      },
    );
  };

  const remove = (a: Agent) => {
    setActionError(null);
    setBusyId(a.id);
    api.deleteAgent(a.id).then(
      () => {
        setBusyId(null);
        if (shown?.credentials.agent.id === a.id) setShown(null);
        agents.reload();
      },
      (e: unknown) => {
        setBusyId(null);
        fail(e);
      },
    );
  };

  return (
    <section>
      <h1>Agents</h1>
      <p className="muted">
        An agent is a small program on your server. It dials out to Stagely, so your server needs no open ports, and
        runs Docker Compose when a deployment arrives. Status refreshes every few seconds.
      </p>

      {shown ? (
        <CredentialsPanel shown={shown} onDone={() => setShown(null)} />
      ) : (
        <NewAgentForm
          onCreated={(c) => {
            setShown({ credentials: c, why: 'created' });
            agents.reload();
          }}
        />
      )}

      {actionError && <ErrorMessage error={actionError} />}
      <h2>Your agents</h2>
      {agents.status === 'loading' && <Loading what="agents" />}
      {agents.status === 'error' && (
        <ErrorMessage error={agents.error} onRetry={agents.reload} />
      )}
      {agents.data?.length === 0 && (
        <Empty testId="agents-empty">
          <p>No agents yet. Name your first one above; you will get a cloud-init script to start it on your server.</p>
        </Empty>
      )}
      {agents.data && agents.data.length > 0 && (
        <table className="list" data-testid="agents-list">
          <thead>
            <tr>
              {agentColumns.map((c) => (
                <th scope="col" key={c}>
                  {c}
                </th>
              ))}
              <ActionsHeader />
            </tr>
          </thead>
          <tbody>
            {agents.data.map((a) => (
              <Fragment key={a.id}>
              <tr data-testid="agent-row" data-agent-id={a.id}>
                <td>{a.name}</td>
                <td>
                  <AgentState agent={a} />
                </td>
                <td>
                  <Time at={a.last_heartbeat} />
                </td>
                <td data-testid="agent-version">
                  {a.version || <span className="muted">—</span>}
                  <VersionNote agent={a} />
                </td>
                <td>
                  <label className="small">
                    <input
                      type="checkbox"
                      checked={a.auto_update}
                      disabled={busyId === a.id}
                      onChange={(e) => setAutoUpdate(a, e.target.checked)}
                      data-testid="agent-auto-update"
                      aria-label={`Automatic update of ${a.name}`}
                    />{' '}
                    {a.auto_update ? 'On' : 'Off'}
                  </label>
                </td>
                <td>
                  {a.hostname || <span className="muted">—</span>}
                  {a.docker_version && <p className="muted small">Docker {a.docker_version}{a.compose_version && `, Compose ${a.compose_version}`}</p>}
                </td>
                <td className="row-actions">
                  <button
                    type="button"
                    aria-expanded={eventsOf === a.id}
                    onClick={() => setEventsOf(eventsOf === a.id ? null : a.id)}
                    data-testid="agent-events-toggle"
                  >
                    Events
                  </button>
                  <ConfirmButton
                    label="Rotate token"
                    question={`The current token of ${a.name} stops working at once. Rotate?`}
                    confirmLabel="Rotate"
                    onConfirm={() => rotate(a)}
                    busy={busyId === a.id}
                    testId="agent-rotate"
                  />
                  <ConfirmButton
                    label="Delete"
                    question={`Delete ${a.name}? Projects using it are unlinked.`}
                    confirmLabel="Delete agent"
                    onConfirm={() => remove(a)}
                    busy={busyId === a.id}
                    testId="agent-delete"
                  />
                </td>
              </tr>
              {eventsOf === a.id && (
                <tr data-testid="agent-events-row">
                  <td colSpan={agentColumns.length + 1}>
                    <AgentEvents agentId={a.id} />
                  </td>
                </tr>
              )}
              </Fragment>
            ))}
          </tbody>
        </table>
      )}
    </section>
  );
}

/** The agents table's column headings, before the actions column; the events row spans them all. */
const agentColumns = ['Name', 'Status', 'Last heartbeat', 'Version', 'Automatic update', 'Host'];

/** Whether the agent runs the build this server serves; nothing when that is unknown. */
function VersionNote({ agent }: { agent: Agent }) {
  if (agent.version_status === 'current') {
    return <p className="muted small" data-testid="agent-version-status">current</p>;
  }
  if (agent.version_status === 'outdated') {
    return (
      <p className="small" data-testid="agent-version-status">
        update available: {agent.latest_version}
        {!agent.auto_update && ' (automatic update is off)'}
      </p>
    );
  }
  return null;
}

function NewAgentForm({ onCreated }: { onCreated: (c: AgentCredentials) => void }) {
  const api = useApi();
  const [name, setName] = useState('');
  const [problem, setProblem] = useState<string | undefined>();
  const { saving, error, clearError, save } = useSave();

  const submit = (e: FormEvent) => {
    e.preventDefault();
    const p = agentNameProblem(name);
    setProblem(p);
    clearError();
    if (p) {
      document.getElementById('agent-name')?.focus();
      return;
    }
    save(api.createAgent(name.trim()), onCreated);
  };

  return (
    <form className="form card" onSubmit={submit} noValidate data-testid="new-agent-form" aria-labelledby="new-agent-heading">
      <h2 id="new-agent-heading">New agent</h2>
      <Field id="agent-name" label="Name" hint="Such as the server it will run on." error={problem ?? error?.fieldMessage('name')}>
        <NameInput value={name} onValue={setName} maxLength={100} data-testid="new-agent-name" />
      </Field>
      {error && <ErrorMessage error={error} />}
      <div className="actions">
        <button type="submit" className="primary" disabled={saving} data-testid="new-agent-submit">
          {saving ? 'Creating…' : 'Create agent'}
        </button>
      </div>
    </form>
  );
}

/** The token, the install command and cloud-init, shown once. Nothing here is written to storage. */
export function CredentialsPanel({ shown, onDone }: { shown: Shown; onDone: () => void }) {
  const { agent, token, cloud_init, install_command } = shown.credentials;
  const headingRef = useRef<HTMLHeadingElement>(null);
  useEffect(() => headingRef.current?.focus(), []);
  return (
    <section className="card credentials" aria-labelledby="credentials-heading" data-testid="agent-credentials">
      <h2 id="credentials-heading" ref={headingRef} tabIndex={-1}>
        {shown.why === 'created' ? `Agent ${agent.name} created` : `New token for ${agent.name}`}
      </h2>
      <p className="warning" role="note" data-testid="agent-token-note">
        <strong>This is the only time you will see this token.</strong> Copy it, or the command below, now: Stagely
        keeps only a hash of it. If you leave or reload this page, it is gone and you will have to rotate the token.
        It works once, until <Time at={agent.bootstrap_expires_at} />: at its first connection the agent trades it for
        its own credential, which it keeps in its config file.
      </p>
      <div className="field">
        <span className="label" id="agent-token-label">
          Token
        </span>
        <code className="token" data-testid="agent-token" aria-labelledby="agent-token-label">
          {token}
        </code>
        <div className="actions">
          <CopyButton text={token} label="Copy token" testId="agent-token-copy" />
        </div>
      </div>
      <CopyBlock
        id="agent-install"
        label="Install on a server"
        hint="Run this one line on a Debian, Ubuntu or Fedora server. It downloads the agent from this Stagely server, checks its checksum, installs Docker if it is missing and starts the agent with this token."
        text={install_command}
        testId="agent-install-command"
        copyLabel="Copy install command"
      />
      <CopyBlock
        id="agent-cloud-init"
        label="Cloud-init"
        hint="Or paste this as the user data of a new server: it runs the same installer at first boot."
        text={cloud_init}
        testId="agent-cloud-init"
        copyLabel="Copy cloud-init"
      />
      <div className="actions">
        <button type="button" className="primary" onClick={onDone} data-testid="agent-token-done">
          I have saved it
        </button>
      </div>
    </section>
  );
}

/** The agent's status, or that it has not traded its bootstrap token yet (and until when it can). */
function AgentState({ agent }: { agent: Agent }) {
  if (!agent.waiting_for_first_connection) return <StatusBadge status={agent.status} testId="agent-status" />;
  const expired = agent.bootstrap_expires_at !== null && Date.parse(agent.bootstrap_expires_at) <= Date.now();
  return (
    <>
      <StatusBadge status="waiting_for_first_connection" testId="agent-status" />
      <p className="muted small" data-testid="agent-bootstrap-expiry">
        {expired ? (
          'Its token expired: rotate it for a new install command.'
        ) : (
          <>
            Token valid until <Time at={agent.bootstrap_expires_at} />
          </>
        )}
      </p>
    </>
  );
}

/** What an audit entry about an agent means, in words; refusals are worth a look. */
function describeEvent(e: AgentEvent): { text: string; warn: boolean } {
  const d = (k: string) => (typeof e.detail[k] === 'string' ? (e.detail[k] as string) : '?');
  switch (e.action) {
    case 'agent.create':
      return { text: `Created by ${e.actor}`, warn: false };
    case 'agent.rotate_token':
      return { text: `Token rotated by ${e.actor}`, warn: false };
    case 'agent.delete':
      return { text: `Deleted by ${e.actor}`, warn: false };
    case 'agent.bootstrap_exchanged':
      return { text: `First connection from ${d('source')}: the bootstrap token was traded for the agent's own token`, warn: false };
    case 'agent.bootstrap_replayed':
      return {
        text: `Refused the bootstrap token, used a second time, from ${d('source')}. If that was not you, rotate the token.`,
        warn: true,
      };
    case 'agent.bootstrap_expired':
      return { text: `Refused the expired bootstrap token from ${d('source')}`, warn: true };
    case 'agent.duplicate_refused':
      return {
        text: `Refused a second agent with this token (${d('hostname')}, from ${d('source')}) while ${d('connected_hostname')} was connected. If that was not you, rotate the token.`,
        warn: true,
      };
    default:
      return { text: e.action, warn: false };
  }
}

/** The agent's history: creation, rotations, first connection and refused connections. */
function AgentEvents({ agentId }: { agentId: number }) {
  const api = useApi();
  const events = useResource(() => api.agentEvents(agentId), `agent-events-${agentId}`);
  if (events.status === 'loading') return <Loading what="events" />;
  if (events.status === 'error') return <ErrorMessage error={events.error} onRetry={events.reload} />;
  if (!events.data?.length) return <p className="muted">No events yet.</p>;
  return (
    <ul className="events" data-testid="agent-events">
      {events.data.map((e) => {
        const { text, warn } = describeEvent(e);
        return (
          <li key={e.id} className={warn ? 'warning' : undefined} data-testid="agent-event" data-action={e.action}>
            <Time at={e.created_at} /> {text}
          </li>
        );
      })}
    </ul>
  );
}

/** A labelled block of text shown once, with its copy button (the install command, cloud-init). */
function CopyBlock(props: { id: string; label: string; hint: string; text: string; testId: string; copyLabel: string }) {
  const { id, label, hint, text, testId, copyLabel } = props;
  return (
    <div className="field">
      <span className="label" id={`${id}-label`}>
        {label}
      </span>
      <p className="hint">{hint}</p>
      <pre className="cloud-init" data-testid={testId} aria-labelledby={`${id}-label`} tabIndex={0}>
        {text}
      </pre>
      <div className="actions">
        <CopyButton text={text} label={copyLabel} testId={`${testId}-copy`} />
      </div>
    </div>
  );
}
