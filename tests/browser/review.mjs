// A security manager filters the list, opens requests and decides them
// through each request's page: one approved (after a refused first try
// whose typed reason is kept), one denied, and an approved one revoked.
//
// Input: {base, screenshots, token, user, approve, deny, revoke (role
//         assignment removals, `revoke` already approved), window (a
//         request_access window for write operations): request ids;
//         tool: the removals' tool name}
// Facts: {pending, privileged, approved_list: ids each filter listed;
//         refused, approved, denied, revoked: what the page said}

import {
  PAGE, check, expectAlert, expectNotice, filterList, input, listedIds, openBrowser, openRequest,
  sameIds, scenario, screenshot, signIn,
} from './lib.mjs';

// ---------------------------------------------------------------- selectors
const SEL = {
  heading: (page) => page.getByRole('heading', { level: 1 }),
};

const REASONS = {
  approve: 'Change CHG-101 approved in the CAB',
  deny: 'Not during the change freeze',
  revoke: 'Incident closed; the grant is no longer needed',
  // Longer than the 4096 bytes the page accepts.
  tooLong: `CHG-101 ${'x'.repeat(4100)}`,
};

await scenario('review', async (result) => {
  const page = await openBrowser(result);
  await signIn(result, page, input.token, input.user);

  // The list: pending requests; filtered to privileged operations, the
  // write window drops out; filtered to approved ones, only grants remain.
  result.facts.pending = await listedIds(page);
  check(result, 'the pending list', sameIds(result.facts.pending, [input.approve, input.deny, input.window]),
    result.facts.pending);
  result.facts.privileged = await filterList(page, { class: 'privileged' });
  check(result, 'filtered by class privileged: the window for writes is gone',
    sameIds(result.facts.privileged, [input.approve, input.deny]), result.facts.privileged);
  check(result, 'the filter is in the address', new URL(page.url()).searchParams.get('class') === 'privileged', page.url());
  await screenshot(result, page, 'review-filtered');

  // Open one: what approving and denying do, its audit records.
  await openRequest(result, page, input.approve);
  const heading = await SEL.heading(page).innerText();
  check(result, 'the heading says what is asked', heading.includes(`call ${input.tool}`), heading);
  const approveMeans = await PAGE.approveMeans(page).innerText();
  check(result, 'approving lets the one call run once',
    approveMeans.startsWith(`Approve: lets this one call of ${input.tool} run once, within`), approveMeans);
  const denyMeans = await PAGE.denyMeans(page).innerText();
  check(result, 'denying ends the request', denyMeans.startsWith('Deny: ends the request'), denyMeans);
  check(result, 'its audit records are listed', (await PAGE.auditRecords(page).count()) >= 1);

  // Refused (the reason is too long): back on the same page, with the error
  // and the typed reason kept.
  await PAGE.decisionReason(page).fill(REASONS.tooLong);
  result.facts.refused = await expectAlert(result, page, 'a too long reason is refused',
    PAGE.button(page, 'Approve'), input.approve, ['Could not approve', 'too long']);
  check(result, 'the typed reason is kept', (await PAGE.decisionReason(page).inputValue()) === REASONS.tooLong);
  await screenshot(result, page, 'review-refused');

  // Approve.
  await PAGE.decisionReason(page).fill(REASONS.approve);
  await screenshot(result, page, 'review-request');
  result.facts.approved = await expectNotice(result, page, 'approved', PAGE.button(page, 'Approve'),
    `Request ${input.approve} is approved`);
  check(result, 'the approved request left the pending list', (await PAGE.requestLink(page, input.approve).count()) === 0);
  await screenshot(result, page, 'review-approved');

  // Deny (the same form's second button).
  await openRequest(result, page, input.deny);
  await PAGE.decisionReason(page).fill(REASONS.deny);
  result.facts.denied = await expectNotice(result, page, 'denied', PAGE.button(page, 'Deny'),
    `Request ${input.deny} is now denied`);
  const left = await listedIds(page);
  check(result, 'only the window is still pending', sameIds(left, [input.window]), left);
  await screenshot(result, page, 'review-denied');

  // Revoke: find the grants with the status filter, open one.
  result.facts.approved_list = await filterList(page, { status: 'approved' });
  check(result, 'filtered by status approved: the two grants',
    sameIds(result.facts.approved_list, [input.approve, input.revoke]), result.facts.approved_list);
  await openRequest(result, page, input.revoke);
  check(result, 'an approved request has no approve or deny buttons',
    (await PAGE.button(page, 'Approve').count()) === 0 && (await PAGE.button(page, 'Deny').count()) === 0);
  await PAGE.revokeReason(page).fill(REASONS.revoke);
  await screenshot(result, page, 'review-revoke-form');
  result.facts.revoked = await expectNotice(result, page, 'revoked', PAGE.button(page, 'Revoke'),
    `Request ${input.revoke} is now revoked`);
  await screenshot(result, page, 'review-revoked');
});
