// ESLint 9 flat config with typescript-eslint's recommended rules (syntax-based: fast enough for every `npm test`;
// the type checks themselves are `npm run typecheck`). A disable comment must say why, on its own line.
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

const HTTP_DOOR = {
  group: ['**/middleware', '**/middleware/**', '**/routes', '**/routes/**', '**/controllers', '**/controllers/**'],
  message: 'HTTP-only code (middleware, routes, controllers): shared policy belongs in src/services (e.g. services/policy).',
};
const WS_DOOR = {
  group: ['**/websocket', '**/websocket/**'],
  message: 'The services are the core both transports call: they never import the WebSocket door.',
};

export default tseslint.config(
  { ignores: ['dist/**', 'node_modules/**', 'coverage/**', '**/*.js', '**/*.cjs', '**/*.mjs'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    linterOptions: { reportUnusedDisableDirectives: 'error' },
    rules: {
      // Unused bindings named with a leading underscore are deliberate (destructuring to drop a field, fixed signatures).
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_', caughtErrors: 'none' }],
    },
  },
  // The layering (README "Module map"): the session core, shared policy, config and the WebSocket door never reach
  // into the HTTP door (middleware, routes, controllers); the services never reach into a transport at all.
  {
    files: ['src/websocket/**/*.ts', 'src/config/**/*.ts'],
    rules: { 'no-restricted-imports': ['error', { patterns: [HTTP_DOOR] }] },
  },
  {
    files: ['src/services/**/*.ts'],
    rules: { 'no-restricted-imports': ['error', { patterns: [HTTP_DOOR, WS_DOOR] }] },
  },
  {
    // Tests and benchmarks read wire JSON whose shape is what they go on to assert.
    files: ['test/**/*.ts', 'bench/**/*.ts'],
    rules: { '@typescript-eslint/no-explicit-any': 'off' },
  },
);
