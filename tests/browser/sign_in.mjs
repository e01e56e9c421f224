// A security manager signs in by pasting a token and sees every pending
// request, each with its approve/deny form.
//
// Input: {base, screenshots, token, user, pending: [request ids]}
// Facts: {pending_heading, who, review_note, shown: [ids with a review form]}

import { PAGE, check, input, openBrowser, scenario, screenshot, signIn } from './lib.mjs';

// ---------------------------------------------------------------- selectors
const SEL = {
  signInHeading: (page) => page.getByRole('heading', { name: 'Sign in', exact: true }),
  canReview: (page) => page.getByText('You can review requests.'),
  reviewReason: (card) => PAGE.reason(card, 'Reason for your decision (required)'),
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

  result.facts.pending_heading = await PAGE.pendingHeading(page).innerText();
  result.facts.shown = [];
  for (const id of input.pending) {
    const card = PAGE.pendingRequest(page, id);
    check(result, `request ${id} is listed as pending`, (await card.count()) === 1);
    const form =
      (await SEL.reviewReason(card).count()) === 1 &&
      (await PAGE.button(card, 'Approve').count()) === 1 &&
      (await PAGE.button(card, 'Deny').count()) === 1;
    check(result, `request ${id} has its approve/deny form`, form);
    result.facts.shown.push(id);
  }
  await screenshot(result, page, 'sign-in-pending');
});
