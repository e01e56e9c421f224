// A security manager answers an automatic response on the approvals page:
// the webhook's link (/approvals#INC-…) opens the page at the incident,
// which shows its rule, principal, findings, the triggering call with its
// record numbers and the actions taken; the suspended principal is listed.
// The manager acknowledges the incident with a note, closes it with
// another (typed with markup, shown as text), and lifts the suspension
// with a reason: each form's notice is shown, the incident's status and
// who acted with the note, and the suspension is gone. No console errors.
//
// Input: {base, screenshots, token, user, incident (id), title, principal
//         (name), seqs ([intent, outcome]), ack, close, lift (texts)}
// Facts: {url, status, calls, actions, suspension, acknowledged, closed,
//         after_lift, console_errors}

import { PAGE, check, expectNotice, input, openBrowser, scenario, screenshot, signIn } from './lib.mjs';

// ---------------------------------------------------------------- selectors
const SEL = {
  /** The incident's section, named by its heading (its title). */
  incident: (page) => page.getByRole('region', { name: input.title, exact: true }),
  /** A row of a section's table of fields ("Status", "Rule", ...). */
  field: (scope, page, label) => scope.getByRole('row')
    .filter({ has: page.getByRole('rowheader', { name: label, exact: true }) }),
  /** A table named by its caption ("Triggering calls", "Actions taken"). */
  table: (scope, caption) => scope.getByRole('table', { name: caption, exact: true }),
  suspensions: (page) => page.getByRole('region', { name: 'Suspended principals', exact: true }),
  suspension: (page) => page.getByRole('region', { name: `Suspended: ${input.principal}`, exact: true }),
  ackNote: (scope) => scope.getByLabel('Note to acknowledge (required, recorded in the audit log)'),
  closeNote: (scope) => scope.getByLabel('Note to close (required, recorded in the audit log)'),
  liftReason: (scope) => scope.getByLabel('Reason to lift the suspension (required, recorded in the audit log)'),
};

await scenario('responses', async (result) => {
  result.facts.console_errors = [];
  const page = await openBrowser(result);
  page.on('console', (message) => {
    if (message.type() === 'error') result.facts.console_errors.push(message.text());
  });
  page.on('pageerror', (error) => result.facts.console_errors.push(String(error)));
  await signIn(result, page, input.token, input.user);

  // The webhook's link leads to the page, at the incident.
  await page.goto(`${input.base}/approvals#${input.incident}`);
  result.facts.url = page.url();
  const url = new URL(page.url());
  check(result, 'the link opens the approvals page at the incident',
    url.pathname === '/admin/' && url.hash === `#${input.incident}`, page.url());
  const incident = SEL.incident(page);
  await incident.waitFor();
  result.facts.status = await SEL.field(incident, page, 'Status').innerText();
  check(result, 'the incident is open', /Status\s+open/.test(result.facts.status), result.facts.status);
  check(result, 'its id is shown',
    (await SEL.field(incident, page, 'Incident').innerText()).includes(input.incident));
  check(result, 'its rule is shown',
    (await SEL.field(incident, page, 'Rule').innerText()).includes('mass-deletion'));
  check(result, 'its principal is shown',
    (await SEL.field(incident, page, 'Principal').innerText()).includes(input.principal));
  check(result, 'its findings are shown',
    (await SEL.field(incident, page, 'Findings').innerText()).includes('deletes in the last hour'));
  result.facts.calls = await SEL.table(incident, 'Triggering calls').innerText();
  const records = input.seqs.map((seq) => `#${seq}`).join(', ');
  check(result, "the triggering call's records are named", result.facts.calls.includes(records),
    { expected: records, calls: result.facts.calls });
  result.facts.actions = await SEL.table(incident, 'Actions taken').innerText();
  check(result, 'the suspension is among the actions taken',
    /suspend\s+enforce\s+done/.test(result.facts.actions), result.facts.actions);
  result.facts.suspension = await SEL.suspension(page).innerText();
  check(result, 'the suspended principal is listed', result.facts.suspension.includes(input.incident),
    result.facts.suspension);
  await incident.scrollIntoViewIfNeeded();
  await screenshot(result, page, 'responses-incident');

  // Acknowledge, with a note.
  await SEL.ackNote(incident).fill(input.ack);
  await expectNotice(result, page, 'the incident is acknowledged', PAGE.button(incident, 'Acknowledge'),
    `Incident ${input.incident} is acknowledged.`);
  const acknowledged = SEL.incident(page);
  result.facts.acknowledged = await SEL.field(acknowledged, page, 'Status').innerText();
  check(result, 'acknowledged, by whom, with the note',
    result.facts.acknowledged.includes('acknowledged') && result.facts.acknowledged.includes(`Acknowledged by ${input.user}`)
      && result.facts.acknowledged.includes(input.ack), result.facts.acknowledged);
  check(result, 'no second acknowledgement form', (await PAGE.button(acknowledged, 'Acknowledge').count()) === 0);

  // Close, with a note typed with markup.
  await SEL.closeNote(acknowledged).fill(input.close);
  await expectNotice(result, page, 'the incident is closed', PAGE.button(acknowledged, 'Close incident'),
    `Incident ${input.incident} is closed.`);
  const closed = SEL.incident(page);
  result.facts.closed = await SEL.field(closed, page, 'Status').innerText();
  check(result, 'closed, by whom, with the note as typed',
    result.facts.closed.includes(`Closed by ${input.user}`) && result.facts.closed.includes(input.close),
    result.facts.closed);
  check(result, 'a closed incident has no forms', (await closed.getByRole('button').count()) === 0);
  await closed.scrollIntoViewIfNeeded();
  await screenshot(result, page, 'responses-closed');

  // Lift the suspension, with a reason.
  await SEL.liftReason(SEL.suspension(page)).fill(input.lift);
  await expectNotice(result, page, 'the suspension is lifted', PAGE.button(SEL.suspension(page), 'Lift suspension'),
    `The suspension of ${input.principal} is lifted`);
  check(result, 'back at the suspensions', new URL(page.url()).hash === '#suspensions', page.url());
  result.facts.after_lift = await SEL.suspensions(page).innerText();
  check(result, 'nobody is suspended any more',
    result.facts.after_lift.includes('No principal is suspended.') && (await SEL.suspension(page).count()) === 0,
    result.facts.after_lift);
  await SEL.suspensions(page).scrollIntoViewIfNeeded();
  await screenshot(result, page, 'responses-lifted');

  check(result, 'no console errors', result.facts.console_errors.length === 0, result.facts.console_errors);
});
