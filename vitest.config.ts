import path from 'node:path';
import { defineConfig } from 'vitest/config';

const REFERENCE_SDK = path.resolve(import.meta.dirname, 'test/reference-sdk/node_modules/openai');

export default defineConfig({
  resolve: {
    // The official SDK is installed apart, on Node 22, by the postinstall (it declares node >= 22,
    // so a root dependency would warn EBADENGINE on Node 20; scripts/install-reference-sdk.mjs).
    // tsc and tsx find it through tsconfig.json's `paths`; vite through this alias.
    alias: [
      { find: /^openai$/, replacement: REFERENCE_SDK },
      { find: /^openai\/(.+)$/, replacement: `${REFERENCE_SDK}/$1` },
    ],
  },
  test: {
    include: ['test/**/*.test.ts'],
    globalSetup: ['test/support/global-setup.ts'],
    // Integration tests share one DynamoDB Local and one SQS emulator; names are unique per test.
    pool: 'forks',
    testTimeout: 60_000,
    hookTimeout: 60_000,
    env: { AWS_EC2_METADATA_DISABLED: 'true' },
  },
});
