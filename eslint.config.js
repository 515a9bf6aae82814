// @ts-check
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

/** The planes meet only through src/shared (snapshot, counters, messages). */
const dataPlaneBoundary = {
  patterns: [
    { group: ['fastify', 'fastify/*', '@fastify/*'], message: 'the data plane does not serve HTTP' },
    { group: ['prom-client'], message: 'the data plane counts into shared counters; /metrics reads them' },
    { group: ['**/controlplane/**', '**/supervisor*'], message: 'the data plane depends only on src/shared' },
  ],
};
const sharedBoundary = {
  patterns: [
    { group: ['**/controlplane/**', '**/dataplane/**', '**/supervisor*'], message: 'src/shared imports neither plane' },
    { group: ['fastify', 'prom-client'], message: 'src/shared stays free of plane-specific packages' },
  ],
};
/**
 * The control plane writes snapshots and takes commands; it never reaches into the data plane.
 * The admin app (controlplane/admin) runs on the main thread and may use the supervisor's types;
 * the control-plane worker's own modules may not.
 */
const notDataPlane = { group: ['**/dataplane/**'], message: 'a pure module both planes need lives in src/shared' };
const adminBoundary = { patterns: [notDataPlane] };
const controlPlaneBoundary = {
  patterns: [notDataPlane, { group: ['**/supervisor*'], message: 'the control-plane worker does not depend on the main thread' }],
};

export default tseslint.config(
  { ignores: ['node_modules/', 'coverage/', 'test-output/', 'docs/'] },
  js.configs.recommended,
  ...tseslint.configs.strictTypeChecked,
  {
    languageOptions: {
      parserOptions: { projectService: { allowDefaultProject: ['eslint.config.js'] }, tsconfigRootDir: import.meta.dirname },
    },
    rules: {
      '@typescript-eslint/restrict-template-expressions': ['error', { allowNumber: true }],
      '@typescript-eslint/no-confusing-void-expression': ['error', { ignoreArrowShorthand: true }],
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
    },
  },
  { files: ['src/dataplane/**/*.ts'], rules: { 'no-restricted-imports': ['error', dataPlaneBoundary] } },
  { files: ['src/shared/**/*.ts'], rules: { 'no-restricted-imports': ['error', sharedBoundary] } },
  { files: ['src/controlplane/admin/**/*.ts'], rules: { 'no-restricted-imports': ['error', adminBoundary] } },
  {
    files: ['src/controlplane/**/*.ts'],
    ignores: ['src/controlplane/admin/**'],
    rules: { 'no-restricted-imports': ['error', controlPlaneBoundary] },
  },
  {
    files: ['test/**/*.ts'],
    rules: {
      '@typescript-eslint/no-non-null-assertion': 'off',
    },
  },
  { files: ['eslint.config.js'], ...tseslint.configs.disableTypeChecked },
  // The dashboard's browser script: plain JavaScript served as is (no build step).
  { files: ['src/controlplane/admin/dashboard/**/*.js'], ...tseslint.configs.disableTypeChecked },
  {
    files: ['src/controlplane/admin/dashboard/**/*.js'],
    languageOptions: {
      sourceType: 'script',
      globals: Object.fromEntries(
        ['window', 'document', 'fetch', 'sessionStorage', 'setTimeout', 'clearTimeout', 'CSS'].map((name) => [name, 'readonly']),
      ),
    },
  },
);
