// The file editor's logic: which files open, encodings and line endings kept byte for byte, and
// the "changed on the server since you opened it" check.
import { describe, expect, it } from 'vitest';
import { bytesToBase64 } from './console';
import {
  MAX_EDIT_BYTES,
  decodeText,
  describeFormat,
  detectEol,
  editRefusal,
  editorText,
  encodeText,
  lineSeparator,
  serverChange,
  type Version,
} from './editor';

const utf8 = (s: string) => new TextEncoder().encode(s);
const withBom = (s: string) => new Uint8Array([0xef, 0xbb, 0xbf, ...utf8(s)]);

/** Opens bytes as the editor does, applies `edit` to its text (lines joined by `\n`, as the
 * editor's document gives them), and returns the bytes it would save. */
function roundTrip(bytes: Uint8Array, edit: (text: string) => string = (t) => t): Uint8Array {
  const decoded = decodeText(bytes);
  if (!decoded.ok) throw new Error(decoded.reason);
  const shown = editorText(decoded.text, decoded.format);
  // What the editor holds: split at its line separator, joined by `\n`.
  const sep = lineSeparator(decoded.format);
  const doc = sep ? shown.split(sep).join('\n') : shown.split(/\r\n|\r|\n/).join('\n');
  return encodeText(edit(doc), decoded.format);
}

describe('file editor', () => {
  it('opens regular files up to 1 MiB and offers larger ones for download', () => {
    expect(editRefusal({ kind: 'file', size: 1043 })).toBeNull();
    expect(editRefusal({ kind: 'file', size: MAX_EDIT_BYTES })).toBeNull();
    expect(editRefusal({ kind: 'file', size: MAX_EDIT_BYTES + 1 })).toContain('download it instead');
    expect(editRefusal({ kind: 'dir', size: 0 })).not.toBeNull();
    expect(editRefusal({ kind: 'symlink', size: 12 })).not.toBeNull();
  });

  it('tells line endings apart', () => {
    expect(detectEol('a\nb\n')).toBe('lf');
    expect(detectEol('a\r\nb\r\n')).toBe('crlf');
    expect(detectEol('a\rb\r')).toBe('cr');
    expect(detectEol('one line')).toBe('lf');
    expect(detectEol('a\r\nb\n')).toBe('mixed');
    expect(detectEol('a\rb\n')).toBe('mixed');
  });

  it('saves an unchanged file byte for byte, whatever its BOM and line endings', () => {
    const files = [
      utf8('maxplayers=8\npublic=true\n'),
      utf8('[ServerTest]\r\nPVP=true\r\nPauseEmpty=true'),
      utf8('old mac\rline\r'),
      utf8('mixed\r\nendings\nkept\r\n'),
      withBom('PublicName=Zomboid ☕\r\nMaxPlayers=32\r\n'),
      withBom(''),
      utf8(''),
      utf8('naïve — ünïcödé 🧟\n'),
    ];
    for (const bytes of files) expect(roundTrip(bytes)).toEqual(bytes);
  });

  it('keeps CRLF and the BOM on an edited line and on new lines', () => {
    const bytes = withBom('PVP=true\r\nMaxPlayers=32\r\n');
    const edited = roundTrip(bytes, (t) => t.replace('MaxPlayers=32', 'MaxPlayers=64\nPauseEmpty=true'));
    expect(edited).toEqual(withBom('PVP=true\r\nMaxPlayers=64\r\nPauseEmpty=true\r\n'));
  });

  it('keeps each line ending of a mixed file, the edited line included', () => {
    const bytes = utf8('a=1\r\nb=2\nc=3\r\n');
    expect(roundTrip(bytes, (t) => t.replace('b=2', 'b=20'))).toEqual(utf8('a=1\r\nb=20\nc=3\r\n'));
  });

  it('refuses binary, UTF-16 and non-UTF-8 files with a sentence', () => {
    const binary = decodeText(new Uint8Array([0x7f, 0x45, 0x4c, 0x46, 0, 1, 2]));
    expect(binary).toMatchObject({ ok: false });
    expect(!binary.ok && binary.reason).toContain('binary');
    const latin1 = decodeText(new Uint8Array([0x63, 0x61, 0x66, 0xe9, 0x0a])); // "café\n" in Latin-1
    expect(!latin1.ok && latin1.reason).toContain('not UTF-8');
    const utf16 = decodeText(new Uint8Array([0xff, 0xfe, 0x61, 0x00]));
    expect(!utf16.ok && utf16.reason).toContain('UTF-16');
    const big = decodeText(new Uint8Array(MAX_EDIT_BYTES + 1).fill(0x61));
    expect(!big.ok && big.reason).toContain('1 MiB');
  });

  it('describes the format kept', () => {
    expect(describeFormat({ bom: true, eol: 'crlf' })).toBe('UTF-8 with BOM, CRLF (Windows) line endings');
    expect(describeFormat({ bom: false, eol: 'lf' })).toBe('UTF-8, LF line endings');
  });

  it('sees a file changed, grown or deleted on the server since it was opened', () => {
    const version = (text: string, mtime = 1_764_680_000): Version => ({
      size: utf8(text).length,
      mtime,
      data: bytesToBase64(utf8(text)),
    });
    const opened = version('maxplayers=8\n');
    // The same bytes, even touched later: no conflict.
    expect(serverChange('/srv/a.ini', opened, { kind: 'file', version: opened })).toBeNull();
    expect(serverChange('/srv/a.ini', opened, { kind: 'file', version: version('maxplayers=8\n', 1_764_690_000) })).toBeNull();
    // Same size, other bytes (an edit within the same second is still seen).
    const same = serverChange('/srv/a.ini', opened, { kind: 'file', version: version('maxplayers=9\n') });
    expect(same).toContain('/srv/a.ini was changed on the server since you opened it');
    expect(same).toContain('Reload');
    expect(same).toContain('Overwrite');
    const grown = serverChange('/srv/a.ini', opened, { kind: 'file', version: version('maxplayers=10\n') });
    expect(grown).toContain('now 14 B, was 13 B');
    expect(serverChange('/srv/a.ini', opened, { kind: 'gone' })).toContain('was deleted on the server');
    expect(serverChange('/srv/a.ini', opened, { kind: 'too-large' })).toContain('over 1 MiB');
  });
});
