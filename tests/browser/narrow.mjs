// At a phone's width (390 px), a request whose justification is one
// 300-character word does not make any page scroll sideways: the list, the
// request's own page and the audit view; nor is any text squeezed into a
// column a few letters wide.
//
// Input: {base, screenshots, token, user, id (the long request), justification, width}
// Facts: {list, detail, audit: {innerWidth, scrollWidth, culprits, squeezed}}

import {
  PAGE, check, follow, horizontalOverflow, input, openBrowser, openRequest, scenario, screenshot, signIn,
  squeezedText,
} from './lib.mjs';

await scenario('narrow', async (result) => {
  const page = await openBrowser(result, { width: input.width, height: 844 });
  await signIn(result, page, input.token, input.user);
  check(result, 'the long request is listed', (await PAGE.requestLink(page, input.id).count()) === 1);
  await screenshot(result, page, 'narrow-list');
  result.facts.list = { ...(await horizontalOverflow(page)), squeezed: await squeezedText(page) };

  await openRequest(result, page, input.id);
  const justification = await PAGE.requestField(page, 'Justification').innerText();
  check(result, 'its justification is shown whole', justification.replace(/\s/g, '').includes(input.justification));
  await screenshot(result, page, 'narrow-detail');
  result.facts.detail = { ...(await horizontalOverflow(page)), squeezed: await squeezedText(page) };

  await follow(page, PAGE.navLink(page, 'Audit'));
  await PAGE.auditHeading(page).waitFor();
  await screenshot(result, page, 'narrow-audit');
  result.facts.audit = { ...(await horizontalOverflow(page)), squeezed: await squeezedText(page) };

  // All measured before any is judged, so a failure reports all three.
  for (const [name, measured] of [['the list', result.facts.list], ["the request's page", result.facts.detail],
    ['the audit view', result.facts.audit]]) {
    check(result, `${name} has no horizontal scroll`, measured.scrollWidth <= measured.innerWidth, measured);
    check(result, `${name} has no text squeezed into a sliver`, measured.squeezed.length === 0, measured.squeezed);
  }
});
