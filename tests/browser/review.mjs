// A security manager approves one request, denies another and revokes an
// approved one, each with a reason, through the page's forms.
//
// Input: {base, screenshots, token, user, approve, deny, revoke: request ids}
// Facts: {approved, denied, revoked: the notices the page showed}

import { PAGE, check, expectNotice, input, openBrowser, scenario, screenshot, signIn } from './lib.mjs';

// ---------------------------------------------------------------- selectors
const SEL = {
  reviewReason: (card) => PAGE.reason(card, 'Reason for your decision (required)'),
  revokeReason: (page) => PAGE.reason(page, 'Reason to revoke the grant (required)'),
  detailHeading: (page, id) => page.getByRole('heading', { name: `Request ${id}`, exact: true }),
};

await scenario('review', async (result) => {
  const page = await openBrowser(result);
  await signIn(result, page, input.token, input.user);

  // Approve.
  let card = PAGE.pendingRequest(page, input.approve);
  await SEL.reviewReason(card).fill('Change CHG-101 approved in the CAB');
  await PAGE.button(card, 'Approve').click();
  result.facts.approved = await expectNotice(result, page, 'approved', `Request ${input.approve} is approved`);
  check(result, 'the approved request left the pending list', (await PAGE.pendingRequest(page, input.approve).count()) === 0);
  await screenshot(result, page, 'review-approved');

  // Deny (the same form's second button).
  card = PAGE.pendingRequest(page, input.deny);
  await SEL.reviewReason(card).fill('Not during the change freeze');
  await PAGE.button(card, 'Deny').click();
  result.facts.denied = await expectNotice(result, page, 'denied', `Request ${input.deny} is now denied`);
  check(result, 'the denied request left the pending list', (await PAGE.pendingRequest(page, input.deny).count()) === 0);
  await screenshot(result, page, 'review-denied');

  // Revoke: from the history, on the request's own page.
  await PAGE.requestLink(page, input.revoke).click();
  await SEL.detailHeading(page, input.revoke).waitFor();
  await SEL.revokeReason(page).fill('Incident closed; the grant is no longer needed');
  await screenshot(result, page, 'review-revoke-form');
  await PAGE.button(page, 'Revoke').click();
  result.facts.revoked = await expectNotice(result, page, 'revoked', `Request ${input.revoke} is now revoked`);
  await screenshot(result, page, 'review-revoked');
});
