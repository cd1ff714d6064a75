import {
  Area,
  AreaChart,
  Bar,
  BarChart,
  CartesianGrid,
  Legend,
  ResponsiveContainer,
  Tooltip,
  XAxis,
  YAxis,
} from 'recharts';

/** Chart values are plotted as JavaScript numbers (an approximation fine for a picture);
 * every exact figure is shown in the tables and cards beside the charts. */
export interface LivePoint {
  label: string;
  calls: number;
  tokens: number;
}

export function LiveUsageChart({ points }: { points: LivePoint[] }) {
  return (
    <div className="chart" role="img" aria-label="Calls and tokens per refresh interval">
      <ResponsiveContainer width="100%" height={220} minWidth={200}>
        <AreaChart data={points} margin={{ top: 8, right: 16, bottom: 0, left: 0 }}>
          <CartesianGrid strokeDasharray="3 3" />
          <XAxis dataKey="label" minTickGap={24} />
          <YAxis yAxisId="tokens" orientation="left" allowDecimals={false} />
          <YAxis yAxisId="calls" orientation="right" allowDecimals={false} />
          <Tooltip />
          <Legend />
          <Area
            yAxisId="tokens"
            type="monotone"
            dataKey="tokens"
            name="Tokens"
            stroke="#3559c7"
            fill="#c9d5fb"
            isAnimationActive={false}
          />
          <Area
            yAxisId="calls"
            type="monotone"
            dataKey="calls"
            name="Calls"
            stroke="#1c8a5a"
            fill="#c4ead8"
            isAnimationActive={false}
          />
        </AreaChart>
      </ResponsiveContainer>
    </div>
  );
}

export interface MoneyBarPoint {
  label: string;
  costUsd: number;
  chargeUsd: number;
}

export function CostChargeChart({ points, title }: { points: MoneyBarPoint[]; title: string }) {
  return (
    <div className="chart" role="img" aria-label={title}>
      <ResponsiveContainer width="100%" height={220} minWidth={200}>
        <BarChart data={points} margin={{ top: 8, right: 16, bottom: 0, left: 0 }}>
          <CartesianGrid strokeDasharray="3 3" />
          <XAxis dataKey="label" minTickGap={16} />
          <YAxis tickFormatter={(v: number) => `$${v}`} />
          <Tooltip formatter={(v) => `$${Number(v).toFixed(6)}`} />
          <Legend />
          <Bar dataKey="costUsd" name="Provider cost (USD)" fill="#d08a2c" isAnimationActive={false} />
          <Bar dataKey="chargeUsd" name="Charged (USD)" fill="#3559c7" isAnimationActive={false} />
        </BarChart>
      </ResponsiveContainer>
    </div>
  );
}
