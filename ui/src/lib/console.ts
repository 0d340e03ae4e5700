// The Console and Files tabs' byte handling and paths, apart from the components so they are
// tested on their own.

/** Bytes of base64 text (the agent's output, as the backend passes it on unchanged). */
export function base64ToBytes(text: string): Uint8Array {
  const raw = atob(text);
  const bytes = new Uint8Array(raw.length);
  for (let i = 0; i < raw.length; i++) bytes[i] = raw.charCodeAt(i);
  return bytes;
}

/** Base64 of bytes (an upload), built in slices so a large file does not overflow the stack. */
export function bytesToBase64(bytes: Uint8Array): string {
  const SLICE = 0x8000;
  let raw = '';
  for (let i = 0; i < bytes.length; i += SLICE) raw += String.fromCharCode(...bytes.subarray(i, i + SLICE));
  return btoa(raw);
}

/** Who may open which console: the game console (attach) is for operators and admins, a
 * shell for admins (the relay may open it to operators; it refuses otherwise anyway). */
export function consoleKinds(role: string | undefined | null): ('attach' | 'shell')[] {
  if (role === 'admin') return ['attach', 'shell'];
  if (role === 'operator') return ['attach'];
  return [];
}

/** A container path joined with a name, normalised ("/a/" + "b" = "/a/b"). */
export function joinPath(dir: string, name: string): string {
  return `${dir.replace(/\/+$/, '')}/${name}`.replace(/\/{2,}/g, '/') || '/';
}

/** The directory above (the root's is the root). */
export function parentPath(path: string): string {
  const trimmed = path.replace(/\/+$/, '');
  const cut = trimmed.lastIndexOf('/');
  return cut <= 0 ? '/' : trimmed.slice(0, cut);
}

/** Breadcrumbs: each directory on the way, with its full path. */
export function crumbs(path: string): { name: string; path: string }[] {
  const parts = path.split('/').filter(Boolean);
  return [{ name: '/', path: '/' }, ...parts.map((name, i) => ({ name, path: '/' + parts.slice(0, i + 1).join('/') }))];
}

/** A new directory's or an upload's name: one path component, no slashes or dot-names. */
export function nameError(name: string): string | null {
  const n = name.trim();
  if (!n) return 'Enter a name.';
  if (n.includes('/') || n === '.' || n === '..') return 'A name may not contain "/" or be "." or "..".';
  if (/[\u0000-\u001f]/.test(n)) return 'A name may not contain control characters.';
  return null;
}

/** The largest upload the app sends (the agent may limit it further). */
export const MAX_UPLOAD_BYTES = 64 * 1024 * 1024;

/** A chosen or dropped file's bytes (FileReader: supported everywhere the app and its tests run). */
export function readBytes(file: Blob): Promise<Uint8Array> {
  return new Promise((resolve, reject) => {
    const reader = new FileReader();
    reader.onload = () => resolve(new Uint8Array(reader.result as ArrayBuffer));
    reader.onerror = () => reject(reader.error ?? new Error('the file could not be read'));
    reader.readAsArrayBuffer(file);
  });
}
