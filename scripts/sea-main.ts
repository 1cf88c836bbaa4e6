// The single executable's entry (scripts/sea.ts): kport's main with the launcher bin/kport.js
// shares. No version gate and no compile cache: the Node inside is fixed and the chunks carry
// their own code cache.
import { createContext, main } from '../src/main.ts';
import { launch } from '../bin/launch.js';

launch({ main, createContext }).then((code: number) => {
  process.exitCode = code;
});
