// Runs the synod CLI from source (tests spawn it with `node --import tsx`).
import { main } from '../../cli/main.js';

process.exitCode = await main(process.argv.slice(2));
