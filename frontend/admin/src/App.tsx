import { lazy, useEffect, useMemo, useRef } from 'react';
import { Provider } from 'urql';
import { Navigate, Route, Routes } from 'react-router';
import { useAuth, type Session } from './auth/session';
import { createApiClients } from './api/client';
import { LiveProvider } from './live/live';
import { Layout } from './components/Layout';
import { Loading } from './components/states';
import { LoginScreen } from './screens/Login';

// Screens load on first visit: the sign-in page and the shell stay small.
const OverviewScreen = lazy(() => import('./screens/Overview').then((m) => ({ default: m.OverviewScreen })));
const AccountsScreen = lazy(() => import('./screens/Accounts').then((m) => ({ default: m.AccountsScreen })));
const AccountDetailScreen = lazy(() => import('./screens/AccountDetail').then((m) => ({ default: m.AccountDetailScreen })));
const UsageScreen = lazy(() => import('./screens/Usage').then((m) => ({ default: m.UsageScreen })));
const PricingScreen = lazy(() => import('./screens/Pricing').then((m) => ({ default: m.PricingScreen })));
const ControlsScreen = lazy(() => import('./screens/Controls').then((m) => ({ default: m.ControlsScreen })));
const AlertsScreen = lazy(() => import('./screens/Alerts').then((m) => ({ default: m.AlertsScreen })));
const AuditScreen = lazy(() => import('./screens/Audit').then((m) => ({ default: m.AuditScreen })));
const KeysScreen = lazy(() => import('./screens/Keys').then((m) => ({ default: m.KeysScreen })));
const ProvidersScreen = lazy(() => import('./screens/Providers').then((m) => ({ default: m.ProvidersScreen })));
const UsersScreen = lazy(() => import('./screens/Users').then((m) => ({ default: m.UsersScreen })));
const PlansScreen = lazy(() => import('./screens/plans/PlansScreen').then((m) => ({ default: m.PlansScreen })));
const PlanDetailScreen = lazy(() => import('./screens/plans/PlanDetail').then((m) => ({ default: m.PlanDetailScreen })));
const SubscriptionsScreen = lazy(() => import('./screens/subscriptions/SubscriptionsScreen').then((m) => ({ default: m.SubscriptionsScreen })));
const SubscriptionDetailScreen = lazy(() => import('./screens/subscriptions/SubscriptionDetail').then((m) => ({ default: m.SubscriptionDetailScreen })));

export function App() {
  const { state } = useAuth();
  if (state.status === 'checking') return <Loading what="your session" />;
  if (state.status === 'signed-out') return <LoginScreen notice={state.notice} />;
  return <SignedIn session={state.session} />;
}

function SignedIn({ session }: { session: Session }) {
  const { expire } = useAuth();
  const csrf = useRef(session.csrfToken);
  csrf.current = session.csrfToken;
  const expireRef = useRef(expire);
  expireRef.current = expire;
  // One client per session: a new sign-in starts with an empty cache.
  const { client, ws } = useMemo(
    () =>
      createApiClients({
        csrfToken: () => csrf.current,
        onUnauthenticated: () => expireRef.current(),
      }),
    [session.user.email],
  );
  useEffect(() => () => void ws.dispose(), [ws]);

  return (
    <Provider value={client}>
      <LiveProvider ws={ws}>
        <Routes>
          <Route element={<Layout />}>
            <Route index element={<OverviewScreen />} />
            <Route path="accounts" element={<AccountsScreen />} />
            <Route path="accounts/:externalId" element={<AccountDetailScreen />} />
            <Route path="usage" element={<UsageScreen />} />
            <Route path="pricing" element={<PricingScreen />} />
            <Route path="plans" element={<PlansScreen />} />
            <Route path="plans/:code" element={<PlanDetailScreen />} />
            <Route path="subscriptions" element={<SubscriptionsScreen />} />
            <Route path="subscriptions/:accountExternalId" element={<SubscriptionDetailScreen />} />
            <Route path="controls" element={<ControlsScreen />} />
            <Route path="alerts" element={<AlertsScreen />} />
            <Route path="audit" element={<AuditScreen />} />
            <Route path="people" element={<UsersScreen />} />
            <Route path="keys" element={<KeysScreen />} />
            <Route path="providers" element={<ProvidersScreen />} />
            <Route path="login" element={<Navigate to="/" replace />} />
            <Route path="*" element={<NotFoundScreen />} />
          </Route>
        </Routes>
      </LiveProvider>
    </Provider>
  );
}

function NotFoundScreen() {
  return (
    <section>
      <h1>Page not found</h1>
      <p>There is nothing at this address. Use the navigation to find your way.</p>
    </section>
  );
}
