// Shared by the approvals page's browser scenarios (tests/browser/*.mjs),
// which tests/browser.rs runs against a Warden it started:
//
//   WARDEN_BROWSER_INPUT='{"base": "http://127.0.0.1:PORT", "screenshots": DIR, ...}' \
//     $WARDEN_TEST_BROWSER_NODE tests/browser/<scenario>.mjs
//
// A scenario drives Debian's Chromium ($WARDEN_TEST_CHROMIUM) through
// playwright-core ($WARDEN_TEST_PLAYWRIGHT_CORE; both from
// scripts/install-test-deps.sh; no browser is ever downloaded). It prints
// one JSON line on stdout, {"scenario", "ok", "checks", "facts",
// "screenshots", "posts", "error"}, and exits 0 only when every check held.
// It never sleeps for a fixed time: it waits for elements and responses.

import { createRequire } from 'node:module';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

const require = createRequire(import.meta.url);

// ---------------------------------------------------------------- selectors
// The page's parts every scenario uses, found by what a person sees (labels,
// button and link names, headings, roles), never by CSS paths; a scenario's
// own ones are at the top of its file. The one exception is telling apart
// requests whose descriptions read the same ("call azure__..."): a request's
// link is known by its target, the request's own page (/admin/requests/ID).
export const PAGE = {
  /** The sign-in form's token field and button. */
  tokenField: (page) => page.getByLabel('Access token'),
  signInButton: (page) => page.getByRole('button', { name: 'Sign in', exact: true }),
  /** The one-time notice after a redirect ("Signed in as ...", "Request ... is approved ..."). */
  notice: (page, text) => page.getByRole('status').filter({ hasText: text }),
  /** An error or refusal. */
  alert: (page) => page.getByRole('alert'),
  /** Who is signed in (the page's header). */
  whoAmI: (page) => page.getByRole('banner').getByText('Signed in as'),
  /** The section links ("Requests", "Audit"). */
  navLink: (page, name) => page.getByRole('navigation', { name: 'Sections' }).getByRole('link', { name, exact: true }),

  // The list (/admin/).
  listHeading: (page) => page.getByRole('heading', { name: 'JIT requests', exact: true }),
  filterForm: (page) => page.getByRole('form', { name: 'Filter requests' }),
  statusFilter: (page) => PAGE.filterForm(page).getByLabel('Status', { exact: true }),
  classFilter: (page) => PAGE.filterForm(page).getByLabel('Operation class', { exact: true }),
  requesterFilter: (page) => PAGE.filterForm(page).getByLabel('Requester (object id)', { exact: true }),
  scopeFilter: (page) => PAGE.filterForm(page).getByLabel('Scope (ARM id)', { exact: true }),
  sortBy: (page) => PAGE.filterForm(page).getByLabel('Sort by', { exact: true }),
  filterButton: (page) => PAGE.filterForm(page).getByRole('button', { name: 'Filter', exact: true }),
  /** "Showing 1–3 of 3. Download CSV or JSON." */
  showing: (page) => page.getByText(/^Showing \d+–\d+ of \d+\./),
  /** Every link to a request's page (the list's rows, the history's). */
  anyRequestLink: (page) => page.getByRole('link').and(page.locator('[href^="/admin/requests/"]')),
  /** The link to request `id`'s page. */
  requestLink: (page, id) => page.getByRole('link')
    .and(page.locator(`[href="/admin/requests/${id}"], [href="/admin/requests/${id}#records"]`)),
  /** The row of request `id` in a list or the history. */
  requestRow: (page, id) => page.getByRole('row').filter({ has: PAGE.requestLink(page, id) }),
  downloadLink: (scope, format) => scope.getByRole('link', { name: format, exact: true }),

  // A request's page (/admin/requests/ID).
  /** The section "What it would do", and one of its decoded facts by label. */
  whatItWouldDo: (page) => page.getByRole('region', { name: 'What it would do' }),
  fact: (page, label) => PAGE.whatItWouldDo(page).getByRole('row')
    .filter({ has: page.getByRole('rowheader', { name: label, exact: true }) }),
  /** A row of the table "The request" ("Request", "Requester", "Justification", ...). */
  requestField: (page, label) => page.getByRole('region', { name: 'The request' }).getByRole('row')
    .filter({ has: page.getByRole('rowheader', { name: label, exact: true }) }),
  decide: (page) => page.getByRole('region', { name: 'Decide' }),
  decisionReason: (page) => page.getByLabel('Reason for your decision (required, recorded in the audit log)'),
  /** The sentences beside the buttons: what approving and denying do. */
  approveMeans: (page) => PAGE.decide(page).getByText(/^Approve: /),
  denyMeans: (page) => PAGE.decide(page).getByText(/^Deny: /),
  revokeReason: (page) => page.getByLabel('Reason to revoke the grant (required)'),
  cancelReason: (page) => page.getByLabel('Reason to cancel your request (required)'),
  /** The audit log's records of the request ("#12", ...). */
  auditRecords: (page) => page.getByRole('region', { name: 'Audit records' })
    .getByRole('rowheader', { name: /^#\d+$/ }),
  /** Approve, Deny, Revoke, Cancel request. */
  button: (scope, name) => scope.getByRole('button', { name, exact: true }),
  anyDecisionButton: (page) => page.getByRole('button', { name: /^(Approve|Deny|Revoke)$/ }),

  // The audit view (/admin/audit).
  auditHeading: (page) => page.getByRole('heading', { name: 'Audit', exact: true, level: 1 }),
  policyInForce: (page) => page.getByRole('region', { name: 'Policy set in force' }),
  history: (page) => page.getByRole('region', { name: 'Request history' }),
  riskAlerts: (page) => page.getByRole('region', { name: 'Risk alerts' }),
};

/** The scenario's input (see tests/browser.rs). */
export const input = JSON.parse(process.env.WARDEN_BROWSER_INPUT ?? '{}');

/** How long one wait (an element, a navigation) may take. */
const STEP_TIMEOUT_MS = 15_000;

/** Chromium's flags: headless, no sandbox (root in CI), nothing phoning home. */
export const CHROMIUM_FLAGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

function env(name) {
  const value = process.env[name];
  if (!value) {
    throw new Error(`${name} is not set (run scripts/install-test-deps.sh; tests/browser.rs passes .deps/paths.env)`);
  }
  return value;
}

/**
 * A fresh Chromium with a fresh profile (its own user-data-dir: no cookies
 * shared with another browser of the scenario). Every POST it sends is
 * recorded in `posts` ({url, origin, status}).
 */
export async function openBrowser(result, { width = 1280, height = 900 } = {}) {
  const { chromium } = require(env('WARDEN_TEST_PLAYWRIGHT_CORE'));
  const userDataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'warden-chromium-'));
  const context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: env('WARDEN_TEST_CHROMIUM'),
    headless: true,
    args: CHROMIUM_FLAGS,
    viewport: { width, height },
    timeout: 30_000,
  });
  context.setDefaultTimeout(STEP_TIMEOUT_MS);
  context.setDefaultNavigationTimeout(STEP_TIMEOUT_MS);
  const page = context.pages()[0] ?? (await context.newPage());
  page.on('response', async (response) => {
    const request = response.request();
    if (request.method() !== 'POST') return;
    const headers = await request.allHeaders().catch(() => ({}));
    result.posts.push({
      url: request.url(),
      origin: headers.origin ?? null,
      status: response.status(),
    });
  });
  result.browsers.push({ context, userDataDir });
  return page;
}

