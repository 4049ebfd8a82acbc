/** `npm run env:example`: writes .env.example from the settings table (src/config/settings.ts). */
import fs from 'node:fs';
import path from 'node:path';
import { renderEnvExample } from '../src/config/env-example';

const file = path.join(__dirname, '..', '.env.example');
fs.writeFileSync(file, renderEnvExample());
console.log(`wrote ${path.relative(process.cwd(), file)}`);
