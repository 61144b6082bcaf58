// The dashboard in a real browser: Debian's Chromium driven by playwright-core against the real
// stagely-server and githubsim. app/e2e/browser_test.go (TestBrowser) starts them and runs this
// script; see docs/web.md, "Browser tests".
//
// Environment:
//   STAGELY_URL          the server's public URL
//   STAGELY_SCREENSHOTS  folder for the screenshots (and, on failure, the page HTML and a trace)
//   STAGELY_SECRET_VALUE the secret value to type; the test checks it never comes back
//   STAGELY_PREVIEW_SECRET_VALUE the preview DATABASE_URL pasted in a .env file; never shown again
//   CHROMIUM             the browser (default /usr/bin/chromium)
//   STAGELY_INSTALL_ROOT the folder install.sh installs into (--root), as this machine has no
//                        systemd (--start); the test stops the agent it leaves running
//
// Exits 0 when every step passed; otherwise prints the failed step and exits 1.
import { chromium, request } from 'playwright-core';
import { execFile } from 'node:child_process';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';

const env = (name) => {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set (browser_test.go sets it)`);
  return v;
};
const baseURL = env('STAGELY_URL');
const outDir = env('STAGELY_SCREENSHOTS');
const secretValue = env('STAGELY_SECRET_VALUE');
const previewSecretValue = env('STAGELY_PREVIEW_SECRET_VALUE');
const installRoot = env('STAGELY_INSTALL_ROOT');
const chromiumPath = process.env.CHROMIUM || '/usr/bin/chromium';
const agentName = 'box';

// Flags for a root container without a GPU: no sandbox (root), and nothing that phones home.
const chromiumArgs = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-background-networking',
  '--disable-quic',
  '--no-first-run',
  '--disable-component-update',
  '--disable-sync',
];

class StepError extends Error {}

function check(ok, message) {
  if (!ok) throw new StepError(message);
}

await mkdir(outDir, { recursive: true });
// launch() gives the browser a fresh, throw-away profile (user-data dir) of its own.
// Deadlines are generous: CI shares two cores with other work, and a wait ends as soon as
// its condition holds, so only a broken page ever waits this long.
const browser = await chromium.launch({ executablePath: chromiumPath, args: chromiumArgs, timeout: 120_000 });
const context = await browser.newContext({ baseURL, viewport: { width: 1280, height: 900 } });
await context.tracing.start({ screenshots: true, snapshots: true });
const page = await context.newPage();
// The top bar's links; the empty states link to the same pages, so names alone are ambiguous.
const nav = page.getByRole('navigation', { name: 'Main' });
page.setDefaultTimeout(60_000);
page.setDefaultNavigationTimeout(60_000);

// Uncaught exceptions in the page fail the run; console output is kept for the failure report.
const pageErrors = [];
const consoleLines = [];
page.on('pageerror', (e) => pageErrors.push(String(e)));
page.on('console', (m) => consoleLines.push(`${m.type()}: ${m.text()}`));

let step = 'start';
let shot = 0;
const screenshot = async (name) => {
  shot += 1;
  const file = join(outDir, `${String(shot).padStart(2, '0')}-${name}.png`);
  await page.screenshot({ path: file, fullPage: true });
  console.log(`  screenshot ${file}`);
};
// sectionShot screenshots one part of the page, for the docs.
const sectionShot = async (name, locator) => {
  shot += 1;
  const file = join(outDir, `${String(shot).padStart(2, '0')}-${name}.png`);
  await locator.screenshot({ path: file });
  console.log(`  screenshot ${file}`);
};
const run = async (name, fn) => {
  step = name;
  console.log(`step: ${name}`);
  await fn();
  check(pageErrors.length === 0, `uncaught error in the page: ${pageErrors.join('\n')}`);
};

// Every form control's current value: what a secret could hide in without being in the HTML.
const controlValues = () =>
  page.evaluate(() => [...document.querySelectorAll('input, textarea, select')].map((el) => el.value));
const storageDump = () =>
  page.evaluate(() => JSON.stringify({ local: { ...localStorage }, session: { ...sessionStorage } }));

// runInstall runs the command the dashboard shows, as a user pastes it into a terminal, and
// returns what the terminal showed (stdout and stderr in order: both go to one pipe).
const runInstall = async (command) => {
  // sh reads the script from the pipe (-s) and takes the installer's flags after --.
  const line = `${command} -s -- --root '${installRoot}' --start`;
  try {
    const { stdout } = await promisify(execFile)('sh', ['-c', `(${line}) 2>&1`], { timeout: 300_000 });
    return stdout;
  } catch (err) {
    throw new StepError(`the install command failed (${err.code ?? err.signal}):\n${err.stdout ?? ''}`);
  }
};

// terminalShot renders a terminal session (a command and its output) as a dark page and
// screenshots it, for docs/agents.md. The token is cut short: it is spent, but a picture of it
// in the docs would teach people to share theirs.
const terminalShot = async (name, command, output) => {
  const esc = (t) => t.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
  const shown = command.replace(/(stgb_[A-Za-z0-9_]{6})[A-Za-z0-9_-]+/g, '$1…');
  const term = await context.newPage();
  await term.setViewportSize({ width: 1100, height: 200 });
  await term.setContent(
    `<body style="margin:0;background:#1e1e1e"><pre style="margin:0;padding:16px;color:#ddd;` +
      `font:14px/1.45 monospace;white-space:pre-wrap">` +
      `<span style="color:#8ae234">root@vps</span>:~# ${esc(shown)}\n${esc(output)}</pre></body>`,
  );
  shot += 1;
  const file = join(outDir, `${String(shot).padStart(2, '0')}-${name}.png`);
  await term.screenshot({ path: file, fullPage: true });
  console.log(`  screenshot ${file}`);
  await term.close();
};