/** Saves a full-page PNG as SCREENSHOTS/<name>.png. */
export async function screenshot(result, page, name) {
  fs.mkdirSync(input.screenshots, { recursive: true });
  const file = path.join(input.screenshots, `${name}.png`);
  await page.screenshot({ path: file, fullPage: true });
  result.screenshots.push(file);
  return file;
}

/** Records a check; a failed one ends the scenario. */
export function check(result, name, holds, detail) {
  result.checks.push({ name, ok: Boolean(holds), detail: detail ?? null });
  if (!holds) {
    throw new Error(`check failed: ${name}${detail === undefined ? '' : `: ${JSON.stringify(detail)}`}`);
  }
}

/**
 * Clicks `control` (a form's button, a link) and waits until the page it
 * leads to has loaded (after a post, the page the 303 leads to).
 */
export async function follow(page, control) {
  await Promise.all([page.waitForEvent('load'), control.click()]);
}

/**
 * Sends a form with `button` and checks that the page it leads to shows the
 * notice `text` (and no error); the notice's text.
 */
export async function expectNotice(result, page, name, button, text) {
  await follow(page, button);
  const notice = PAGE.notice(page, text);
  const alert = (await PAGE.alert(page).count()) > 0 ? await PAGE.alert(page).first().innerText() : null;
  check(result, name, alert === null && (await notice.count()) === 1,
    alert ?? { expected: text, url: page.url() });
  return notice.innerText();
}

