// Someone who may not review (a reader, an auditor) signs in: no approve,
// deny or revoke forms anywhere, exactly the pending requests the admin API
// lists for them (tests/browser.rs asks it), their own with a cancel form,
// and a request they may not see is not shown, not even at its address.
//
// Input: {base, screenshots, token, user, name, visible: [ids], own: [ids],
//         hidden: [ids], only_own: whether the page should say they see
//         only their own requests}
// Facts: {pending_heading, other_status}

import { PAGE, check, input, openBrowser, scenario, screenshot, signIn } from './lib.mjs';

// ---------------------------------------------------------------- selectors
const SEL = {
  cannotReview: (page) => page.getByText('You cannot review requests'),
  onlyOwn: (page) => page.getByText('You see only your own requests.'),
  cancelReason: (card) => PAGE.reason(card, 'Reason to cancel your request (required)'),
  anyReviewButton: (page) => page.getByRole('button', { name: /^(Approve|Deny|Revoke)$/ }),
  detailHeading: (page, id) => page.getByRole('heading', { name: `Request ${id}`, exact: true }),
};

await scenario(`own-requests-${input.name}`, async (result) => {
  const page = await openBrowser(result);
  await signIn(result, page, input.token, input.user);
  check(result, 'told they cannot review', (await SEL.cannotReview(page).count()) === 1);
  if (input.only_own) {
    check(result, 'told they see only their own requests', (await SEL.onlyOwn(page).count()) === 1);
  }
  result.facts.pending_heading = await PAGE.pendingHeading(page).innerText();
  check(result, `exactly ${input.visible.length} request(s) are pending for them`,
    result.facts.pending_heading === `Pending (${input.visible.length})`, result.facts.pending_heading);
  for (const id of input.visible) {
    check(result, `request ${id} is listed`, (await PAGE.pendingRequest(page, id).count()) === 1);
  }
  for (const id of input.own) {
    const card = PAGE.pendingRequest(page, id);
    check(result, `their request ${id} can be cancelled`, (await SEL.cancelReason(card).count()) === 1
      && (await PAGE.button(card, 'Cancel request').count()) === 1);
  }
  check(result, 'no approve, deny or revoke buttons', (await SEL.anyReviewButton(page).count()) === 0);
  const text = await page.locator('body').innerText();
  for (const id of input.hidden) {
    check(result, `request ${id} is not shown`, !text.includes(id));
  }
  await screenshot(result, page, `own-requests-${input.name}`);

  // Not at its address either: the page answers 404 and shows nothing of it.
  const other = input.hidden[0];
  if (other !== undefined) {
    const response = await page.goto(`${input.base}/admin/requests/${other}`);
    result.facts.other_status = response?.status();
    check(result, `request ${other}'s page answers 404`, response?.status() === 404, response?.status());
    await PAGE.alert(page).waitFor();
    check(result, 'the 404 page does not show it', (await SEL.detailHeading(page, other).count()) === 0
      && (await PAGE.pendingRequest(page, other).count()) === 0);
  }
});
