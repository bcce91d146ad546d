/**
 * CLOCK_MONOTONIC in milliseconds (process.hrtime): shared by every process on the machine,
 * so histories written by several client processes merge in real-time order.
 */
export function monotonicNow(): number {
  return Number(process.hrtime.bigint()) / 1e6;
}
