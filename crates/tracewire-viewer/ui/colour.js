// tracewire viewer: service colours. Pure functions, no DOM: loaded by the page before app.js,
// and by node in the viewer's tests (crates/tracewire-viewer/tests/ui_logic.rs).
'use strict';

// Clearly different colours (no red: red marks errors). A service prefers the entry its name
// hashes to, so it keeps its colour from trace to trace unless another service of the same
// trace already has it.
const PALETTE = [
  '#3b7dd8', '#f08a24', '#2ca25f', '#8e5bd6', '#17a2b8', '#d6338a', '#a6761d', '#6c8a1f',
  '#e8b10c', '#1f4e9c', '#c75b39', '#5bc0a3', '#b565c9', '#7f8c9a', '#0d7a6f', '#f27da0',
  '#6a4c93', '#9fb83a',
];

function nameHash(name) {
  let h = 2166136261;
  for (const ch of name) h = Math.imul(h ^ ch.codePointAt(0), 16777619) >>> 0;
  return h;
}

// Colours for a set of services (a trace's, a map's): a Map name -> CSS colour, all different.
// Services take their preferred palette entry in name order, the next free one on a clash;
// past the palette's size, hues spread by the golden angle at alternating lightness.
function assignColours(services) {
  const names = [...new Set(services)].sort();
  const out = new Map();
  const taken = new Set();
  let extra = 0;
  for (const name of names) {
    if (taken.size < PALETTE.length) {
      let i = nameHash(name) % PALETTE.length;
      while (taken.has(i)) i = (i + 1) % PALETTE.length;
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

if (typeof module === 'object' && module.exports) module.exports = { PALETTE, assignColours };
