import { Suspense } from 'react';
import { NavLink, Outlet, useNavigate } from 'react-router';
import { useAuth, useSession } from '../auth/session';
import { useLive, POLL_MS } from '../live/live';
import { Loading } from './states';

const NAV: [string, string, boolean?][] = [
  ['/', 'Overview'],
  ['/accounts', 'Accounts'],
  ['/usage', 'Usage'],
  ['/pricing', 'Models & pricing'],
  ['/plans', 'Plans & features'],
  ['/subscriptions', 'Subscriptions'],
  ['/controls', 'Controls'],
  ['/alerts', 'Alerts'],
  ['/audit', 'Audit log'],
  ['/people', 'People', true],
  ['/keys', 'Admin keys', true],
  ['/providers', 'Providers'],
];

export function LiveBadge() {
  const { status, reason } = useLive();
  if (status === 'live') {
    return (
      <span className="live live-on" role="status">
        ● Live
      </span>
    );
  }
  if (status === 'connecting') {
    return (
      <span className="live live-connecting" role="status">
        Connecting live updates…
      </span>
    );
  }
  return (
    <span className="live live-off" role="status" title={reason}>
      Live updates unavailable — refreshing every {POLL_MS / 1000} s
    </span>
  );
}

export function Layout() {
  const { user } = useSession();
  const { logout } = useAuth();
  const navigate = useNavigate();
  return (
    <div className="shell">
      <a className="skip" href="#main">
        Skip to content
      </a>
      <header className="topbar">
        <span className="brand">Tollgate</span>
        <LiveBadge />
        <span className="who">
          {user.email} · <span className={`role role-${user.role.toLowerCase()}`}>{user.role.toLowerCase()}</span>
        </span>
        <button
          type="button"
          onClick={() => {
            // The next person to sign in starts on the overview, not on this page.
            navigate('/', { replace: true });
            void logout();
          }}
        >
          Sign out
        </button>
      </header>
      <nav className="sidebar" aria-label="Main">
        <ul>
          {NAV.filter(([, , ownerOnly]) => !ownerOnly || user.role === 'OWNER').map(([to, label]) => (
            <li key={to}>
              <NavLink to={to} end={to === '/'}>
                {label}
              </NavLink>
            </li>
          ))}
        </ul>
      </nav>
      <main id="main" className="content">
        {user.role === 'ANALYST' ? (
          <p className="readonly-note">You have the analyst role: you can see everything and change nothing.</p>
        ) : null}
        <Suspense fallback={<Loading what="the page" />}>
          <Outlet />
        </Suspense>
      </main>
    </div>
  );
}
