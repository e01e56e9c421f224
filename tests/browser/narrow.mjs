// At a phone's width (390 px), a request whose justification is one
// 300-character word does not make the page scroll sideways: the overview
// (pending cards and the history table) and the request's own page.
//
// Input: {base, screenshots, token, user, id (the long request), width}
// Facts: {overview, detail: {innerWidth, scrollWidth, culprits}}

import { PAGE, check, horizontalOverflow, input, openBrowser, scenario, screenshot, signIn } from './lib.mjs';

// ---------------------------------------------------------------- selectors
const SEL = {
  justification: (card) => card.getByRole('row', { name: /^Justification/ }),
  detailHeading: (page, id) => page.getByRole('heading', { name: `Request ${id}`, exact: true }),
};

await scenario('narrow', async (result) => {
  const page = await openBrowser(result, { width: input.width, height: 844 });
  await signIn(result, page, input.token, input.user);
  const card = PAGE.pendingRequest(page, input.id);
  check(result, 'the long request is listed', (await card.count()) === 1);
  const justification = await SEL.justification(card).innerText();
  check(result, 'its justification is shown whole', justification.replace(/\s/g, '').includes(input.justification));

  await screenshot(result, page, 'narrow-overview');
  result.facts.overview = await horizontalOverflow(page);

  await page.goto(`${input.base}/admin/requests/${input.id}`);
  await SEL.detailHeading(page, input.id).waitFor();
  await screenshot(result, page, 'narrow-detail');
  result.facts.detail = await horizontalOverflow(page);
  // Both measured before either is judged, so a failure reports both.
  check(result, 'the overview has no horizontal scroll',
    result.facts.overview.scrollWidth <= result.facts.overview.innerWidth, result.facts.overview);
  check(result, "the request's page has no horizontal scroll",
    result.facts.detail.scrollWidth <= result.facts.detail.innerWidth, result.facts.detail);
});
