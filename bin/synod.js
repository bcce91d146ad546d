#!/usr/bin/env node
// Entry point of the `synod` command: runs the compiled CLI (built by `npm install`'s
// prepare step into dist/).
import { main } from '../dist/cli/main.js';

process.exitCode = await main(process.argv.slice(2));
