import { useState, type FormEvent } from 'react';
import { useAuth } from '../auth/session';
import { FormError, TextField } from '../components/forms';

export function LoginScreen({ notice }: { notice?: string | undefined }) {
  const { login } = useAuth();
  const [email, setEmail] = useState('');
  const [password, setPassword] = useState('');
  const [errors, setErrors] = useState<{ email?: string; password?: string }>({});
  const [formError, setFormError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);

  async function submit(event: FormEvent) {
    event.preventDefault();
    const found: typeof errors = {};
    if (!/^[^\s@]+@[^\s@]+$/.test(email.trim())) found.email = 'Enter the email address you sign in with.';
    if (!password) found.password = 'Enter your password.';
    setErrors(found);
    setFormError(null);
    if (Object.keys(found).length) return;
    setBusy(true);
    const outcome = await login(email.trim(), password);
    setBusy(false);
    if (!outcome.ok) setFormError(outcome.message);
  }

  return (
    <main className="login">
      <form onSubmit={(e) => void submit(e)} noValidate aria-labelledby="login-title">
        <h1 id="login-title">Sign in to Tollgate</h1>
        {notice ? <p className="notice">{notice}</p> : null}
        <FormError message={formError} />
        <TextField
          label="Email"
          type="email"
          name="email"
          autoComplete="username"
          value={email}
          error={errors.email}
          onValue={setEmail}
          autoFocus
        />
        <TextField
          label="Password"
          type="password"
          name="password"
          autoComplete="current-password"
          value={password}
          error={errors.password}
          onValue={setPassword}
        />
        <button type="submit" className="primary" disabled={busy}>
          {busy ? 'Signing in…' : 'Sign in'}
        </button>
      </form>
    </main>
  );
}
