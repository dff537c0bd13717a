#!/usr/bin/env node
// What one timer per exchange costs (issue 7's "timer wheel" idea): setTimeout + clearTimeout,
// a million times, with the timer list emptied each time and with it kept non-empty.
//   node bench/experiments/timers.mjs
const N = 1_000_000;
const noop = () => {};
const perOp = (fn) => {
  const t0 = performance.now();
  fn();
  return (((performance.now() - t0) * 1000) / N).toFixed(3);
};
console.log(
  `setTimeout + clearTimeout, list emptied each time: ${perOp(() => {
    for (let i = 0; i < N; i++) clearTimeout(setTimeout(noop, 30_000));
  })} µs`,
);
const keep = setTimeout(noop, 30_000);
console.log(
  `setTimeout + clearTimeout, list kept non-empty: ${perOp(() => {
    for (let i = 0; i < N; i++) clearTimeout(setTimeout(noop, 30_000));
  })} µs`,
);
clearTimeout(keep);
