import { useEffect, useId, type InputHTMLAttributes, type ReactNode, type SelectHTMLAttributes, type TextareaHTMLAttributes } from 'react';

export type FieldErrors = Record<string, string>;

/** A typed failure from a mutation's union result, for a form to show. */
export interface Failure {
  field: string | null;
  message: string;
}

interface FailureLike {
  __typename?: string;
  message?: string;
  field?: string;
}

/** Which form field a typed error belongs to (null: the form as a whole). */
const FIELD_OF: Record<string, string | null> = {
  InsufficientCredits: 'amount',
  AccountNotFound: 'accountExternalId',
  OrganizationNotFound: 'organizationExternalId',
  UnknownModel: 'model',
  IdempotencyConflict: null,
  NotFound: null,
};

export function failureOf(result: FailureLike | null | undefined, successTypes: string[]): Failure | null {
  if (!result?.__typename || successTypes.includes(result.__typename)) return null;
  const message = result.message ?? `The server refused this (${result.__typename}).`;
  if (result.field !== undefined) return { field: result.field, message };
  return { field: FIELD_OF[result.__typename] ?? null, message };
}

/** Where a server-side field name (maybe "input.amount" or "amount") lands in a form. */
export function applyFailure(failure: Failure, fields: string[]): { fieldErrors: FieldErrors; formError: string | null } {
  const name = failure.field?.split('.').pop() ?? null;
  if (name && fields.includes(name)) return { fieldErrors: { [name]: failure.message }, formError: null };
  return {
    fieldErrors: {},
    formError: failure.field ? `${failure.field}: ${failure.message}` : failure.message,
  };
}

interface FieldProps {
  label: string;
  error?: string | undefined;
  hint?: ReactNode;
  children: (props: { id: string; 'aria-invalid': boolean; 'aria-describedby': string | undefined }) => ReactNode;
}

export function Field({ label, error, hint, children }: FieldProps) {
  const id = useId();
  const hintId = `${id}-hint`;
  const errorId = `${id}-error`;
  const describedBy = [hint ? hintId : null, error ? errorId : null].filter(Boolean).join(' ') || undefined;
  // A new error takes the keyboard to its field, unless an earlier field of the same answer
  // already holds it: the first invalid field gets focus.
  useEffect(() => {
    if (!error) return;
    const active = document.activeElement;
    if (active instanceof HTMLElement && active.getAttribute('aria-invalid') === 'true') return;
    document.getElementById(id)?.focus();
  }, [error, id]);
  return (
    <div className={`field${error ? ' field-invalid' : ''}`}>
      <label htmlFor={id}>{label}</label>
      {children({ id, 'aria-invalid': Boolean(error), 'aria-describedby': describedBy })}
      {hint ? (
        <small id={hintId} className="hint">
          {hint}
        </small>
      ) : null}
      {error ? (
        <small id={errorId} className="field-error" role="alert">
          {error}
        </small>
      ) : null}
    </div>
  );
}

type InputFieldProps = Omit<InputHTMLAttributes<HTMLInputElement>, 'id' | 'onChange'> & {
  label: string;
  error?: string | undefined;
  hint?: ReactNode;
  onValue: (value: string) => void;
};

export function TextField({ label, error, hint, onValue, ...rest }: InputFieldProps) {
  return (
    <Field label={label} error={error} hint={hint}>
      {(a11y) => <input {...rest} {...a11y} onChange={(e) => onValue(e.target.value)} />}
    </Field>
  );
}

type SelectFieldProps = Omit<SelectHTMLAttributes<HTMLSelectElement>, 'id' | 'onChange'> & {
  label: string;
  error?: string | undefined;
  hint?: ReactNode;
  options: readonly (string | { value: string; label: string })[];
  onValue: (value: string) => void;
};

export function SelectField({ label, error, hint, options, onValue, ...rest }: SelectFieldProps) {
  return (
    <Field label={label} error={error} hint={hint}>
      {(a11y) => (
        <select {...rest} {...a11y} onChange={(e) => onValue(e.target.value)}>
          {options.map((o) => {
            const { value, label: text } = typeof o === 'string' ? { value: o, label: o } : o;
            return (
              <option key={value} value={value}>
                {text}
              </option>
            );
          })}
        </select>
      )}
    </Field>
  );
}

type TextAreaFieldProps = Omit<TextareaHTMLAttributes<HTMLTextAreaElement>, 'id' | 'onChange'> & {
  label: string;
  error?: string | undefined;
  hint?: ReactNode;
  onValue: (value: string) => void;
};

export function TextAreaField({ label, error, hint, onValue, ...rest }: TextAreaFieldProps) {
  return (
    <Field label={label} error={error} hint={hint}>
      {(a11y) => <textarea {...rest} {...a11y} onChange={(e) => onValue(e.target.value)} />}
    </Field>
  );
}

export function CheckboxField({
  label,
  checked,
  onValue,
  hint,
  disabled,
}: {
  label: string;
  checked: boolean;
  onValue: (value: boolean) => void;
  hint?: ReactNode;
  disabled?: boolean;
}) {
  const id = useId();
  return (
    <div className="field field-checkbox">
      <input id={id} type="checkbox" checked={checked} disabled={disabled} onChange={(e) => onValue(e.target.checked)} />
      <label htmlFor={id}>{label}</label>
      {hint ? <small className="hint">{hint}</small> : null}
    </div>
  );
}

export function FormError({ message }: { message: string | null }) {
  if (!message) return null;
  return (
    <div className="form-error" role="alert">
      {message}
    </div>
  );
}

export function FormSuccess({ message }: { message: string | null }) {
  if (!message) return null;
  return (
    <div className="form-success" role="status">
      {message}
    </div>
  );
}

/** The review step of a two-step form: what will happen, then confirm or go back. */
export function ConfirmPanel({
  title,
  rows,
  busy,
  onConfirm,
  onBack,
  danger,
  confirmLabel = 'Confirm',
}: {
  title: string;
  rows: [string, ReactNode][];
  busy: boolean;
  onConfirm: () => void;
  onBack: () => void;
  danger?: boolean;
  confirmLabel?: string;
}) {
  return (
    <div className="confirm" role="group" aria-label={title}>
      <h4>{title}</h4>
      <dl>
        {rows.map(([k, v]) => (
          <div key={k}>
            <dt>{k}</dt>
            <dd>{v}</dd>
          </div>
        ))}
      </dl>
      <div className="actions">
        <button type="button" className={danger ? 'danger' : 'primary'} disabled={busy} onClick={onConfirm} autoFocus>
          {busy ? 'Working…' : confirmLabel}
        </button>
        <button type="button" disabled={busy} onClick={onBack}>
          Back
        </button>
      </div>
    </div>
  );
}
