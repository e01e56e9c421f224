// Two security managers open the same pending request in their own
// browsers. The first denies it; the second, from a now stale tab, approves:
// the page brings them back to the request with an error naming who denied
// it and why, and nothing is approved.
//
// Input: {base, screenshots, token, user (the one who denies), id,
//         other: {token, user} (the one with the stale tab)}
// Facts: {denied, stale_error}

import { PAGE, check, expectAlert, expectNotice, input, openBrowser, openRequest, scenario, screenshot, signIn } from './lib.mjs';

const REASONS = {
  deny: 'Not during the change freeze',
  approve: 'Looks fine to me',
};

await scenario('stale', async (result) => {
  const first = await openBrowser(result);
  const second = await openBrowser(result);
  await signIn(result, first, input.token, input.user);
  await signIn(result, second, input.other.token, input.other.user);
  // Both open the request while it is pending.
  await openRequest(result, first, input.id);
  await openRequest(result, second, input.id);
  check(result, 'both see the decision form', (await PAGE.button(first, 'Deny').count()) === 1
    && (await PAGE.button(second, 'Approve').count()) === 1);

  await PAGE.decisionReason(first).fill(REASONS.deny);
  result.facts.denied = await expectNotice(result, first, 'the first denies it', PAGE.button(first, 'Deny'),
    `Request ${input.id} is now denied`);

  // The second tab still shows the form.
  await PAGE.decisionReason(second).fill(REASONS.approve);
  await screenshot(result, second, 'stale-tab-before');
  result.facts.stale_error = await expectAlert(result, second, "the stale tab's approval is refused",
    PAGE.button(second, 'Approve'), input.id,
    [`Could not approve request ${input.id}: it is already denied by ${input.user}`, REASONS.deny]);
  check(result, 'the request shows no decision form any more', (await PAGE.anyDecisionButton(second).count()) === 0);
  await screenshot(result, second, 'stale-tab-refused');
});
