export const NAME_PATTERN = /^[a-zA-Z0-9._-]+$/;
export const MAX_NAME_LENGTH = 253;
/** Teleport's label key characters; Kubernetes' lengths: a name part of 63 after an optional 253-character prefix. */
const LABEL_KEY_PATTERN = /^[a-zA-Z/.0-9_:*-]+$/;
export const MAX_LABEL_VALUE_LENGTH = 256;
export const MAX_LABELS = 100;

/**
 * Why a resource name is refused, or undefined. Teleport's characters, plus: it starts with a
 * letter or digit (no ".", "..", or "-rf" that later reads as a path or a flag), and at most 253.
 */
export function nameProblem(name: string): string | undefined {
  if (!NAME_PATTERN.test(name)) return 'names may contain only letters, digits, ".", "_" and "-"';
  if (!/^[a-zA-Z0-9]/.test(name)) return 'names must start with a letter or a digit';
  if (name.length > MAX_NAME_LENGTH) return `names are at most ${MAX_NAME_LENGTH} characters (this one has ${name.length})`;
  return undefined;
}

export function labelKeyProblem(key: string): string | undefined {
  if (!LABEL_KEY_PATTERN.test(key)) return `label key "${printable(key)}" may contain only letters, digits and / . _ : * -`;
  const slash = key.lastIndexOf('/');
  const [prefix, name] = slash < 0 ? ['', key] : [key.slice(0, slash), key.slice(slash + 1)];
  if (name.length === 0 || name.length > 63) return `label key "${printable(key)}" needs a name part of 1 to 63 characters after its prefix`;
  if (prefix.length > 253) return `label key "${printable(key)}" has a prefix longer than 253 characters`;
  return undefined;
}

export function labelValueProblem(key: string, value: string): string | undefined {
  if (value.length > MAX_LABEL_VALUE_LENGTH) return `label ${printable(key)} has a value of ${value.length} characters; at most ${MAX_LABEL_VALUE_LENGTH}`;
  if (/[\u0000-\u001f\u007f]/.test(value)) return `label ${printable(key)} has a control character (such as a newline) in its value`;
  return undefined;
}

/** Every problem with a set of labels, for create -f and --labels. */
export function labelsProblems(labels: Record<string, string>): string[] {
  const entries = Object.entries(labels);
  const problems = entries.flatMap(([k, v]) => [labelKeyProblem(k), labelValueProblem(k, v)].filter((p): p is string => p !== undefined));
  if (entries.length > MAX_LABELS) problems.push(`${entries.length} labels; at most ${MAX_LABELS}`);
  return problems;
}

function printable(text: string): string {
  const shown = text.length > 40 ? `${text.slice(0, 40)}...` : text;
  return JSON.stringify(shown).slice(1, -1);
}

export interface Metadata {
  name: string;
  description?: string;
  labels?: Record<string, string>;
  expires?: string;
  revision?: number;
}

export interface Resource<Spec = unknown> {
  kind: string;
  version: string;
  metadata: Metadata;
  spec: Spec;
}

export function resourceKey(kind: string, name: string): string {
  return `/resources/${kind}/${name}`;
}

export function kindPrefix(kind: string): string {
  return `/resources/${kind}/`;
}
