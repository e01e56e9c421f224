// An MCP client signs a person in through Warden's OAuth facade: the
// consent page names the client (unverified) and where the answer goes;
// "Allow" leads to the dev issuer's persona picker, a persona is picked,
// and the browser is sent to the client's redirect URI with Warden's code.
// "Deny" (on a second authorization request) sends it there with
// error=access_denied. Nothing listens on the redirect URI: the scenario
// intercepts the request and answers it itself.
//
// Input: {base, screenshots, client, redirect, persona,
//         allow: /authorize URL, deny: /authorize URL}
// Facts: {consent_text, allowed: {url, code, state, iss, error},
//         denied: {url, code, state, iss, error}}

import { check, input, openBrowser, scenario, screenshot } from './lib.mjs';

// ---------------------------------------------------------------- selectors
const SEL = {
  consentHeading: (page) => page.getByRole('heading', { level: 1, name: /^Allow .* to use Warden as you\?$/ }),
  /** A row of the consent page's table ("Application", "Sends you back to", "Access"). */
  consentRow: (page, label) => page.getByRole('row')
    .filter({ has: page.getByRole('rowheader', { name: label, exact: true }) }),
  allow: (page) => page.getByRole('button', { name: 'Allow', exact: true }),
  deny: (page) => page.getByRole('button', { name: 'Deny', exact: true }),
  /** The local-address warning for loopback redirect URIs. */
  loopbackWarning: (page) => page.getByText(/receives the answer on this computer/),
  pickerHeading: (page) => page.getByRole('heading', { name: 'Sign in to the Warden dev tenant', exact: true }),
  /** A persona's button on the picker ("developer · dev@..."). */
  persona: (page, name) => page.getByRole('button', { name: new RegExp(`^${name} · `) }),
  /** The page this scenario answers the redirect URI with. */
  clientPage: (page) => page.getByRole('heading', { name: 'The client received the answer', exact: true }),
};

/** How long the browser may take to reach the redirect URI. */
const ANSWER_TIMEOUT_MS = 15_000;

/** The client's redirect URI's origin and path, for matching requests. */
const redirect = new URL(input.redirect);
const isAnswer = (url) => {
  const u = new URL(url);
  return u.origin === redirect.origin && u.pathname === redirect.pathname;
};

/**
 * Stands in for the client's loopback listener: answers any request to the
 * redirect URI with a small page; a function that waits for the first
 * such request and resolves with its URL.
 */
async function interceptAnswer(page) {
  let resolve;
  const seen = new Promise((ok) => { resolve = ok; });
  await page.route((url) => isAnswer(url.href), async (route) => {
    resolve(route.request().url());
    await route.fulfill({
      status: 200,
      contentType: 'text/html; charset=utf-8',
      body: '<!doctype html><title>Client</title><h1>The client received the answer</h1>',
    });
  });
  // The URL is taken from the request event too, should routing miss a
  // request reached by a redirect.
  page.on('request', (request) => { if (isAnswer(request.url())) resolve(request.url()); });
  // The wait starts when the caller asks.
  return () => {
    let timer;
    const late = new Promise((_, reject) => {
      timer = setTimeout(() => reject(new Error(`no request to ${input.redirect} within ${ANSWER_TIMEOUT_MS} ms (at ${page.url()})`)),
        ANSWER_TIMEOUT_MS);
    });
    return Promise.race([seen, late]).finally(() => clearTimeout(timer));
  };
}

function answer(url) {
  const q = new URL(url).searchParams;
  return { url, code: q.get('code'), state: q.get('state'), iss: q.get('iss'), error: q.get('error') };
}

await scenario('consent', async (result) => {
  const page = await openBrowser(result);
  let answered = await interceptAnswer(page);
  // What Chromium refused (a CSP violation is a console message), for the report.
  result.facts.console = [];
  page.on('console', (message) => result.facts.console.push(message.text()));

  // The consent page: who asks, where the answer goes.
  const response = await page.goto(input.allow);
  check(result, 'the consent page loads', response?.status() === 200, response?.status());
  await SEL.consentHeading(page).waitFor();
  const heading = await SEL.consentHeading(page).innerText();
  check(result, 'the heading names the client', heading.includes(input.client), heading);
  const application = await SEL.consentRow(page, 'Application').innerText();
  check(result, 'the client is named and marked unverified',
    application.includes(input.client) && /unverified/i.test(application), application);
  const sendsBack = await SEL.consentRow(page, 'Sends you back to').innerText();
  check(result, 'the redirect host is shown', sendsBack.includes(redirect.hostname), sendsBack);
  check(result, 'a loopback redirect is warned about', (await SEL.loopbackWarning(page).count()) === 1);
  result.facts.consent_text = await page.locator('main').innerText();
  await screenshot(result, page, 'consent-page');

  // Allow: on to the dev issuer's persona picker.
  await Promise.all([page.waitForURL((url) => !url.href.startsWith(input.base)), SEL.allow(page).click()]);
  await SEL.pickerHeading(page).waitFor();
  check(result, 'the picker is the dev issuer, not Warden', !page.url().startsWith(input.base), page.url());
  await screenshot(result, page, 'consent-persona-picker');

  // A persona: back through Warden to the client's redirect URI.
  await SEL.persona(page, input.persona).click();
  result.facts.allowed = answer(await answered());
  check(result, 'the browser ends at the redirect URI with a code',
    result.facts.allowed.code && !result.facts.allowed.error, result.facts.allowed);
  await SEL.clientPage(page).waitFor();
  await screenshot(result, page, 'consent-redirected');

  // Deny, on a second request: the client is told access_denied.
  await page.unrouteAll({ behavior: 'ignoreErrors' });
  answered = await interceptAnswer(page);
  await page.goto(input.deny);
  await SEL.consentHeading(page).waitFor();
  await SEL.deny(page).click();
  result.facts.denied = answer(await answered());
  check(result, 'Deny ends at the redirect URI with access_denied',
    result.facts.denied.error === 'access_denied' && !result.facts.denied.code, result.facts.denied);
});