let token = '';
let install = '';
let sessionCookie;
try {
  await run('sign-in page', async () => {
    await page.goto('/');
    await page.getByTestId('sign-in').waitFor();
    await screenshot('sign-in');
  });

  await run('sign in with GitHub (githubsim approves as alice)', async () => {
    // A full-page navigation through /auth/github/login, githubsim's authorize page and the callback.
    await page.getByRole('link', { name: 'Sign in with GitHub' }).click();
    await page.getByTestId('nav-user').waitFor();
    check((await page.getByTestId('nav-user').textContent()) === 'alice', 'the top bar does not name alice');
    check(new URL(page.url()).pathname === '/', `after sign-in the browser is at ${page.url()}, want /`);
    await page.getByTestId('projects-empty').waitFor();
    await screenshot('projects-empty');
  });

  await run('create an agent (the form submitted with Enter)', async () => {
    await nav.getByRole('link', { name: 'Agents', exact: true }).click();
    await page.getByTestId('agents-empty').waitFor();
    await page.getByTestId('new-agent-name').fill(agentName);
    await page.getByTestId('new-agent-name').press('Enter');
    await page.getByTestId('agent-credentials').waitFor();
    token = (await page.getByTestId('agent-token').textContent()).trim();
    check(/^stgb_\S{20,}$/.test(token), 'the token box does not hold a stgb_ bootstrap token');
    const cloudInit = await page.getByTestId('agent-cloud-init').textContent();
    check(cloudInit.includes(token), 'the cloud-init does not carry the token');
    check(cloudInit.includes(baseURL), `the cloud-init does not name the server ${baseURL}`);
    install = (await page.getByTestId('agent-install-command').textContent()).trim();
    const wantInstall = `export STAGELY_TOKEN=${token}; curl -fsSL ${baseURL}/install.sh | sudo --preserve-env=STAGELY_TOKEN sh`;
    check(install === wantInstall, `the install command is ${install}, want ${wantInstall}`);
    await page.locator(`[data-testid="agent-row"]`, { hasText: agentName }).waitFor();
    check((await storageDump()).indexOf(token) < 0, 'the token was written to localStorage or sessionStorage');
    check(!page.url().includes(token), 'the token is in the URL');
    await screenshot('agent-token-shown-once');
  });

  await run('the token is gone after a reload', async () => {
    await page.reload();
    await page.locator(`[data-testid="agent-row"]`, { hasText: agentName }).waitFor();
    check((await page.getByTestId('agent-credentials').count()) === 0, 'the credentials panel survived a reload');
    check(!(await page.content()).includes(token), 'the token is still in the page HTML after a reload');
    check(!(await page.content()).includes(token.slice(0, 12)), 'part of the token is in the page HTML after a reload');
    check((await storageDump()).indexOf(token) < 0, 'the token is in localStorage or sessionStorage');
    await screenshot('agents-after-reload');
  });

  await run('the install command, run on this machine, brings the agent online', async () => {
    const row = page.locator('[data-testid="agent-row"]', { hasText: agentName });
    check((await row.getByTestId('agent-status').textContent()) === 'waiting for first connection',
      'before the install the agent is not shown as waiting for its first connection');
    const output = await runInstall(install);
    check(output.includes('checksum verified'), `install.sh did not verify the agent:\n${output}`);
    await terminalShot('agent-install-terminal', install, output);
    // The list polls every 5 s; the agent connects once it has traded its bootstrap token.
    await row.getByTestId('agent-status').filter({ hasText: /^(online|busy)$/ }).waitFor({ timeout: 120_000 });
    check(!(await page.content()).includes(token), 'the bootstrap token is in the page HTML');
    await screenshot('agent-online');
  });

  await run('create a project for acme/web deployed by the agent', async () => {
    await nav.getByRole('link', { name: 'Projects', exact: true }).click();
    await page.getByTestId('new-project-button').click();
    await page.getByTestId('new-project-form').waitFor();
    await page.getByLabel('GitHub account', { exact: true }).selectOption({ label: 'acme (Organization)' });
    const repoSelect = page.getByLabel('Repository', { exact: true });
    await repoSelect.locator('option', { hasText: 'acme/web' }).waitFor({ state: 'attached' });
    await repoSelect.selectOption({ label: 'acme/web (private)' });
    check((await page.getByTestId('project-name').getAttribute('placeholder')) === 'web', 'the name placeholder is not the repository name');
    check((await page.getByTestId('project-branch').getAttribute('placeholder')) === 'main', 'the branch placeholder is not the default branch');
    const agentOption = page.getByTestId('project-agent').locator('option', { hasText: agentName });
    await agentOption.waitFor({ state: 'attached' });
    await page.getByTestId('project-agent').selectOption({ label: (await agentOption.textContent()).trim() });
    await screenshot('new-project-filled');
    await page.getByRole('button', { name: 'Create project' }).click();
    await page.getByTestId('project-page').waitFor();
    check((await page.locator('h1').textContent()) === 'web', 'the project page is not titled web');
    check(/^\/projects\/\d+$/.test(new URL(page.url()).pathname), `the project page is at ${page.url()}`);
  });

  await run('the project shows the agent link, and relinking saves', async () => {
    const select = page.getByTestId('project-agent-select');
    await select.waitFor();
    const linked = await select.evaluate((el) => el.selectedOptions[0]?.textContent ?? '');
    check(linked.startsWith(`${agentName} `), `"Deployed by" shows ${JSON.stringify(linked)}, want ${agentName}`);
    // Unlink and link again through PATCH, waiting for each save.
    const agentValue = await select.inputValue();
    await select.selectOption('');
    await page.getByRole('status').filter({ hasText: 'Saved.' }).waitFor();
    await select.selectOption(agentValue);
    await page.waitForFunction(
      (v) => {
        const el = document.querySelector('[data-testid="project-agent-select"]');
        return el && !el.disabled && el.value === v;
      },
      agentValue,
    );
    await page.getByRole('status').filter({ hasText: 'Saved.' }).waitFor();
    // The server, not just the page, must hold the link: a fresh load shows it.
    await page.reload();
    await page.getByTestId('project-agent-select').waitFor();
    const after = await page
      .getByTestId('project-agent-select')
      .evaluate((el) => el.selectedOptions[0]?.textContent ?? '');
    check(after.startsWith(`${agentName} `), `after a reload "Deployed by" shows ${JSON.stringify(after)}`);
    await screenshot('project');
  });

  await run('add a secret (saved with Ctrl+Enter); its value is never shown', async () => {
    await page.getByTestId('secrets-empty').waitFor();
    check((await page.getByTestId('secret-scope').inputValue()) === 'global', 'the scope does not default to global');
    await page.getByTestId('secret-key').fill('DATABASE_URL');
    await page.getByTestId('secret-value').fill(secretValue);
    await page.getByTestId('secret-value').press('Control+Enter');
    await page.getByTestId('secret-saved').filter({ hasText: 'Saved DATABASE_URL in global' }).waitFor();
    await page.locator('[data-testid="secret-row"][data-scope="global"][data-key="DATABASE_URL"]').waitFor();
    check(!(await page.content()).includes(secretValue), 'the secret value is in the page HTML after saving');
    check(!(await controlValues()).some((v) => v.includes(secretValue)), 'a form field still holds the secret value');
    check((await storageDump()).indexOf(secretValue) < 0, 'the secret value is in localStorage or sessionStorage');
    await screenshot('secret-saved');
    await page.reload();
    await page.locator('[data-testid="secret-row"][data-scope="global"][data-key="DATABASE_URL"]').waitFor();
    check(!(await page.content()).includes(secretValue), 'the secret value is in the page HTML after a reload');
  });

  await run('paste a .env into the preview set: each bad line is listed and nothing is stored', async () => {
    const previewSet = page.getByTestId('secret-set-preview');
    await page.getByTestId('secrets-paste-preview').click();
    const dialog = page.getByRole('dialog', { name: 'Paste a .env file into Previews' });
    await dialog.waitFor();
    const bad = [
      '# preview settings',
      'export API_URL=https://api.preview.example.com',
      'not a variable',
      '9LIVES=x',
      'DATABASE_URL="' + previewSecretValue,
    ].join('\n');
    await dialog.getByLabel('.env file').fill(bad);
    await dialog.getByRole('button', { name: 'Import into Previews' }).click();
    await dialog.getByTestId('dotenv-errors').waitFor();
    const lines = await dialog.getByTestId('dotenv-error').allTextContents();
    const want = [
      'Line 3: expected KEY=VALUE: there is no =',
      'Line 4: key "9LIVES" must start with a letter or _ and hold only letters, digits and _',
      'Line 5: DATABASE_URL: the double quote opened here is never closed (the file ends on line 5)',
    ];
    check(JSON.stringify(lines) === JSON.stringify(want), `the dialog lists ${JSON.stringify(lines)}, want ${JSON.stringify(want)}`);
    check(!(await dialog.getByTestId('dotenv-errors').textContent()).includes(previewSecretValue), 'an error quotes the value');
    check((await previewSet.getByTestId('secret-row').count()) === 0, 'a refused .env stored secrets');
    // Tall enough for the whole dialog in the docs' screenshot.
    await page.setViewportSize({ width: 1280, height: 1300 });
    await sectionShot('previews-dotenv-errors', dialog);
    await page.setViewportSize({ width: 1280, height: 900 });
    const good = [
      '# preview settings',
      'export API_URL=https://api.preview.example.com',
      'DATABASE_URL="' + previewSecretValue + '"',
      '',
      "FEATURE_FLAGS='new-checkout' # the redesign",
    ].join('\n');
    await dialog.getByLabel('.env file').fill(good);
    await dialog.getByRole('button', { name: 'Import into Previews' }).click();
    await dialog.waitFor({ state: 'detached' });
    await page.getByTestId('secrets-imported').filter({ hasText: 'Imported 3 secrets into Previews.' }).waitFor();
    await previewSet.locator('[data-testid="secret-row"][data-key="FEATURE_FLAGS"]').waitFor();
    const keys = await previewSet.getByTestId('secret-row').evaluateAll((rows) => rows.map((r) => r.dataset.key));
    check(JSON.stringify(keys) === JSON.stringify(['API_URL', 'DATABASE_URL', 'FEATURE_FLAGS']), `the preview set lists ${keys}`);
    check(!(await page.content()).includes(previewSecretValue), 'the pasted preview value is in the page HTML');
    check(!(await controlValues()).some((v) => v.includes(previewSecretValue)), 'a form field still holds the pasted value');
  });

  await run('mark the production DATABASE_URL "also for previews": the preview value wins', async () => {
    const prodRow = page.locator('[data-testid="secret-row"][data-environment="production"][data-key="DATABASE_URL"]');
    await prodRow.getByTestId('secret-share').check();
    const shared = page.getByTestId('secret-set-preview').locator('[data-testid="secret-shared-row"][data-key="DATABASE_URL"]');
    await shared.filter({ hasText: 'the preview value above wins' }).waitFor();
    await page.reload();
    await shared.waitFor();
    check(await page.locator('[data-testid="secret-row"][data-environment="production"][data-key="DATABASE_URL"]').getByTestId('secret-share').isChecked(),
      'after a reload the production DATABASE_URL is not marked for previews');
    await sectionShot('secrets-two-sets', page.getByTestId('secrets-list'));
  });

  await run('switch previews on and run them on the agent', async () => {
    const toggle = page.getByRole('switch', { name: 'Deploy a preview of every pull request' });
    check(!(await toggle.isChecked()), 'previews are on for a new project');
    await toggle.check();
    await page.getByTestId('previews-saved').filter({ hasText: 'Saved.' }).waitFor();
    const select = page.getByTestId('preview-agent-select');
    const option = select.locator('option', { hasText: `${agentName} (` });
    await select.selectOption(await option.getAttribute('value'));
    await page.waitForFunction(() => {
      const el = document.querySelector('[data-testid="preview-agent-select"]');
      const saved = document.querySelector('[data-testid="previews-saved"]');
      return el && !el.disabled && el.value !== '' && saved?.textContent === 'Saved.';
    });
    await page.reload();
    await page.getByRole('switch').waitFor();
    check(await page.getByRole('switch').isChecked(), 'after a reload previews are not on');
    const agentShown = await page.getByTestId('preview-agent-select').evaluate((el) => el.selectedOptions[0]?.textContent ?? '');
    check(agentShown.startsWith(`${agentName} `), `after a reload previews run on ${JSON.stringify(agentShown)}`);
  });

  await run('the previews list shows each pull request, queued as queued', async () => {
    // The test records three previews once the switch is on (the server's pipeline writes
    // these rows); the list polls every 5 s.
    const rows = page.getByTestId('preview-row');
    await rows.nth(2).waitFor({ timeout: 120_000 });
    const states = await rows.evaluateAll((rs) => rs.map((r) => `#${r.dataset.pr} ${r.dataset.state}`));
    check(JSON.stringify(states) === JSON.stringify(['#13 awaiting_approval', '#12 queued', '#11 live']), `the previews list shows ${states}`);
    const queued = page.locator('[data-testid="preview-row"][data-pr="12"]');
    check((await queued.getByTestId('preview-state').textContent()) === 'queued', 'PR 12 is not shown as queued');
    const url = await page.locator('[data-testid="preview-row"][data-pr="11"]').getByTestId('preview-url').getAttribute('href');
    check(url === 'https://web--pr-11--web.preview.example.com', `the live preview links ${url}`);
    await sectionShot('previews-list', page.getByTestId('previews-section'));
  });

  await run('sign out', async () => {
    sessionCookie = (await context.cookies()).find((c) => c.name === 'stagely_session');
    check(sessionCookie !== undefined, 'no stagely_session cookie while signed in');
    await page.getByRole('button', { name: 'Sign out' }).click();
    await page.getByTestId('sign-in').waitFor();
    check(!(await context.cookies()).some((c) => c.name === 'stagely_session'), 'the session cookie survived sign-out');
    await screenshot('signed-out');
    await page.reload();
    await page.getByTestId('sign-in').waitFor();
  });

  await run('the old session cookie no longer works', async () => {
    const api = await request.newContext({
      baseURL,
      extraHTTPHeaders: { Cookie: `stagely_session=${sessionCookie.value}` },
    });
    const resp = await api.get('/api/me');
    check(resp.status() === 401, `GET /api/me with the signed-out cookie answered ${resp.status()}, want 401`);
    await api.dispose();
  });
} catch (err) {
  // Keep what a person needs to see what went wrong: the page, its HTML and a trace.
  console.error(`FAILED at step "${step}": ${err instanceof StepError ? err.message : err.stack || err}`);
  if (pageErrors.length) console.error(`page errors:\n${pageErrors.join('\n')}`);
  try {
    await page.screenshot({ path: join(outDir, 'failure.png'), fullPage: true });
    await writeFile(join(outDir, 'failure.html'), await page.content());
    await writeFile(join(outDir, 'console.log'), consoleLines.join('\n') + '\n');
    await context.tracing.stop({ path: join(outDir, 'trace.zip') });
    console.error(`kept failure.png, failure.html, console.log and trace.zip (npx playwright-core show-trace) in ${outDir}`);
  } catch (saveErr) {
    console.error(`could not save the failure artefacts: ${saveErr}`);
  }
  await browser.close();
  process.exit(1);
}
await context.tracing.stop();
await browser.close();
console.log('all steps passed');
