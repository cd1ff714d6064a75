// End-to-end run of the admin SPA against a running `tollgate serve`, in Debian's Chromium.
// Environment: TOLLGATE_URL, ADMIN_EMAIL, ADMIN_PASSWORD, API_KEY (an admin key, for what the
// SaaS backend would do: record usage and ask for authorization), SCREENSHOTS (folder).
// Fails on any console error of the page.
import { mkdirSync } from 'node:fs';
import assert from 'node:assert/strict';
import { chromium } from 'playwright-core';
import { AdminApp, AccountPage, AccountsPage, ControlsPage, PlansPage, PricingPage } from './pages.mjs';

const baseUrl = process.env.TOLLGATE_URL ?? 'http://127.0.0.1:8765';
const email = process.env.ADMIN_EMAIL ?? 'owner@example.com';
const password = process.env.ADMIN_PASSWORD ?? '';
const apiKey = process.env.API_KEY ?? '';
const shots = process.env.SCREENSHOTS ?? new URL('./screenshots', import.meta.url).pathname;
const executablePath = process.env.CHROMIUM ?? '/usr/bin/chromium';
// Set when the server streams subscriptions: the header must then say "Live".
const expectLive = process.env.EXPECT_LIVE === '1';
mkdirSync(shots, { recursive: true });

