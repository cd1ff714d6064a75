import { describe, expect, it } from 'vitest';
import { emptyDraft, toInput } from './version';

describe('plan version drafts', () => {
  it('turns a valid draft into the API input, prices in minor units', () => {
    const draft = emptyDraft();
    draft.prices = [
      { cycle: 'MONTHLY', currency: 'usd', amount: '19.00' },
      { cycle: 'ANNUAL', currency: 'JPY', amount: '19000' },
    ];
    draft.includedCredits = '10000';
    draft.limits.costCapPerDayMicros = '2.5';
    draft.features = { sso: { included: true, enabled: true, limit: '' } };
    const { input, errors } = toInput(draft, [{ key: 'sso', name: 'SSO', kind: 'BOOLEAN' }]);
    expect(errors).toEqual({});
    expect(input?.prices).toEqual([
      { cycle: 'MONTHLY', currency: 'USD', amountMinor: '1900' },
      { cycle: 'ANNUAL', currency: 'JPY', amountMinor: '19000' },
    ]);
    expect(input?.limits?.costCapPerDayMicros).toBe('2500000');
    expect(input?.featureValues).toEqual([{ featureKey: 'sso', enabled: true, limit: null }]);
  });

  it('names each field that is wrong', () => {
    const draft = emptyDraft();
    draft.prices = [
      { cycle: 'MONTHLY', currency: 'USD', amount: '19.999' },
      { cycle: 'MONTHLY', currency: 'USD', amount: '5' },
    ];
    draft.includedCredits = 'lots';
    draft.rollover = 'CAP';
    draft.rolloverCapPercent = '150';
    const { input, errors } = toInput(draft, []);
    expect(input).toBeNull();
    expect(Object.keys(errors).sort()).toEqual(['includedCredits', 'price0', 'price1', 'rolloverCapPercent']);
  });
});
