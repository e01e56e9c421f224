// A reviewer decides an access review item on the page: the campaign is
// listed under "Access reviews"; its page shows the principal's role with
// the audit log's evidence and a suggestion; Remove, with a reason, is
// recorded and shown as the item's decision, and the item's form is gone
// for this reviewer. At a phone's width the campaign's page does not scroll
// sideways.
//
// Input: {base, screenshots, token, user, campaign (id), item (id), who
//         (the item's principal), role, reason, width}
// Facts: {suggestion, notice, decision, after, narrow: {innerWidth, scrollWidth, culprits}}

import {
  PAGE, check, expectNotice, follow, horizontalOverflow, input, openBrowser, scenario, screenshot, signIn,
} from './lib.mjs';

// ---------------------------------------------------------------- selectors
const SEL = {
  heading: (page, name) => page.getByRole('heading', { name, exact: true, level: 1 }),
  campaignLink: (page, id) => page.getByRole('link').and(page.locator(`[href="/admin/campaigns/${id}"]`)),
  /** An item's section, named by its heading "#3 name · role". */
  item: (page) => page.getByRole('region', { name: `#${input.item} ${input.who} · ${input.role}`, exact: true }),
  /** A row of an item's evidence ("Suggestion", "Decision", ...). */
  field: (scope, page, label) => scope.getByRole('row')
    .filter({ has: page.getByRole('rowheader', { name: label, exact: true }) }),
  reason: (scope) => scope.getByLabel('Reason (required, recorded in the audit log)'),
};

await scenario('campaign', async (result) => {
  const page = await openBrowser(result);
  await signIn(result, page, input.token, input.user);

  // The campaigns, then the one to review.
  await follow(page, PAGE.navLink(page, 'Access reviews'));
  await SEL.heading(page, 'Access reviews').waitFor();
  check(result, 'the campaign is listed', (await SEL.campaignLink(page, input.campaign).count()) === 1);
  await follow(page, SEL.campaignLink(page, input.campaign));
  const item = SEL.item(page);
  check(result, "the item's section is shown", (await item.count()) === 1, page.url());
  result.facts.suggestion = await SEL.field(item, page, 'Suggestion').innerText();
  check(result, 'the evidence suggests something, with why', /Suggestion\s+(keep|remove): \S/.test(result.facts.suggestion),
    result.facts.suggestion);
  check(result, 'the operations used are listed',
    (await SEL.field(item, page, 'Operations used').innerText()).includes('Microsoft.'));

  // Remove, with a reason.
  await SEL.reason(item).fill(input.reason);
  await item.scrollIntoViewIfNeeded();
  await screenshot(result, page, 'campaign-item');
  result.facts.notice = await expectNotice(result, page, 'the removal is recorded',
    PAGE.button(item, 'Remove'), `Item #${input.item}: remove ${input.who} ${input.role} is recorded.`);
  check(result, "back on the campaign's page", new URL(page.url()).pathname === `/admin/campaigns/${input.campaign}`,
    page.url());
  const decided = SEL.item(page);
  result.facts.decision = await SEL.field(decided, page, 'Decision').innerText();
  check(result, 'the decision names the reviewer and the reason',
    result.facts.decision.includes(`Removed by ${input.user}`) && result.facts.decision.includes(input.reason),
    result.facts.decision);
  result.facts.after = await decided.getByText('You decided this item').count();
  check(result, 'no second form for the same reviewer',
    result.facts.after === 1 && (await PAGE.button(decided, 'Remove').count()) === 0);
  await decided.scrollIntoViewIfNeeded();
  await screenshot(result, page, 'campaign-decided');

  // On a phone.
  const phone = await openBrowser(result, { width: input.width, height: 844 });
  await signIn(result, phone, input.token, input.user);
  await phone.goto(`${input.base}/admin/campaigns/${input.campaign}`);
  await SEL.item(phone).waitFor();
  await screenshot(result, phone, 'campaign-narrow');
  result.facts.narrow = await horizontalOverflow(phone);
  check(result, "the campaign's page has no horizontal scroll at a phone's width",
    result.facts.narrow.scrollWidth <= result.facts.narrow.innerWidth, result.facts.narrow);
});
