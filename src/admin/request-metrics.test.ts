import assert from "node:assert/strict";
import { test } from "node:test";
import { Metrics } from "./metrics.js";

const line = (text: string, series: string) => {
  const found = text.split("\n").find((l) => l.startsWith(`${series} `));
  return found === undefined ? undefined : Number(found.slice(series.length + 1));
};

test("requests, durations and in-flight counts come out of prom-client's registry as its own metrics would", async () => {
  const m = new Metrics();
  m.exchangeStarted("a");
  m.exchangeStarted("a");
  m.exchangeEnded("a");
  m.observe("a", "/a", 200, 0.0005);
  m.observe("a", "/a", 200, 0.02);
  m.observe("a", "/a", 502, 45);
  m.observe("", "", 404, 0.0001);
  const text = await m.registry.metrics();
  assert.equal(line(text, 'portico_requests_total{plugin="a",route="/a",status="200"}'), 2);
  assert.equal(line(text, 'portico_requests_total{plugin="a",route="/a",status="502"}'), 1);
  assert.equal(line(text, 'portico_requests_total{plugin="",route="",status="404"}'), 1);
  // Buckets are cumulative; 45 s is over the last bound and counts in +Inf only.
  assert.equal(line(text, 'portico_request_duration_seconds_bucket{le="0.001",plugin="a",route="/a"}'), 1);
  assert.equal(line(text, 'portico_request_duration_seconds_bucket{le="0.025",plugin="a",route="/a"}'), 2);
  assert.equal(line(text, 'portico_request_duration_seconds_bucket{le="30",plugin="a",route="/a"}'), 2);
  assert.equal(line(text, 'portico_request_duration_seconds_bucket{le="+Inf",plugin="a",route="/a"}'), 3);
  assert.equal(line(text, 'portico_request_duration_seconds_count{plugin="a",route="/a"}'), 3);
  assert.ok(Math.abs((line(text, 'portico_request_duration_seconds_sum{plugin="a",route="/a"}') ?? 0) - 45.0205) < 1e-9);
  assert.equal(line(text, 'portico_requests_in_flight{plugin="a"}'), 1);
  assert.match(text, /^# TYPE portico_request_duration_seconds histogram$/m);
  assert.match(text, /^# TYPE portico_requests_total counter$/m);
  assert.match(text, /^# TYPE portico_requests_in_flight gauge$/m);
});
