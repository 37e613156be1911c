/**
 * The largest count in [0, max] for which `fits` holds, given that it holds for every count below
 * one that fits (fewer records never make a message longer). Binary search: O(log max) encodings.
 * Returns 0 when nothing fits; the caller checks 0 itself.
 */
export function fitCount(max: number, fits: (count: number) => boolean): number {
  if (!Number.isSafeInteger(max) || max < 0)
    throw new Error(`fitCount: max must be a non-negative integer, got ${max}`);
  if (fits(max)) return max;
  let low = 0; // fits, or 0
  let high = max; // does not fit
  while (high - low > 1) {
    const middle = low + Math.floor((high - low) / 2);
    if (fits(middle)) low = middle;
    else high = middle;
  }
  return low;
}