/**
 * Sends a form with `button` and checks that it leads back to request
 * `id`'s page with an error containing every string of `texts`; the
 * error's text.
 */
export async function expectAlert(result, page, name, button, id, texts) {
  await follow(page, button);
  const url = new URL(page.url());
  check(result, `${name}: back on the request's page`, url.pathname === `/admin/requests/${id}`, page.url());
  const alerts = await PAGE.alert(page).allInnerTexts();
  const alert = alerts.find((a) => texts.every((t) => a.includes(t)));
  check(result, name, alert !== undefined, { expected: texts, alerts });
  check(result, `${name}: no notice of success`, (await page.getByRole('status').count()) === 0);
  return alert;
}

/** Opens /admin/, pastes `token` into the sign-in form and sends it. */
export async function signIn(result, page, token, who) {
  const response = await page.goto(`${input.base}/admin/`);
  check(result, `${who}: the sign-in page loads`, response?.status() === 200, response?.status());
  await PAGE.tokenField(page).fill(token);
  await expectNotice(result, page, `${who}: signed in`, PAGE.signInButton(page), 'Signed in as');
  await PAGE.whoAmI(page).waitFor();
}

/** The ids of the requests whose links the page shows, in page order. */
export async function listedIds(page) {
  const hrefs = await PAGE.anyRequestLink(page).evaluateAll((links) => links.map((a) => a.getAttribute('href')));
  return hrefs.map((href) => href.replace(/^\/admin\/requests\//, '').replace(/#.*$/, ''));
}

/** Whether two lists hold the same ids (in any order, each once). */
export function sameIds(a, b) {
  return a.length === b.length && new Set(a).size === a.length && b.every((id) => a.includes(id));
}

/**
 * Sets the list's filter form (`{status, class, requester, scope, sort}`;
 * selects by their visible option text) and sends it; the ids listed then.
 */
export async function filterList(page, fields) {
  if (fields.status !== undefined) await PAGE.statusFilter(page).selectOption({ label: fields.status });
  if (fields.class !== undefined) await PAGE.classFilter(page).selectOption({ label: fields.class });
  if (fields.requester !== undefined) await PAGE.requesterFilter(page).fill(fields.requester);
  if (fields.scope !== undefined) await PAGE.scopeFilter(page).fill(fields.scope);
  if (fields.sort !== undefined) await PAGE.sortBy(page).selectOption({ label: fields.sort });
  await follow(page, PAGE.filterButton(page));
  await PAGE.listHeading(page).waitFor();
  return listedIds(page);
}

/** Clicks request `id`'s link (on the list or the history) and waits for its page. */
export async function openRequest(result, page, id) {
  await follow(page, PAGE.requestLink(page, id).first());
  const field = await PAGE.requestField(page, 'Request').innerText();
  check(result, `request ${id}'s page is open`, field.includes(id), field);
}

/** "Showing 1–3 of 3" as {first, last, total}, or null when nothing is listed. */
export async function showing(page) {
  if ((await PAGE.showing(page).count()) === 0) return null;
  const text = await PAGE.showing(page).innerText();
  const [, first, last, total] = text.match(/^Showing (\d+)–(\d+) of (\d+)/);
  return { text, first: Number(first), last: Number(last), total: Number(total) };
}

/** The rows of a CSV text (RFC 4180: quoted fields may hold commas, quotes, newlines). */
export function parseCsv(text) {
  const rows = [];
  let row = [];
  let field = '';
  let quoted = false;
  for (let i = 0; i < text.length; i += 1) {
    const c = text[i];
    if (quoted) {
      if (c === '"' && text[i + 1] === '"') { field += '"'; i += 1; }
      else if (c === '"') quoted = false;
      else field += c;
    } else if (c === '"') quoted = true;
    else if (c === ',') { row.push(field); field = ''; }
    else if (c === '\n' || c === '\r') {
      if (c === '\r' && text[i + 1] === '\n') i += 1;
      row.push(field); rows.push(row); row = []; field = '';
    } else field += c;
  }
  if (field !== '' || row.length > 0) { row.push(field); rows.push(row); }
  return rows;
}

/** Whether the page scrolls sideways, and what sticks out if it does. */
export async function horizontalOverflow(page) {
  return page.evaluate(() => {
    const innerWidth = window.innerWidth;
    const scrollWidth = document.documentElement.scrollWidth;
    const culprits = [];
    if (scrollWidth > innerWidth) {
      for (const element of document.body.querySelectorAll('*')) {
        const box = element.getBoundingClientRect();
        if (box.right > innerWidth + 0.5 && culprits.length < 8) {
          const id = element.id ? `#${element.id}` : '';
          culprits.push(`${element.tagName.toLowerCase()}${id} right=${Math.round(box.right)}`);
        }
      }
    }
    return { innerWidth, scrollWidth, culprits };
  });
}

/**
 * Text squeezed into a column too narrow to read (a caption or cell a few
 * characters wide, its words broken letter by letter): elements whose own
 * text has 12 or more characters laid out narrower than 4 of them.
 */
export async function squeezedText(page) {
  return page.evaluate(() => {
    const culprits = [];
    for (const element of document.body.querySelectorAll('*')) {
      const own = [...element.childNodes]
        .filter((node) => node.nodeType === Node.TEXT_NODE)
        .map((node) => node.textContent.trim())
        .join('');
      if (own.length < 12) continue;
      const box = element.getBoundingClientRect();
      const em = parseFloat(getComputedStyle(element).fontSize) || 16;
      if (box.width > 0 && box.width < 2 * em && culprits.length < 8) {
        culprits.push(`${element.tagName.toLowerCase()} "${own.slice(0, 30)}" width=${Math.round(box.width)}`);
      }
    }
    return culprits;
  });
}

/**
 * Runs a scenario: `body(result)` drives the browsers. Prints the result as
 * one JSON line and sets the exit code. On failure the page of the last
 * browser is saved as SCREENSHOTS/<scenario>-failure.png.
 */
export async function scenario(name, body) {
  const result = {
    scenario: name,
    ok: false,
    checks: [],
    facts: {},
    screenshots: [],
    posts: [],
    error: null,
    browsers: [],
  };
  // A failure picture of an earlier run would mislead.
  fs.rmSync(path.join(input.screenshots, `${name}-failure.png`), { force: true });
  try {
    await body(result);
    result.ok = true;
  } catch (error) {
    result.error = String(error?.stack ?? error);
    const last = result.browsers.at(-1);
    const page = last?.context.pages()[0];
    if (page) {
      await screenshot(result, page, `${name}-failure`).catch(() => {});
      result.facts.failure_url = page.url();
      result.facts.failure_text = await page
        .locator('body')
        .innerText({ timeout: 2_000 })
        .catch(() => null);
    }
  }
  for (const { context, userDataDir } of result.browsers) {
    await context.close().catch(() => {});
    fs.rmSync(userDataDir, { recursive: true, force: true });
  }
  delete result.browsers;
  process.stdout.write(`${JSON.stringify(result)}\n`);
  process.exitCode = result.ok ? 0 : 1;
}
