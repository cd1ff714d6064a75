import { useEffect, useMemo, useRef } from 'react';
import { Provider } from 'urql';
import { Navigate, Route, Routes } from 'react-router';
import { useAuth, type Session } from './auth/session';
import { createApiClients } from './api/client';
import { LiveProvider } from './live/live';
import { Layout } from './components/Layout';
import { Loading } from './components/states';
import { LoginScreen } from './screens/Login';
import { OverviewScreen } from './screens/Overview';
import { AccountsScreen } from './screens/Accounts';
import { AccountDetailScreen } from './screens/AccountDetail';
import { PricingScreen } from './screens/Pricing';
import { ControlsScreen } from './screens/Controls';
import { AlertsScreen } from './screens/Alerts';
import { AuditScreen } from './screens/Audit';
import { KeysScreen } from './screens/Keys';
import { ProvidersScreen } from './screens/Providers';
import { UsersScreen } from './screens/Users';
import { PlansScreen } from './screens/plans/PlansScreen';
import { PlanDetailScreen } from './screens/plans/PlanDetail';
import { SubscriptionsScreen } from './screens/subscriptions/SubscriptionsScreen';
import { SubscriptionDetailScreen } from './screens/subscriptions/SubscriptionDetail';

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
