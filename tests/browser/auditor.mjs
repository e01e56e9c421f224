// An auditor (app role Auditor) reads everything and decides nothing: every
// pending request on the list, a request's page without approve or deny
// buttons, and the audit view (the policy set in force, the request history
// with who decided, risk alerts), whose history they download as CSV.
//
// Input: {base, screenshots, token, user, pending: [ids], all: [ids],
//         denied: {id, by}, approved: {id, by}}
// Facts: {listed, history, denied_row, approved_row, csv: {ids, header, filename}}

import fs from 'node:fs';

import {
  PAGE, check, follow, input, listedIds, openBrowser, openRequest, parseCsv, sameIds, scenario, screenshot, signIn,
} from './lib.mjs';

// ---------------------------------------------------------------- selectors
const SEL = {
  readOnly: (page) => page.getByText('Auditor: you see every request, read only.', { exact: true }),
  decidedCell: (row) => row.getByRole('cell').filter({ hasText: / by / }),
};

await scenario('auditor', async (result) => {
  const page = await openBrowser(result);
  await signIn(result, page, input.token, input.user);
  check(result, 'told they read only', (await SEL.readOnly(page).count()) === 1);
  result.facts.listed = await listedIds(page);
  check(result, 'every pending request is listed', sameIds(result.facts.listed, input.pending), result.facts.listed);
  check(result, 'they may filter by requester', (await PAGE.requesterFilter(page).count()) === 1);
  await screenshot(result, page, 'auditor-list');

  // Each pending request: readable, its audit records, no decision.
  for (const id of input.pending) {
    await openRequest(result, page, id);
    check(result, `request ${id}: no approve or deny buttons`, (await PAGE.anyDecisionButton(page).count()) === 0
      && (await PAGE.decide(page).count()) === 0 && (await PAGE.decisionReason(page).count()) === 0);
    check(result, `request ${id}: its audit records`, (await PAGE.auditRecords(page).count()) >= 1);
    await follow(page, PAGE.navLink(page, 'Requests'));
  }
  await openRequest(result, page, input.pending[0]);
  await screenshot(result, page, 'auditor-request');

  // The audit view.
  await follow(page, PAGE.navLink(page, 'Audit'));
  await PAGE.auditHeading(page).waitFor();
  for (const [name, region] of [['policy', PAGE.policyInForce], ['history', PAGE.history], ['risk alerts', PAGE.riskAlerts]]) {
    check(result, `the ${name} section`, (await region(page).count()) === 1);
  }
  const policy = await PAGE.policyInForce(page).innerText();
  check(result, 'the policy set in force names its hash and files', policy.includes('Hash') && policy.includes('.cedar'), policy);
  // The history's rows are the only request links on the audit view.
  result.facts.history = await listedIds(page);
  check(result, 'the history has every request', sameIds(result.facts.history, input.all), result.facts.history);
  for (const [fact, decision, word] of [['denied_row', input.denied, 'denied'], ['approved_row', input.approved, 'approved']]) {
    const row = PAGE.requestRow(page, decision.id);
    result.facts[fact] = await SEL.decidedCell(row).innerText();
    check(result, `the history says request ${decision.id} was ${word} by ${decision.by}`,
      result.facts[fact].includes(`${word} by ${decision.by}`), result.facts[fact]);
  }
  await screenshot(result, page, 'auditor-audit');

  // Download the history as CSV, as a person would: click its link.
  const [download] = await Promise.all([
    page.waitForEvent('download'),
    PAGE.downloadLink(PAGE.history(page), 'CSV').click(),
  ]);
  const text = fs.readFileSync(await download.path(), 'utf8');
  const [header, ...rows] = parseCsv(text);
  const idColumn = header.indexOf('id');
  result.facts.csv = {
    filename: download.suggestedFilename(),
    header,
    ids: rows.map((row) => row[idColumn]),
  };
  check(result, 'the CSV has an id column', idColumn >= 0, header);
  check(result, 'the CSV has every request of the history', sameIds(result.facts.csv.ids, input.all), result.facts.csv);
  check(result, 'it is a .csv file', result.facts.csv.filename.endsWith('.csv'), result.facts.csv.filename);
});
