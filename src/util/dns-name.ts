// What a DNS name must be to be written on the wire (RFC 1035 §2.3.4, §3.1): labels of
// 1–63 bytes, at most 255 bytes in all — 253 characters in text form without the trailing
// dot — one byte per character. One definition for the encoder, which refuses anything
// else, and for the readers of topology files, which skip such names when they read them.

export const MAX_NAME_LENGTH = 253;
export const MAX_LABEL_LENGTH = 63;

const ONE_BYTE_PER_CHARACTER = /^[^\u0100-\uffff]*$/;

/** Why `name` (text form, no trailing dot; "" is the root) cannot be written, or null. */
export function nameProblem(name: string): string | null {
  if (name.length > MAX_NAME_LENGTH) return `is longer than ${MAX_NAME_LENGTH} bytes (${name.length})`;
  if (name === '') return null;
  for (const label of name.split('.')) {
    if (label.length === 0) return 'has an empty label';
    if (label.length > MAX_LABEL_LENGTH) return `has a label longer than ${MAX_LABEL_LENGTH} bytes (${label.length})`;
  }
  // Anything wider would be written as some other byte.
  if (!ONE_BYTE_PER_CHARACTER.test(name)) return 'has a character that is not one byte';
  return null;
}

/** Why `label` cannot be one label of a name (a dot would split it), or null. */
export function labelProblem(label: string): string | null {
  if (label.includes('.')) return 'contains a dot';
  return label === '' ? 'is empty' : nameProblem(label);
}

/**
 * Why `zone` cannot own answers, or null: a negative answer carries its SOA, whose
 * responsible mailbox `hostmaster.<zone>` must be a writable name too.
 */
export function zoneProblem(zone: string): string | null {
  const own = nameProblem(zone);
  if (own) return own;
  return nameProblem(`hostmaster.${zone}`) ? `leaves no room for its SOA's hostmaster.${zone.slice(0, 20)}… (a zone is at most ${MAX_NAME_LENGTH - 11} bytes)` : null;
}
