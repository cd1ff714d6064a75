import { createContext, useCallback, useContext, useEffect, useMemo, useState, type ReactNode } from 'react';

export type Role = 'OWNER' | 'ADMIN' | 'ANALYST' | 'SERVICE';

export interface SessionUser {
  email: string;
  role: Role;
}

export interface Session {
  user: SessionUser;
  csrfToken: string;
}

type AuthState =
  | { status: 'checking' }
  | { status: 'signed-out'; notice?: string }
  | { status: 'signed-in'; session: Session };

interface AuthApi {
  state: AuthState;
  login: (email: string, password: string) => Promise<LoginOutcome>;
  logout: () => Promise<void>;
  expire: () => void;
}

export type LoginOutcome = { ok: true } | { ok: false; message: string };

const AuthContext = createContext<AuthApi | null>(null);

function asSession(body: unknown): Session | null {
  if (typeof body !== 'object' || body === null) return null;
  const { user, csrfToken } = body as { user?: { email?: unknown; role?: unknown }; csrfToken?: unknown };
  if (!user || typeof user.email !== 'string' || typeof user.role !== 'string' || typeof csrfToken !== 'string') {
    return null;
  }
  return { user: { email: user.email, role: user.role.toUpperCase() as Role }, csrfToken };
}

function errorMessage(body: unknown, fallback: string): string {
  if (typeof body === 'object' && body !== null) {
    const error = (body as { error?: { message?: unknown } }).error;
    if (error && typeof error.message === 'string') return error.message;
  }
  return fallback;
}

async function readJson(response: Response): Promise<unknown> {
  try {
    return await response.json();
  } catch {
    return null;
  }
}

export function AuthProvider({ children }: { children: ReactNode }) {
  const [state, setState] = useState<AuthState>({ status: 'checking' });

  useEffect(() => {
    let cancelled = false;
    fetch('/auth/me', { credentials: 'same-origin', headers: { accept: 'application/json' } })
      .then(async (response) => {
        const session = response.ok ? asSession(await readJson(response)) : null;
        if (!cancelled) setState(session ? { status: 'signed-in', session } : { status: 'signed-out' });
      })
      .catch(() => {
        if (!cancelled) setState({ status: 'signed-out', notice: 'The server could not be reached.' });
      });
    return () => {
      cancelled = true;
    };
  }, []);

  const login = useCallback(async (email: string, password: string): Promise<LoginOutcome> => {
    let response: Response;
    try {
      response = await fetch('/auth/login', {
        method: 'POST',
        credentials: 'same-origin',
        headers: { 'content-type': 'application/json', accept: 'application/json' },
        body: JSON.stringify({ email, password }),
      });
    } catch {
      return { ok: false, message: 'The server could not be reached. Check your connection and try again.' };
    }
    const body = await readJson(response);
    if (response.ok) {
      const session = asSession(body);
      if (session) {
        setState({ status: 'signed-in', session });
        return { ok: true };
      }
      return { ok: false, message: 'The server answered in a way this app does not understand.' };
    }
    if (response.status === 401) return { ok: false, message: errorMessage(body, 'Wrong email or password.') };
    if (response.status === 429) return { ok: false, message: errorMessage(body, 'Too many attempts; wait a minute and try again.') };
    return { ok: false, message: errorMessage(body, `Sign-in failed (HTTP ${response.status}).`) };
  }, []);

  const logout = useCallback(async () => {
    const csrf = state.status === 'signed-in' ? state.session.csrfToken : '';
    try {
      await fetch('/auth/logout', {
        method: 'POST',
        credentials: 'same-origin',
        headers: { 'x-csrf-token': csrf },
      });
    } finally {
      setState({ status: 'signed-out', notice: 'You are signed out.' });
    }
  }, [state]);

  const expire = useCallback(() => {
    setState((current) =>
      current.status === 'signed-in'
        ? { status: 'signed-out', notice: 'Your session has ended. Sign in again to continue.' }
        : current,
    );
  }, []);

  const api = useMemo(() => ({ state, login, logout, expire }), [state, login, logout, expire]);
  return <AuthContext.Provider value={api}>{children}</AuthContext.Provider>;
}

export function useAuth(): AuthApi {
  const api = useContext(AuthContext);
  if (!api) throw new Error('useAuth outside AuthProvider');
  return api;
}

/** The signed-in session; only used under the signed-in part of the app. */
export function useSession(): Session {
  const { state } = useAuth();
  if (state.status !== 'signed-in') throw new Error('useSession without a session');
  return state.session;
}

export function usePermissions() {
  const { user } = useSession();
  return {
    role: user.role,
    canWrite: user.role === 'OWNER' || user.role === 'ADMIN',
    isOwner: user.role === 'OWNER',
  };
}
