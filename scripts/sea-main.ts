// The single executable's main script (scripts/sea.ts): kport's main with the launcher bin/kport.js
// shares, in one CommonJS bundle. No version gate and no compile cache: the Node inside is fixed
// and the blob carries its own code cache.
import { createContext, main } from '../src/main.ts';
// @ts-expect-error: bin/launch.js is plain JavaScript, typed by its use here.
import { launch } from '../bin/launch.js';

(launch as (kport: { main: typeof main; createContext: typeof createContext }) => Promise<number>)({ main, createContext }).then((code) => {
  process.exitCode = code;
});
