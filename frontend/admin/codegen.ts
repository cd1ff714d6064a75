import type { CodegenConfig } from '@graphql-codegen/cli';

// Types for every operation written with `graphql(...)` under src/, checked against the
// schema the backend generates. Subscriptions live in src/live/ and are typed by hand: the
// app must keep working against a server whose schema has no Subscription type.
const config: CodegenConfig = {
  schema: '../../schema.graphql',
  documents: ['src/**/*.{ts,tsx}', '!src/gql/**', '!src/live/**'],
  ignoreNoDocuments: false,
  generates: {
    'src/gql/': {
      preset: 'client',
      presetConfig: { fragmentMasking: false },
      config: {
        enumsAsTypes: true,
        useTypeImports: true,
        strictScalars: true,
        scalars: {
          // Sent by the API as JSON numbers; numbers past 2^53 arrive as strings (see api/json.ts).
          BigInt: { input: 'string', output: 'number | string' },
          Decimal: 'string',
          DateTime: 'string',
          JSON: 'unknown',
        },
      },
    },
  },
};

export default config;
