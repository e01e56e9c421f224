// A security manager signs in on the approvals page with Microsoft Entra
// ID (the dev issuer's persona picker plays Entra): the callback's answer
// refreshes to /admin/, a same-site navigation that carries the
// SameSite=Strict session cookie, so the person ends up signed in.
//
// Input: {base, screenshots, persona, user}
// Facts: {who, notice, picker_url}

import { PAGE, check, input, openBrowser, scenario, screenshot } from './lib.mjs';

// ---------------------------------------------------------------- selectors
const SEL = {
  signInHeading: (page) => page.getByRole('heading', { name: 'Sign in', exact: true }),
  entraLink: (page) => page.getByRole('link', { name: 'Sign in with Microsoft Entra ID', exact: true }),
  pickerHeading: (page) => page.getByRole('heading', { name: 'Sign in to the Warden dev tenant', exact: true }),
  persona: (page, name) => page.getByRole('button', { name: new RegExp(`^${name} · `) }),
};

await scenario('entra-sign-in', async (result) => {
  const page = await openBrowser(result);
  const response = await page.goto(`${input.base}/admin/`);
  check(result, 'the sign-in page loads', response?.status() === 200, response?.status());
  await SEL.signInHeading(page).waitFor();
  check(result, 'nobody is signed in yet', (await PAGE.whoAmI(page).count()) === 0);

  // To "Entra ID": the persona picker on the dev issuer's origin.
  await Promise.all([page.waitForURL((url) => !url.href.startsWith(input.base)), SEL.entraLink(page).click()]);
  await SEL.pickerHeading(page).waitFor();
  result.facts.picker_url = page.url();
  await screenshot(result, page, 'entra-sign-in-picker');

  // Pick the security manager: back at Warden's callback, whose page
  // refreshes to /admin/.
  const landed = page.waitForURL((url) => url.href === `${input.base}/admin/`, { waitUntil: 'load' });
  await SEL.persona(page, input.persona).click();
  await landed;
  await PAGE.whoAmI(page).waitFor();
  result.facts.who = await PAGE.whoAmI(page).innerText();
  check(result, 'the header names the user', result.facts.who.includes(input.user), result.facts.who);
  const notice = PAGE.notice(page, 'Signed in as');
  result.facts.notice = (await notice.count()) === 1 ? await notice.innerText() : null;
  check(result, 'the notice says who signed in', result.facts.notice?.includes(input.user), result.facts.notice);
  check(result, 'no error', (await PAGE.alert(page).count()) === 0);
  await PAGE.listHeading(page).waitFor();
  await screenshot(result, page, 'entra-sign-in-signed-in');

  // The session holds: a reload is still signed in.
  await page.reload();
  await PAGE.whoAmI(page).waitFor();
});
