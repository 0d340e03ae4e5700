// The Files tab's text editor, apart from the component so it is tested on its own: which files
// it opens, how their bytes become text and back with the encoding kept (UTF-8 with or without
// a byte order mark, LF, CRLF or CR line endings as they were), and whether the file changed on
// the server since it was opened.
import { formatBytes, formatTime } from './detail';

/** The largest file the editor opens; larger ones are offered for download only. */
export const MAX_EDIT_BYTES = 1024 * 1024;

/** How the file ends its lines: one way throughout, or `mixed` (then kept byte for byte). */
export type Eol = 'lf' | 'crlf' | 'cr' | 'mixed';

/** What saving must put back as it was. */
export interface TextFormat {
  /** The file starts with the UTF-8 byte order mark (EF BB BF). */
  bom: boolean;
  eol: Eol;
}

export type Decoded = { ok: true; text: string; format: TextFormat } | { ok: false; reason: string };

const BOM = [0xef, 0xbb, 0xbf];

/** Why a listed entry cannot be opened in the editor, or null when it can. */
export function editRefusal(entry: { kind: string; size: number | null }): string | null {
  if (entry.kind !== 'file') return 'Only regular files open in the editor.';
  if ((entry.size ?? 0) > MAX_EDIT_BYTES)
    return `This file is ${formatBytes(entry.size ?? 0)}, over the editor's limit of 1 MiB: download it instead.`;
  return null;
}

/** The line endings of `text`: the one kind it uses, `lf` when it has none, else `mixed`. */
export function detectEol(text: string): Eol {
  const count = (re: RegExp) => (text.match(re) ?? []).length;
  const crlf = count(/\r\n/g);
  const cr = count(/\r/g) - crlf;
  const lf = count(/\n/g) - crlf;
  const kinds = [crlf > 0, cr > 0, lf > 0].filter(Boolean).length;
  if (kinds > 1) return 'mixed';
  if (crlf > 0) return 'crlf';
  if (cr > 0) return 'cr';
  return 'lf';
}

/** A file's bytes as text for the editor, or why the editor refuses it (binary, not UTF-8). */
export function decodeText(bytes: Uint8Array): Decoded {
  if (bytes.length > MAX_EDIT_BYTES)
    return { ok: false, reason: `This file is ${formatBytes(bytes.length)}, over the editor's limit of 1 MiB: download it instead.` };
  if ((bytes[0] === 0xff && bytes[1] === 0xfe) || (bytes[0] === 0xfe && bytes[1] === 0xff))
    return { ok: false, reason: 'This file is UTF-16 text, and the editor keeps only UTF-8 as it was: download it to edit it on this computer.' };
  const bom = BOM.every((b, i) => bytes[i] === b);
  const body = bom ? bytes.subarray(3) : bytes;
  if (body.includes(0))
    return { ok: false, reason: 'This file looks binary (it has NUL bytes), so it does not open in the editor: download it instead.' };
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(body);
  } catch {
    return {
      ok: false,
      reason:
        'This file is not UTF-8 text (perhaps Latin-1 or Windows-1252), and saving it from the editor would change its bytes: download it to edit it on this computer.',
    };
  }
  return { ok: true, text, format: { bom, eol: detectEol(text) } };
}

/** The text the editor shows: one `\n` per line break, except for a file of mixed line endings,
 * whose `\r`s stay in the text (the editor then breaks lines at `\n` only, see
 * {@link lineSeparator}) so that it is saved byte for byte as it was. */
export function editorText(text: string, format: TextFormat): string {
  return format.eol === 'mixed' ? text : text.replace(/\r\n?/g, '\n');
}

/** The editor's line separator: `\n` alone for mixed files; otherwise the default (any). */
export function lineSeparator(format: TextFormat): string | undefined {
  return format.eol === 'mixed' ? '\n' : undefined;
}

/** The bytes to save for the editor's text (its lines joined by `\n`), in the file's format. */
export function encodeText(text: string, format: TextFormat): Uint8Array {
  const eol = format.eol === 'crlf' ? '\r\n' : format.eol === 'cr' ? '\r' : '\n';
  const joined = eol === '\n' ? text : text.replace(/\n/g, eol);
  const body = new TextEncoder().encode(joined);
  if (!format.bom) return body;
  const out = new Uint8Array(body.length + 3);
  out.set(BOM, 0);
  out.set(body, 3);
  return out;
}

/** A plain description of the format, for the editor's status line. */
export function describeFormat(format: TextFormat): string {
  const eol = { lf: 'LF', crlf: 'CRLF (Windows)', cr: 'CR', mixed: 'mixed (kept as they are)' }[format.eol];
  return `UTF-8${format.bom ? ' with BOM' : ''}, ${eol} line endings`;
}

/** A file as the editor saw it on the server: what it read at open, or what it last wrote. */
export interface Version {
  size: number;
  mtime: number | null;
  /** The bytes, base64: equal text is equal bytes. */
  data: string;
}

/** What is on the server right before a save. */
export type Current = { kind: 'file'; version: Version } | { kind: 'gone' } | { kind: 'too-large' };

/** Null when the server's file is still the one opened (same bytes; a touched file with the same
 * bytes is no conflict), else a sentence saying what changed and what the user can do. */
export function serverChange(path: string, opened: Version, now: Current): string | null {
  if (now.kind === 'gone')
    return `${path} was deleted on the server since you opened it. Overwrite writes your text as a new file; Reload is not possible.`;
  if (now.kind === 'too-large')
    return `${path} was changed on the server since you opened it and is now over 1 MiB. Overwrite replaces it with your text; Reload is not possible (download it to see it).`;
  const v = now.version;
  if (v.data === opened.data) return null;
  const when = v.mtime != null ? `, modified ${formatTime(new Date(v.mtime * 1000).toISOString())}` : '';
  const size = v.size !== opened.size ? ` (now ${formatBytes(v.size)}, was ${formatBytes(opened.size)}${when})` : ` (${formatBytes(v.size)}${when})`;
  return `${path} was changed on the server since you opened it${size}. Reload to see the server's version (your changes here are dropped), or Overwrite to replace it with yours.`;
}
