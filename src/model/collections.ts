/** The value under `key`, created with `make` and stored first if absent. */
export function getOrCreate<K, V>(map: Map<K, V>, key: K, make: () => V): V {
  let value = map.get(key);
  if (value === undefined) {
    value = make();
    map.set(key, value);
  }
  return value;
}

/** One empty list for every field that has nothing: an empty array costs 32 bytes apiece. */
export const NONE: readonly never[] = Object.freeze([]);

/**
 * `list` as kept for long: NONE when empty, else an exact-size copy. An array built by push
 * keeps spare room (V8 gives a one-item array 17 slots: 128 bytes for nothing).
 */
export function keptList<T>(list: readonly T[]): readonly T[] {
  return list.length === 0 ? NONE : list.slice();
}

/**
 * `list.filter(keep)`, sharing where it can: `list` itself when every item is kept, NONE
 * when none is. For lists that are never mutated (snapshot fields are readonly).
 */
export function filterShared<T>(list: readonly T[], keep: (item: T) => boolean): readonly T[] {
  let kept = 0;
  for (const item of list) if (keep(item)) kept++;
  if (kept === list.length) return list;
  return kept === 0 ? NONE : list.filter(keep);
}
