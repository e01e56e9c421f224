// The compliance report (an HTML file `warden report compliance` wrote)
// and the overview page (/admin/overview) in Chromium: both render their
// charts as inline SVG, log no console error, fetch nothing beyond the
// page itself, and the report prints to PDF.
//
// Input: {base, screenshots, token, user, report_file, pdf_file}
// Facts: {report_figures, report_controls, pdf_bytes, overview_figures,
//         requests: [urls the pages asked for], console_errors}

import fs from 'node:fs';
import { PAGE, check, input, openBrowser, screenshot, scenario, signIn } from './lib.mjs';

const SEL = {
  reportTitle: (page) => page.getByRole('heading', { level: 1 }).filter({ hasText: 'compliance report' }),
  controlRows: (page) => page.getByRole('table').first().getByRole('row'),
  figures: (page) => page.locator('figure:has(svg)'),
  overviewHeading: (page) => page.getByRole('heading', { name: 'Overview', exact: true }),
};

/** Every request a page makes, and every console error it logs. */
function watch(page, result) {
  page.on('request', (request) => result.facts.requests.push(request.url()));
  page.on('console', (message) => {
    if (message.type() === 'error') result.facts.console_errors.push(message.text());
  });
  page.on('pageerror', (error) => result.facts.console_errors.push(String(error)));
}

await scenario('report', async (result) => {
  result.facts.requests = [];
  result.facts.console_errors = [];

  // The report, opened from its file as an auditor would.
  const page = await openBrowser(result, { width: 1100, height: 900 });
  watch(page, result);
  const reportUrl = `file://${input.report_file}`;
  await page.goto(reportUrl);
  await SEL.reportTitle(page).waitFor();
  result.facts.report_figures = await SEL.figures(page).count();
  check(result, 'the report draws its five charts as inline SVG', result.facts.report_figures === 5, result.facts.report_figures);
  result.facts.report_controls = (await SEL.controlRows(page).count()) - 1;
  check(result, 'the summary lists the four controls', result.facts.report_controls === 4, result.facts.report_controls);
  await screenshot(result, page, 'compliance-report');
  await page.emulateMedia({ media: 'print' });
  const pdf = await page.pdf({ path: input.pdf_file, format: 'A4', printBackground: true });
  result.facts.pdf_bytes = pdf.length;
  check(result, 'it prints to PDF', pdf.length > 10_000 && fs.readFileSync(input.pdf_file).subarray(0, 5).toString() === '%PDF-', pdf.length);
  const fromReport = result.facts.requests.filter((url) => url !== reportUrl);
  check(result, 'the report fetches nothing', fromReport.length === 0, fromReport);

  // The overview, signed in as a security manager.
  const admin = await openBrowser(result);
  watch(admin, result);
  await admin.goto(`${input.base}/admin/`);
  await signIn(result, admin, input.token, input.user);
  await PAGE.navLink(admin, 'Overview').click();
  await SEL.overviewHeading(admin).waitFor();
  result.facts.overview_figures = await SEL.figures(admin).count();
  check(result, 'the overview draws the same five charts', result.facts.overview_figures === 5, result.facts.overview_figures);
  check(result, 'the overview counts the calls', (await admin.getByRole('row', { name: /^Calls \d+$/ }).count()) === 1);
  await screenshot(result, admin, 'admin-overview');
  const foreign = result.facts.requests.filter((url) => url !== reportUrl && !url.startsWith(`${input.base}/`));
  check(result, 'nothing is fetched from anywhere else', foreign.length === 0, foreign);
  check(result, 'no console errors', result.facts.console_errors.length === 0, result.facts.console_errors);
});