async function api(query, variables = {}) {
  const response = await fetch(`${baseUrl}/graphql`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${apiKey}` },
    body: JSON.stringify({ query, variables }),
  });
  const body = await response.json();
  assert.ok(!body.errors, JSON.stringify(body.errors));
  return body.data;
}

let seq = 0;
async function recordUsage(account, model) {
  seq += 1;
  const data = await api(
    `mutation($events: [UsageEventInput!]!) {
      recordUsage(events: $events) { __typename ... on Recorded { credits } ... on UnknownModel { message } }
    }`,
    { events: [{ eventId: `e2e-${Date.now()}-${seq}`, accountExternalId: account, model, inputTokens: 1000, outputTokens: 500 }] },
  );
  assert.equal(data.recordUsage[0].__typename, 'Recorded', JSON.stringify(data.recordUsage[0]));
  return Number(data.recordUsage[0].credits);
}

const steps = [];
function step(name) {
  steps.push(name);
  console.log(`· ${name}`);
}

const browser = await chromium.launch({
  executablePath,
  headless: true,
  args: [
    '--headless',
    '--no-sandbox',
    '--disable-gpu',
    '--disable-quic',
    '--no-first-run',
    '--disable-background-networking',
    '--disable-component-update',
    '--disable-sync',
  ],
});
const consoleErrors = [];
try {
  const context = await browser.newContext({
    locale: 'en-US',
    timezoneId: 'Europe/Warsaw',
    viewport: { width: 1360, height: 900 },
  });
  const page = await context.newPage();
  page.setDefaultTimeout(15_000);
  page.on('console', (message) => {
    if (message.type() !== 'error') return;
    // Signed out, GET /auth/me answers 401 by contract; Chromium logs every 4xx response.
    if (message.location().url.endsWith('/auth/me') && message.text().includes('401')) return;
    consoleErrors.push(`${message.text()} (${message.location().url})`);
  });
  page.on('pageerror', (error) => consoleErrors.push(`uncaught: ${error.message}`));

  const app = new AdminApp(page, baseUrl, shots);
  const account = `e2e-${Date.now()}`;
  const model = 'e2e-gpt';

  step('sign in');
  await app.open('/admin/');
  await app.shot('01-login');
  await app.login(email, password);
  if (expectLive) await page.locator('.live-on').waitFor();

  step('price a model');
  await app.nav('Models & pricing');
  await new PricingPage(app).addModelPrice({ provider: 'openai', model, input: '2.50', output: '10' });
  await app.shot('03-pricing');

  step('create a plan and publish it');
  const planCode = `e2e-pro-${Date.now()}`;
  await app.nav('Plans & features');
  await new PlansPage(app).createAndPublish({ code: planCode, name: 'E2E Pro', monthly: '19.00', credits: 5000 });
  await app.shot('03b-plan');

  step('create an account and grant credits');
  await app.nav('Accounts');
  await new AccountsPage(app).create(account, 'Ada Lovelace');
  const accountPage = new AccountPage(app);
  await accountPage.grant(1000, 'welcome credits');
  await app.waitForText(accountPage.available, (t) => t === '1,000 credits', 'balance after the grant');
  await accountPage.deductTooMuch(5000);

  step('usage recorded through the API shows on the account page without a reload');
  const charged = await recordUsage(account, model);
  assert.ok(charged > 0);
  const left = `${(1000 - charged).toLocaleString('en-US')} credits`;
  await app.waitForText(accountPage.available, (t) => t === left, 'balance after usage');
  await page.getByTestId('usage-feed').getByRole('cell', { name: model }).first().waitFor();
  await app.shot('04-account');

  step('and on the overview');
  await app.nav('Overview');
  // Today's calls as the API counts them in the browser's calendar: once the overview shows at
  // least that many, it holds fresh figures rather than ones cached from an earlier visit.
  const [dayFrom, dayTo, tz] = await page.evaluate(() => {
    const now = new Date();
    const start = new Date(now.getFullYear(), now.getMonth(), now.getDate());
    const end = new Date(now.getFullYear(), now.getMonth(), now.getDate() + 1);
    return [start.toISOString(), end.toISOString(), Intl.DateTimeFormat().resolvedOptions().timeZone];
  });
  const today = await api(
    `query($from: DateTime!, $to: DateTime!, $tz: String!) {
      usageSummary(from: $from, to: $to, groupBy: [], timezone: $tz) { ... on UsageSummary { rows { calls } } }
    }`,
    { from: dayFrom, to: dayTo, tz },
  );
  const known = Number(today.usageSummary.rows[0]?.calls ?? 0);
  const calls = page.getByTestId('Today-calls');
  const shown = (t) => Number(t.replace(/,/g, ''));
  const before = shown(await app.waitForText(calls, (t) => shown(t) >= known, 'calls today on the overview'));
  await recordUsage(account, model);
  await app.waitForText(calls, (t) => shown(t) >= before + 1, 'calls today after usage');
  await page.getByRole('img', { name: 'Calls and tokens per refresh interval' }).waitFor();
  await app.shot('02-overview');

  step('the emergency stop denies authorization');
  await app.nav('Controls');
  const controls = new ControlsPage(app);
  await page.getByRole('switch').waitFor();
  // A previous run against the same server may have left the stop on.
  if ((await page.getByRole('switch').getAttribute('aria-checked')) === 'true') await controls.setGlobalStop(false);
  await controls.setGlobalStop(true, 'e2e drill');
  await app.shot('05-controls');
  const denied = await api(
    `mutation($input: AuthorizeUsageInput!) {
      authorizeUsage(input: $input) { __typename ... on Denied { reason message } }
    }`,
    { input: { accountExternalId: account, model, estimatedInputTokens: 100, maxOutputTokens: 100 } },
  );
  assert.equal(denied.authorizeUsage.__typename, 'Denied');
  assert.equal(denied.authorizeUsage.reason, 'EMERGENCY_STOP');
  await controls.setGlobalStop(false);

  step('limits and the pricing policy are edited in forms');
  await app.nav('Accounts');
  await page.getByRole('link', { name: account }).click();
  await page.getByRole('button', { name: 'Edit limits' }).click();
  const limits = page.getByRole('form', { name: 'Edit limits' });
  await limits.getByLabel('Calls per day').fill('-3');
  await limits.getByRole('button', { name: 'Save limits' }).click();
  await limits.getByText('A whole number above zero, or empty for no limit.').waitFor();
  await limits.getByLabel('Calls per day').fill('100');
  await limits.getByLabel('Calendar time zone').fill('Mars/Olympus');
  await limits.getByRole('button', { name: 'Save limits' }).click();
  // The API's typed ValidationFailed lands next to its field.
  await limits.getByRole('alert').filter({ hasText: 'IANA' }).waitFor();
  await limits.getByLabel('Calendar time zone').fill('Europe/Warsaw');
  await limits.getByRole('button', { name: 'Save limits' }).click();
  await page.getByRole('cell', { name: 'Calls per day' }).waitFor();
  await app.nav('Models & pricing');
  await page.getByText('Edit the global default policy').click();
  const policy = page.getByRole('form', { name: 'Pricing policy' });
  await policy.getByLabel('Kind').selectOption('MULTIPLIER');
  await policy.getByLabel('Multiplier').fill('1.5');
  await policy.getByRole('button', { name: 'Save policy' }).click();
  await page.getByText('Policy saved.').waitFor();
  await page.getByText('× 1.5').waitFor();
  await app.shot('03-pricing');

  step('subscribe the account to the plan');
  await app.nav('Subscriptions');
  const subscribe = page.getByRole('form', { name: 'Subscribe an account' });
  await subscribe.getByLabel('Account (external id)').fill(account);
  await subscribe.getByLabel('Plan').selectOption(planCode);
  await subscribe.getByRole('button', { name: 'Subscribe' }).click();
  await app.waitForText(page.getByTestId('subscription-status'), (t) => t === 'Active' || t === 'Trial', 'subscription status');
  await app.shot('03c-subscription');

  step('alerts, audit log, keys and providers');
  await app.nav('Alerts');
  await page.getByText('Emergency stop', { exact: true }).first().waitFor();
  await app.shot('06-alerts');
  await app.nav('Audit log');
  await page.getByRole('cell', { name: 'setEmergencyStop' }).first().waitFor();
  await app.shot('07-audit');
  await app.nav('Admin keys');
  await app.shot('08-keys');
  await app.nav('Usage');
  await page.getByRole('cell', { name: model }).first().waitFor();
  await app.shot('12-usage');
  await app.nav('Accounts');
  await page.getByRole('link', { name: account }).waitFor();
  await app.shot('13-accounts');
  await app.nav('Subscriptions');
  await page.getByRole('link', { name: account }).waitFor();
  await app.shot('14-subscriptions');
  await app.nav('Providers');
  await app.shot('09-providers');

  step('an owner adds an analyst');
  const analyst = { email: `analyst-${Date.now()}@tollgate.test`, password: 'analyst-password-1' };
  await app.nav('People');
  const people = page.getByRole('form', { name: 'New person' });
  await people.getByLabel('Email').fill(analyst.email);
  await people.getByLabel('Initial password').fill('short');
  await people.getByRole('button', { name: 'Add person' }).click();
  await people.getByText('At least 12 characters.').waitFor();
  await people.getByLabel('Initial password').fill(analyst.password);
  await people.getByRole('button', { name: 'Add person' }).click();
  await page.getByRole('cell', { name: analyst.email }).waitFor();
  await app.shot('10-people');

  step('sign out');
  await page.getByRole('button', { name: 'Sign out' }).click();
  await page.getByText('You are signed out.').waitFor();

  step('the analyst sees everything and can change nothing');
  await app.login(analyst.email, analyst.password);
  const mainNav = page.getByRole('navigation', { name: 'Main' });
  assert.equal(await mainNav.getByRole('link', { name: 'People' }).count(), 0);
  await app.nav('Accounts');
  await page.getByRole('link', { name: account }).click();
  await page.getByTestId('balance-available').waitFor();
  await page.getByTestId('usage-feed').waitFor();
  for (const name of ['Grant', 'Deduct', 'Refund', 'Transfer', 'Boost']) {
    assert.equal(await page.getByRole('tab', { name }).count(), 0, `${name} tab shown to an analyst`);
  }
  assert.equal(await page.getByRole('button', { name: 'Edit limits' }).count(), 0);
  assert.equal(await page.getByRole('button', { name: 'Stop this account' }).count(), 0);
  await app.shot('11-analyst-account');
  await app.nav('Controls');
  assert.ok(await page.getByRole('switch').isDisabled(), 'the emergency switch is disabled for analysts');
  await app.nav('Models & pricing');
  await page.getByRole('heading', { name: 'Model price catalog' }).waitFor();
  assert.equal(await page.getByRole('button', { name: 'Add a model price' }).count(), 0);
  await app.nav('Plans & features');
  await page.locator(`a[href$="/plans/${planCode}"]`).click();
  await page.getByRole('heading', { name: 'Version 1' }).waitFor();
  assert.equal(await page.getByRole('button', { name: /New draft|Archive plan/ }).count(), 0);
  await app.nav('Subscriptions');
  assert.equal(await page.getByRole('form', { name: 'Subscribe an account' }).count(), 0);
  await page.getByRole('button', { name: 'Sign out' }).click();
  await page.getByText('You are signed out.').waitFor();
} catch (error) {
  try {
    const pages = browser.contexts().flatMap((c) => c.pages());
    if (pages[0]) await pages[0].screenshot({ path: `${shots}/failure.png`, fullPage: true });
  } catch {
    // the failure itself is what matters
  }
  console.error(`FAILED after: ${steps.join(' → ')}`);
  if (consoleErrors.length) console.error(`console errors:\n${consoleErrors.join('\n')}`);
  throw error;
} finally {
  await browser.close();
}

if (consoleErrors.length) {
  console.error(`console errors:\n${consoleErrors.join('\n')}`);
  process.exit(1);
}
console.log(`ok: ${steps.length} steps, screenshots in ${shots}`);
