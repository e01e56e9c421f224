// A critical request (a role assignment) needs two security managers: the
// first approval is recorded and the request stays pending; the second
// approves it. tests/browser.rs runs this once per approver (step "first",
// then "second") and checks the server's state in between.
//
// Input: {base, screenshots, token, user, id, step: "first" | "second"}
// Facts: {before, notice, after}

import { PAGE, check, expectNotice, input, openBrowser, scenario, screenshot, signIn } from './lib.mjs';

// ---------------------------------------------------------------- selectors
const SEL = {
  reviewReason: (card) => PAGE.reason(card, 'Reason for your decision (required)'),
  approvals: (card, text) => card.getByRole('row', { name: /^Approvals/ }).filter({ hasText: text }),
  critical: (card) => card.getByText('(critical operation)'),
  waiting: (card) => card.getByText('You have reviewed this request; it waits for another reviewer.'),
};

const first = input.step === 'first';

await scenario(`critical-${input.step}`, async (result) => {
  const page = await openBrowser(result);
  await signIn(result, page, input.token, input.user);
  const card = PAGE.pendingRequest(page, input.id);
  check(result, 'the critical request is pending', (await card.count()) === 1);
  check(result, 'it is marked critical', (await SEL.critical(card).count()) === 1);
  const before = first ? '0 of 2 required' : '1 of 2 required';
  check(result, `it shows ${before}`, (await SEL.approvals(card, before).count()) === 1);
  result.facts.before = before;
  await screenshot(result, page, `critical-${input.step}-before`);

  await SEL.reviewReason(card).fill(first ? 'Access review AR-7: first approver' : 'Access review AR-7: second approver');
  await PAGE.button(card, 'Approve').click();
  if (first) {
    result.facts.notice = await expectNotice(
      result, page, 'the first approval is recorded', `Your approval of request ${input.id} is recorded: 1 of 2 approvals so far`);
    const still = PAGE.pendingRequest(page, input.id);
    check(result, 'the request is still pending', (await still.count()) === 1);
    check(result, 'it shows 1 of 2', (await SEL.approvals(still, '1 of 2 required').count()) === 1);
    check(result, 'the first approver has no form left', (await SEL.waiting(still).count()) === 1
      && (await PAGE.button(still, 'Approve').count()) === 0);
    result.facts.after = 'pending, 1 of 2';
  } else {
    result.facts.notice = await expectNotice(result, page, 'the second approval approves it', `Request ${input.id} is approved`);
    check(result, 'the request left the pending list', (await PAGE.pendingRequest(page, input.id).count()) === 0);
    result.facts.after = 'approved';
  }
  await screenshot(result, page, `critical-${input.step}-after`);
});
