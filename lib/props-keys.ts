/**
 * Unknown props are refused at synth, with a suggestion: TypeScript's excess-property check only
 * catches a typo in an object literal written in place, not in a props object built elsewhere
 * (a shared `appConfig`, a spread, plain JavaScript), and a misspelt optional prop is otherwise
 * silently ignored (`alarmEmial` would leave the alarms without a subscriber).
 *
 * Each props interface has ONE list of its keys, typed `KnownKeys<Props>`: the compiler refuses
 * the list when a key of the interface is missing from it or when it names a key the interface
 * lacks. Adding a prop to an interface therefore means adding its key to that one list, and the
 * typechecker says where.
 */

/** Every key of `T`, each mapped to `true`: the one list of a props interface's keys. */
export type KnownKeys<T> = { readonly [K in keyof Required<T>]: true };

/**
 * The problems with `value`'s own keys that `known` does not list, each naming the prop by its
 * path (`where` is the path of `value` itself, '' at the top) and suggesting the nearest known key.
 * A value that is not a plain object (a token, an array, undefined) has no problems here.
 */
export function unknownKeyProblems(
  value: unknown,
  known: Readonly<Record<string, true>>,
  where: string,
  ignore: readonly string[] = [],
): string[] {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return [];
  const names = Object.keys(known);
  const problems: string[] = [];
  for (const key of Object.keys(value)) {
    if (Object.hasOwn(known, key) || ignore.includes(key)) continue;
    const prop = where ? `${where}.${key}` : key;
    const suggestion = didYouMean(key, names);
    problems.push(
      suggestion
        ? `Unknown prop "${prop}": did you mean "${where ? `${where}.` : ''}${suggestion}"?`
        : `Unknown prop "${prop}"; the props${where ? ` of ${where}` : ''} are ${names.join(', ')}.`,
    );
  }
  return problems;
}

/**
 * The candidate nearest to `word` (case-insensitive optimal string alignment distance: insertions,
 * deletions, substitutions and swaps of neighbours each count 1), if it is near enough to be a
 * typo: at most 2 edits, or a third of the word for longer words.
 */
export function didYouMean(word: string, candidates: readonly string[]): string | undefined {
  const limit = Math.max(2, Math.floor(word.length / 3));
  let best: string | undefined;
  let bestDistance = Number.POSITIVE_INFINITY;
  for (const candidate of candidates) {
    const d = editDistance(word.toLowerCase(), candidate.toLowerCase());
    if (d < bestDistance) {
      best = candidate;
      bestDistance = d;
    }
  }
  return bestDistance <= limit ? best : undefined;
}

/** Optimal string alignment distance (Damerau–Levenshtein without repeated edits of a substring). */
export function editDistance(a: string, b: string): number {
  const rows = a.length + 1;
  const cols = b.length + 1;
  const d: number[] = new Array(rows * cols).fill(0);
  const at = (i: number, j: number) => d[i * cols + j] ?? 0;
  for (let i = 0; i < rows; i++) d[i * cols] = i;
  for (let j = 0; j < cols; j++) d[j] = j;
  for (let i = 1; i < rows; i++) {
    for (let j = 1; j < cols; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let value = Math.min(at(i - 1, j) + 1, at(i, j - 1) + 1, at(i - 1, j - 1) + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1])
        value = Math.min(value, at(i - 2, j - 2) + 1);
      d[i * cols + j] = value;
    }
  }
  return at(a.length, b.length);
}
