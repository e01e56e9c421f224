// A critical request (a role assignment) needs two security managers: the
// first opens it from the list, sees what it would do (the role by name,
// the assignee, the scope) and approves; the request stays pending, 1 of 2.
// The second approves it. tests/browser.rs runs this once per approver
// (step "first", then "second") and checks the server's state in between.
//
// Input: {base, screenshots, token, user, id, step: "first" | "second",
//         tool, role (its name), role_id (its GUID), assignee, scope}
// Facts: {facts: {label: value}, approve_means, notice, after}

import {
  PAGE, check, expectNotice, input, openBrowser, openRequest, scenario, screenshot, signIn,
} from './lib.mjs';

// ---------------------------------------------------------------- selectors
const SEL = {
  approvalsCell: (row, text) => row.getByRole('cell', { name: text, exact: true }),
  critical: (page) => page.getByText('(critical operation: two-person rule)', { exact: true }),
  waiting: (page) => page.getByText('You have reviewed this request; it waits for another reviewer.', { exact: true }),
  /** A fact's cell: its value, then a note on the next line. */
  factCell: (row) => row.getByRole('cell'),
};

const first = input.step === 'first';

await scenario(`critical-${input.step}`, async (result) => {
  const page = await openBrowser(result);
  await signIn(result, page, input.token, input.user);
  const before = first ? '0 of 2' : '1 of 2';
  const row = PAGE.requestRow(page, input.id);
  check(result, 'the critical request is listed', (await row.count()) === 1);
  check(result, 'its row is marked critical', (await row.getByText('critical', { exact: true }).count()) === 1);
  check(result, `its row shows ${before} approvals`, (await SEL.approvalsCell(row, before).count()) === 1);

  // What it would do, decoded from the call's arguments: the role by name.
  await openRequest(result, page, input.id);
  check(result, 'it is marked critical', (await SEL.critical(page).count()) === 1);
  result.facts.facts = {};
  for (const label of ['Role', 'Assignee', 'Scope']) {
    const cell = await SEL.factCell(PAGE.fact(page, label)).innerText();
    result.facts.facts[label] = cell.split('\n')[0].trim();
  }
  check(result, `the role is shown by name (${input.role})`, result.facts.facts.Role === input.role, result.facts.facts);
  const roleNote = await SEL.factCell(PAGE.fact(page, 'Role')).innerText();
  check(result, 'its GUID only as a note', roleNote.includes(`built-in role ${input.role_id}`), roleNote);
  check(result, 'the assignee', result.facts.facts.Assignee === input.assignee, result.facts.facts);
  check(result, 'the scope', result.facts.facts.Scope === input.scope, result.facts.facts);

  result.facts.approve_means = await PAGE.approveMeans(page).innerText();
  check(result, 'what approving does',
    first
      ? result.facts.approve_means.startsWith('Approve: your approval is 1 of 2; another reviewer must approve too.')
      : result.facts.approve_means.startsWith(`Approve: lets this one call of ${input.tool} run once, within`),
    result.facts.approve_means);
  await screenshot(result, page, `critical-${input.step}-before`);

  await PAGE.decisionReason(page).fill(first ? 'Access review AR-7: first approver' : 'Access review AR-7: second approver');
  if (first) {
    result.facts.notice = await expectNotice(result, page, 'the first approval is recorded', PAGE.button(page, 'Approve'),
      `Your approval of request ${input.id} is recorded: 1 of 2 approvals so far`);
    const still = PAGE.requestRow(page, input.id);
    check(result, 'the request is still pending', (await still.count()) === 1);
    check(result, 'its row shows 1 of 2', (await SEL.approvalsCell(still, '1 of 2').count()) === 1);
    await screenshot(result, page, 'critical-first-after');
    await openRequest(result, page, input.id);
    check(result, 'the first approver has no decision form left', (await SEL.waiting(page).count()) === 1
      && (await PAGE.anyDecisionButton(page).count()) === 0);
    result.facts.after = 'pending, 1 of 2';
    await screenshot(result, page, 'critical-first-waiting');
  } else {
    result.facts.notice = await expectNotice(result, page, 'the second approval approves it', PAGE.button(page, 'Approve'),
      `Request ${input.id} is approved`);
    check(result, 'the request left the pending list', (await PAGE.requestLink(page, input.id).count()) === 0);
    result.facts.after = 'approved';
    await screenshot(result, page, 'critical-second-after');
  }
});
