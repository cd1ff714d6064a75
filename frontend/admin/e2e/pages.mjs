// Page objects of the admin SPA: one place that knows the screens' labels and roles.
import assert from 'node:assert/strict';

export class AdminApp {
  constructor(page, baseUrl, shots) {
    this.page = page;
    this.baseUrl = baseUrl;
    this.shots = shots;
  }

  async shot(name) {
    await this.page.screenshot({ path: `${this.shots}/${name}.png`, fullPage: true });
  }

  async open(path = '/admin/') {
    await this.page.goto(`${this.baseUrl}${path}`);
  }

  async login(email, password) {
    const page = this.page;
    await page.getByRole('heading', { name: 'Sign in to Tollgate' }).waitFor();
    await page.getByLabel('Email').fill(email);
    await page.getByLabel('Password').fill(password);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByRole('button', { name: 'Sign out' }).waitFor();
  }

  async nav(label, heading = label) {
    await this.page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: label, exact: true }).click();
    await this.page.getByRole('heading', { name: heading, level: 1 }).waitFor();
  }

  /** A text that must appear on the page without it being reloaded. */
  async waitForText(locator, predicate, what, timeout = 15_000) {
    const deadline = Date.now() + timeout;
    let last = '';
    while (Date.now() < deadline) {
      last = (await locator.textContent()) ?? '';
      if (predicate(last)) return last;
      await this.page.waitForTimeout(200);
    }
    assert.fail(`${what}: still "${last}" after ${timeout} ms`);
  }
}

export class PricingPage {
  constructor(app) {
    this.app = app;
    this.page = app.page;
  }

  async addModelPrice({ provider, model, input, output }) {
    const page = this.page;
    await page.getByRole('button', { name: 'Add a model price' }).click();
    const form = page.getByRole('form', { name: 'Model price' });
    await form.getByLabel('Provider').fill(provider);
    await form.getByLabel('Model', { exact: true }).fill(model);
    await form.getByLabel('Input, USD per 1M tokens', { exact: true }).fill(input);
    await form.getByLabel('Output, USD per 1M tokens').fill(output);
    await form.getByRole('button', { name: 'Save price' }).click();
    await page.getByRole('cell', { name: model, exact: true }).waitFor();
  }
}

export class AccountsPage {
  constructor(app) {
    this.app = app;
    this.page = app.page;
  }

  async create(externalId, name) {
    const page = this.page;
    await page.getByText('New account', { exact: true }).click();
    await page.getByLabel('External id').first().fill(externalId);
    await page.getByLabel('Name').first().fill(name);
    await page.getByRole('button', { name: 'Create account' }).click();
    await page.getByRole('heading', { level: 1, name: new RegExp(name) }).waitFor();
  }
}

export class AccountPage {
  constructor(app) {
    this.app = app;
    this.page = app.page;
    this.available = app.page.getByTestId('balance-available');
  }

  async grant(credits, reason) {
    const page = this.page;
    await page.getByRole('tab', { name: 'Grant' }).click();
    const form = page.getByRole('form', { name: 'Grant' });
    await form.getByLabel('Credits').fill(String(credits));
    await form.getByLabel('Reason').fill(reason);
    await form.getByRole('button', { name: 'Review grant' }).click();
    const confirm = page.getByRole('group', { name: 'Confirm the grant' });
    await confirm.waitFor();
    await confirm.getByRole('button', { name: 'Grant credits' }).click();
    await page.getByRole('status').filter({ hasText: 'Granted' }).waitFor();
  }

  async deductTooMuch(credits) {
    const page = this.page;
    await page.getByRole('tab', { name: 'Deduct' }).click();
    const form = page.getByRole('form', { name: 'Deduct' });
    await form.getByLabel('Credits').fill('abc');
    await form.getByRole('button', { name: 'Review deduct' }).click();
    await form.getByText('Enter the amount as a whole number of credits.').waitFor();
    await form.getByLabel('Credits').fill(String(credits));
    await form.getByRole('button', { name: 'Review deduct' }).click();
    await page.getByRole('group', { name: 'Confirm the deduction' }).getByRole('button', { name: 'Deduct credits' }).click();
    // The API's typed InsufficientCredits lands next to the amount field.
    await page.getByRole('form', { name: 'Deduct' }).getByText(/available/).waitFor();
  }
}

export class ControlsPage {
  constructor(app) {
    this.app = app;
    this.page = app.page;
  }

  async setGlobalStop(on, reason = '') {
    const page = this.page;
    await page.getByRole('switch').click();
    const form = page.getByRole('form', { name: 'Confirm the emergency stop change' });
    if (on) {
      await form.getByLabel('Reason').fill(reason);
      await form.getByLabel('Type STOP ALL to confirm').fill('STOP ALL');
      await form.getByRole('button', { name: 'Stop all traffic' }).click();
      await page.getByText('Emergency stop is on').waitFor();
    } else {
      await form.getByLabel('Type RESUME to confirm').fill('RESUME');
      await form.getByRole('button', { name: 'Resume traffic' }).click();
      await page.getByText('Emergency stop is off').waitFor();
    }
    await page.locator(`[role="switch"][aria-checked="${on}"]`).waitFor();
  }
}

export class PlansPage {
  constructor(app) {
    this.app = app;
    this.page = app.page;
  }

  /** Creates a plan with a draft version 1 and publishes it. */
  async createAndPublish({ code, name, monthly, credits }) {
    const page = this.page;
    await page.getByRole('button', { name: 'New plan' }).click();
    const form = page.getByRole('form', { name: 'New plan' });
    await form.getByLabel('Plan code', { exact: true }).fill(code);
    await form.getByLabel('Name', { exact: true }).fill(name);
    await form.getByLabel('Amount').first().fill('19.999');
    await form.getByRole('button', { name: 'Create plan with a draft' }).click();
    await form.getByText(/An amount such as 19.00/).waitFor();
    await form.getByLabel('Amount').first().fill(monthly);
    await form.getByLabel('Credits per period').fill(String(credits));
    await form.getByRole('button', { name: 'Create plan with a draft' }).click();
    await page.getByRole('heading', { name: 'Draft version 1' }).waitFor();
    await page.getByRole('button', { name: 'Publish…' }).click();
    await page.getByRole('group', { name: 'Publish the draft' }).getByRole('button', { name: 'Publish version 1' }).click();
    await page.getByText('Version 1 is published').waitFor();
  }
}
