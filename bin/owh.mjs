#!/usr/bin/env node
// The operator CLI (`owh`): its TypeScript source runs through tsx's loader.
import { tsImport } from 'tsx/esm/api';

await tsImport('../cli/main.ts', import.meta.url);
