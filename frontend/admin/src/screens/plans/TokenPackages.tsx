import { useState, type FormEvent } from 'react';
import { useMutation, useQuery } from 'urql';
import { usePermissions } from '../../auth/session';
import { Empty, QueryState } from '../../components/states';
import { applyFailure, CheckboxField, failureOf, FormError, FormSuccess, TextField, type FieldErrors } from '../../components/forms';
import { formatCredits, parseWhole } from '../../lib/format';
import { formatMinor, isCurrencyCode, majorToMinor, minorToMajor } from '../../lib/money';
import { TokenPackagesDoc, UpsertTokenPackageDoc } from './documents';

interface PackageDraft {
  code: string;
  name: string;
  credits: string;
  prices: string;
  validityDays: string;
  availableToPlans: string;
  active: boolean;
}

const EMPTY: PackageDraft = { code: '', name: '', credits: '', prices: 'USD 10.00', validityDays: '', availableToPlans: '', active: true };

export function TokenPackages() {
  const [inactive, setInactive] = useState(false);
  const [result, reexecute] = useQuery({ query: TokenPackagesDoc, variables: { includeInactive: inactive } });
  const { canWrite } = usePermissions();
  const [draft, setDraft] = useState<PackageDraft>(EMPTY);
  const [errors, setErrors] = useState<FieldErrors>({});
  const [formError, setFormError] = useState<string | null>(null);
  const [success, setSuccess] = useState<string | null>(null);
  const [state, upsert] = useMutation(UpsertTokenPackageDoc);
  const set = (k: keyof PackageDraft) => (v: string) => setDraft((s) => ({ ...s, [k]: v }));

  async function submit(event: FormEvent) {
    event.preventDefault();
    const found: FieldErrors = {};
    if (!/^[a-z0-9][a-z0-9_-]*$/.test(draft.code.trim())) found.code = 'Lowercase letters, digits, - and _.';
    const credits = parseWhole(draft.credits);
    if (credits === null || credits <= 0n) found.credits = 'A whole number of credits above zero.';
    const prices = draft.prices
      .split(/[\n,]/)
      .map((line) => line.trim())
      .filter(Boolean)
      .map((line) => {
        const [currency = '', amount = ''] = line.split(/\s+/);
        const minor = isCurrencyCode(currency) ? majorToMinor(amount, currency) : null;
        if (minor === null) found.prices = 'One price per line: a currency code and an amount, e.g. USD 10.00.';
        return { currency: currency.toUpperCase(), amountMinor: (minor ?? 0n).toString() };
      });
    if (!prices.length) found.prices = 'At least one price, e.g. USD 10.00.';
    let validityDays: number | null = null;
    if (draft.validityDays.trim()) {
      const n = Number(draft.validityDays);
      if (!Number.isInteger(n) || n < 1) found.validityDays = 'Whole days, or empty: never expire.';
      else validityDays = n;
    }
    setErrors(found);
    setFormError(null);
    setSuccess(null);
    if (Object.keys(found).length || credits === null) return;
    const result = await upsert({
      input: {
        code: draft.code.trim(),
        name: draft.name.trim(),
        credits: credits.toString(),
        prices,
        validityDays,
        availableToPlans: draft.availableToPlans.split(/[\s,]+/).map((p) => p.trim()).filter(Boolean),
        active: draft.active,
      },
    });
    if (result.error) return setFormError(result.error.message);
    const failure = failureOf(result.data?.upsertTokenPackage, ['TokenPackage']);
    if (failure) {
      const applied = applyFailure(failure, Object.keys(draft));
      setErrors(applied.fieldErrors);
      setFormError(applied.formError);
      return;
    }
    setSuccess(`Package ${draft.code.trim()} saved.`);
    setDraft(EMPTY);
    reexecute({ requestPolicy: 'network-only' });
  }

  return (
    <section className="card" aria-labelledby="packages-title">
      <h2 id="packages-title">Token packages</h2>
      <CheckboxField label="Show inactive packages" checked={inactive} onValue={setInactive} />
      <QueryState result={result} what="token packages">
        {(data) =>
          data.tokenPackages.length ? (
            <table>
              <thead>
                <tr>
                  <th scope="col">Package</th>
                  <th scope="col" className="num">Credits</th>
                  <th scope="col">Prices</th>
                  <th scope="col">Credits expire</th>
                  <th scope="col">For plans</th>
                  <th scope="col">State</th>
                </tr>
              </thead>
              <tbody>
                {data.tokenPackages.map((p) => (
                  <tr key={p.code}>
                    <td>
                      {p.name || p.code} <small className="muted">{p.code}</small>
                      {canWrite ? (
                        <>
                          {' '}
                          <button
                            type="button"
                            className="small"
                            onClick={() =>
                              setDraft({
                                code: p.code,
                                name: p.name,
                                credits: String(p.credits),
                                prices: p.prices.map((x) => `${x.currency} ${minorToMajor(x.amountMinor, x.currency)}`).join(', '),
                                validityDays: p.validityDays == null ? '' : String(p.validityDays),
                                availableToPlans: p.availableToPlans.join(', '),
                                active: p.active,
                              })
                            }
                          >
                            Edit…
                          </button>
                        </>
                      ) : null}
                    </td>
                    <td className="num">{formatCredits(p.credits)}</td>
                    <td>{p.prices.map((x) => formatMinor(x.amountMinor, x.currency)).join(' · ')}</td>
                    <td>{p.validityDays == null ? 'Never' : `After ${p.validityDays} days`}</td>
                    <td>{p.availableToPlans.length ? p.availableToPlans.join(', ') : 'Everyone'}</td>
                    <td>{p.active ? 'On sale' : 'Inactive'}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          ) : (
            <Empty>No token packages.</Empty>
          )
        }
      </QueryState>
      {canWrite ? (
        <form onSubmit={(e) => void submit(e)} noValidate className="form-grid" aria-label="Token package">
          <h3>Add or change a package</h3>
          <FormError message={formError} />
          <FormSuccess message={success} />
          <TextField label="Code" value={draft.code} error={errors.code} onValue={set('code')} />
          <TextField label="Name" value={draft.name} error={errors.name} onValue={set('name')} />
          <TextField label="Credits" inputMode="numeric" value={draft.credits} error={errors.credits} onValue={set('credits')} />
          <TextField label="Prices" value={draft.prices} error={errors.prices} onValue={set('prices')} hint="Currency and amount, comma-separated: USD 10.00, EUR 9.50" />
          <TextField label="Credits valid for (days)" inputMode="numeric" value={draft.validityDays} error={errors.validityDays} onValue={set('validityDays')} hint="Empty: never expire." />
          <TextField label="Only for plans" value={draft.availableToPlans} error={errors.availableToPlans} onValue={set('availableToPlans')} hint="Plan codes; empty: everyone." />
          <CheckboxField label="On sale" checked={draft.active} onValue={(active) => setDraft((s) => ({ ...s, active }))} />
          <div className="actions">
            <button type="submit" className="primary" disabled={state.fetching}>
              Save package
            </button>
          </div>
        </form>
      ) : null}
    </section>
  );
}
