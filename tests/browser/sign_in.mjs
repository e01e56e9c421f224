// A security manager signs in by pasting a token and sees the pending
// requests: a compact list (pending by default), each row a link to the
// request's own page; decided requests are not in it.
//
// Input: {base, screenshots, token, user, pending: [request ids],
//         decided: [request ids no longer pending]}
// Facts: {who, showing, status_filter, shown: [ids listed]}

import { PAGE, check, input, listedIds, openBrowser, sameIds, scenario, screenshot, showing, signIn } from './lib.mjs';

// ---------------------------------------------------------------- selectors
const SEL = {
  signInHeading: (page) => page.getByRole('heading', { name: 'Sign in', exact: true }),
  canReview: (page) => page.getByText('You can review requests.', { exact: true }),
  statusCell: (row) => row.getByRole('cell', { name: 'pending', exact: true }),
};

await scenario('sign-in', async (result) => {
  const page = await openBrowser(result);
  await page.goto(`${input.base}/admin/`);
  await SEL.signInHeading(page).waitFor();
  await screenshot(result, page, 'sign-in-form');

  await signIn(result, page, input.token, input.user);
  result.facts.who = await PAGE.whoAmI(page).innerText();
  check(result, 'the header names the user', result.facts.who.includes(input.user), result.facts.who);
  check(result, 'a security manager with MFA may review', (await SEL.canReview(page).count()) === 1);
  await PAGE.listHeading(page).waitFor();
  check(result, 'the Audit section is offered', (await PAGE.navLink(page, 'Audit').count()) === 1);

  // Pending requests by default, every one of them, and only those.
  const statusFilter = await PAGE.statusFilter(page).evaluate((select) => select.selectedOptions[0]?.textContent);
  result.facts.status_filter = statusFilter;
  check(result, 'the list shows pending requests by default', statusFilter === 'pending', statusFilter);
  result.facts.showing = (await showing(page))?.text ?? null;
  check(result, `it says it shows all ${input.pending.length}`,
    result.facts.showing?.startsWith(`Showing 1–${input.pending.length} of ${input.pending.length}.`), result.facts.showing);
  result.facts.shown = await listedIds(page);
  check(result, 'exactly the pending requests are listed', sameIds(result.facts.shown, input.pending), result.facts.shown);
  for (const id of input.pending) {
    check(result, `request ${id}'s row says pending`, (await SEL.statusCell(PAGE.requestRow(page, id)).count()) === 1);
  }
  for (const id of input.decided) {
    check(result, `decided request ${id} is not listed`, (await PAGE.requestLink(page, id).count()) === 0);
  }
  // The list itself has no decision forms: those are on each request's page.
  check(result, 'no approve or deny buttons on the list', (await PAGE.anyDecisionButton(page).count()) === 0);
  await screenshot(result, page, 'sign-in-pending');
});
