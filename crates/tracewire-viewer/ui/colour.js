// tracewire viewer: service colours. Pure functions, no DOM: loaded by the page before app.js,
// and by node in the viewer's tests (crates/tracewire-viewer/tests/ui_logic.rs).
'use strict';

// Clearly different colours (no red: red marks errors): the first PRIMARY as far apart as
// possible, the rest for traces with more services. A service prefers the primary entry its
// name hashes to, so it keeps its colour from trace to trace unless another service of the
// same trace already has it.
const PALETTE = [
  '#3b7dd8', '#f08a24', '#2ca25f', '#8e5bd6', '#17becf', '#d6338a', '#8c5a2b', '#a4c639',
  '#e8b10c', '#1f3c7a', '#7f8c9a', '#f4a6c0',
  '#0d7a6f', '#c75b39', '#6a4c93', '#5bc0a3', '#b565c9', '#6c8a1f',
];
const PRIMARY = 12;

function nameHash(name) {
  let h = 2166136261;
  for (const ch of name) h = Math.imul(h ^ ch.codePointAt(0), 16777619) >>> 0;
  return h;
}

// Colours for a set of services (a trace's, a map's): a Map name -> CSS colour, all different.
// Services take their preferred entry in name order, the next free primary one on a clash,
// then the others; past the palette's size, hues spread by the golden angle.
function assignColours(services) {
  const names = [...new Set(services)].sort();
  const out = new Map();
  const taken = new Set();
  let extra = 0;
  for (const name of names) {
    if (taken.size < PALETTE.length) {
      const h = nameHash(name) % PRIMARY;
      let i = -1;
      for (let j = 0; j < PRIMARY && i < 0; j++) if (!taken.has((h + j) % PRIMARY)) i = (h + j) % PRIMARY;
      for (let k = PRIMARY; k < PALETTE.length && i < 0; k++) if (!taken.has(k)) i = k;
      taken.add(i);
      out.set(name, PALETTE[i]);
    } else {
      const hue = Math.round((extra * 137.508) % 360);
      out.set(name, `hsl(${hue}, ${extra % 2 ? 45 : 65}%, ${[38, 52, 64][extra % 3]}%)`);
      extra++;
    }
  }
  return out;
}

if (typeof module === 'object' && module.exports) module.exports = { PALETTE, PRIMARY, assignColours };
