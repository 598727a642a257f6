// A checked read for tests and benches: a value they expect to be there (a child's pid, a
// regex match, a log line, a map entry), or an error naming what was missing — a clear
// failure where a non-null assertion would fail later, on an unrelated property read.

/** `value`, or an error saying that `what` was missing when it is null or undefined. */
export function required<T>(value: T, what: string): NonNullable<T> {
  if (value === null || value === undefined) throw new Error(`expected ${what}, but it is ${String(value)}`);
  return value;
}
