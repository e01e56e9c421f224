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
// button and link names, roles), never by CSS paths; a scenario's own ones
// are at the top of its file.
export const PAGE = {
  /** The sign-in form's token field and button. */
  tokenField: (page) => page.getByLabel('Access token'),
  signInButton: (page) => page.getByRole('button', { name: 'Sign in', exact: true }),
  /** The one-time notice after a redirect ("Signed in as ...", "Request ... is approved ..."). */
  notice: (page, text) => page.getByRole('status').filter({ hasText: text }),
  /** An error or refusal. */
  alert: (page) => page.getByRole('alert'),
  /** Who is signed in (the page's header). */
  whoAmI: (page) => page.locator('header').getByText('Signed in as'),
  pendingHeading: (page) => page.getByRole('heading', { name: /^Pending \(\d+\)$/ }),
  historyHeading: (page) => page.getByRole('heading', { name: /^History \(\d+\)$/ }),
  /** A pending request's card on the overview (its id is in its caption). */
  pendingRequest: (page, id) => page.getByRole('article').filter({ hasText: id }),
  /** A request's link (the history table and the detail pages name it by id). */
  requestLink: (page, id) => page.getByRole('link', { name: id, exact: true }),
  /** The form field every action needs. */
  reason: (scope, label) => scope.getByLabel(label),
  button: (scope, name) => scope.getByRole('button', { name, exact: true }),
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
 * Waits for the notice `text` after a form was sent, or fails at once with
 * the page's error when one shows instead.
 */
export async function expectNotice(result, page, name, text) {
  const notice = PAGE.notice(page, text);
  await notice.or(PAGE.alert(page)).first().waitFor();
  const alert = (await PAGE.alert(page).count()) > 0 ? await PAGE.alert(page).first().innerText() : null;
  check(result, name, alert === null && (await notice.count()) === 1, alert ?? undefined);
  return notice.innerText();
}

/** Opens /admin/, pastes `token` into the sign-in form and sends it. */
export async function signIn(result, page, token, who) {
  const response = await page.goto(`${input.base}/admin/`);
  check(result, `${who}: the sign-in page loads`, response?.status() === 200, response?.status());
  await PAGE.tokenField(page).fill(token);
  await PAGE.signInButton(page).click();
  await expectNotice(result, page, `${who}: signed in`, 'Signed in as');
  await PAGE.whoAmI(page).waitFor();
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
