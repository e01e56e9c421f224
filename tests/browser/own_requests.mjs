// Someone who may not review (a reader) signs in: they see only their own
// requests, whatever the filter and in the download, with a form to cancel
// a pending one and no approve, deny or revoke buttons anywhere; another
// person's request is not shown, not even at its address, and the audit
// view is not theirs.
//
// Input: {base, screenshots, token, user, pending (their pending request),
//         own: [all their request ids], hidden: [others' request ids]}
// Facts: {listed, any_status, csv (the ids downloaded), other_status,
//         audit_status, cancelled}

import {
  PAGE, check, expectNotice, filterList, input, listedIds, openBrowser, openRequest, parseCsv, sameIds, scenario,
  screenshot, signIn,
} from './lib.mjs';

// ---------------------------------------------------------------- selectors
const SEL = {
  cannotReview: (page) => page.getByText('You cannot review requests', { exact: true }),
  onlyOwn: (page) => page.getByText('You see only your own requests.'),
  refusedHeading: (page) => page.getByRole('heading', { name: 'Refused', exact: true }),
};

await scenario('own-requests-reader', async (result) => {
  const page = await openBrowser(result);
  await signIn(result, page, input.token, input.user);
  check(result, 'told they cannot review', (await SEL.cannotReview(page).count()) === 1);
  check(result, 'told they see only their own requests', (await SEL.onlyOwn(page).count()) === 1);
  check(result, 'no Audit section', (await PAGE.navLink(page, 'Audit').count()) === 0);
  check(result, 'no requester filter', (await PAGE.requesterFilter(page).count()) === 0);

  result.facts.listed = await listedIds(page);
  check(result, 'their pending request, only it', sameIds(result.facts.listed, [input.pending]), result.facts.listed);
  result.facts.any_status = await filterList(page, { status: 'any' });
  check(result, 'any status: all their requests, nobody else\'s', sameIds(result.facts.any_status, input.own),
    result.facts.any_status);
  check(result, 'no approve, deny or revoke buttons', (await PAGE.anyDecisionButton(page).count()) === 0);
  await screenshot(result, page, 'own-requests-reader');

  // The download is the list as filtered (any status), still only theirs:
  // fetched with the browser's own session cookie.
  const href = await PAGE.downloadLink(page, 'CSV').getAttribute('href');
  const csv = await page.request.get(new URL(href, page.url()).toString());
  check(result, 'the CSV downloads', csv.status() === 200
    && csv.headers()['content-type']?.startsWith('text/csv'), { status: csv.status(), headers: csv.headers() });
  const [header, ...rows] = parseCsv(await csv.text());
  result.facts.csv = rows.map((row) => row[header.indexOf('id')]);
  check(result, 'the CSV has all their requests, nobody else\'s', sameIds(result.facts.csv, input.own), result.facts.csv);

  // Their own pending request: a cancel form, no decision.
  await openRequest(result, page, input.pending);
  check(result, 'no approve, deny or revoke buttons on it', (await PAGE.anyDecisionButton(page).count()) === 0);
  check(result, 'no decision reason field', (await PAGE.decisionReason(page).count()) === 0);
  await PAGE.cancelReason(page).fill('Found the audit report elsewhere');
  await screenshot(result, page, 'own-requests-reader-cancel');
  result.facts.cancelled = await expectNotice(result, page, 'they cancel it', PAGE.button(page, 'Cancel request'),
    `Request ${input.pending} is now cancelled`);

  // Someone else's request: 404, and nothing of it.
  const other = input.hidden[0];
  const response = await page.goto(`${input.base}/admin/requests/${other}`);
  result.facts.other_status = response?.status();
  check(result, `request ${other}'s page answers 404`, response?.status() === 404, response?.status());
  const alert = await PAGE.alert(page).innerText();
  check(result, 'the 404 page says it is not found, nothing more', alert.includes(other)
    && (await PAGE.whatItWouldDo(page).count()) === 0 && (await PAGE.auditRecords(page).count()) === 0, alert);
  await screenshot(result, page, 'own-requests-reader-404');

  // The audit view is for auditors and security managers.
  const audit = await page.goto(`${input.base}/admin/audit`);
  result.facts.audit_status = audit?.status();
  check(result, 'the audit view answers 403', audit?.status() === 403, audit?.status());
  await SEL.refusedHeading(page).waitFor();
});
