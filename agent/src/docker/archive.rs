//! Files of a container through Docker's archive API (`GET`/`PUT /containers/{id}/archive`),
//! which needs no shell or tools in the image: downloads arrive as a tar stream read here header
//! by header, uploads are a tar stream of one entry written here as the bytes come.
//! Removing has no archive call; it runs `rm` in the container.

use std::pin::Pin;

use bollard::query_parameters::{DownloadFromContainerOptions, UploadToContainerOptions};
use bytes::Bytes;
use futures_util::{Stream, StreamExt, TryStreamExt};
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::sync::mpsc;
use tokio_util::io::StreamReader;
use zedops_protocol::{ErrorCode, FileEntry, FileKind};

use super::{DockerClient, DockerError, bare, chain};

/// Longest PAX or GNU long-name record accepted in a download (names are at most 4 KiB).
const MAX_EXTENSION_BYTES: u64 = 64 * 1024;
/// How long an upload (of up to the size limit, at the client's pace) may take.
const UPLOAD_TIMEOUT_SECS: u64 = 6 * 60 * 60;

/// A tar stream from Docker, read one entry at a time.
pub struct ArchiveReader {
    reader: Pin<Box<dyn AsyncRead + Send>>,
    /// Data bytes of the current entry not read yet.
    remaining: u64,
    /// Padding after the current entry's data.
    padding: u64,
    /// Owner of the last entry read.
    owner: Owner,
}

/// Numeric owner of an entry in a container (its own user ids, as `stat -c %u:%g` there shows).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Owner {
    pub uid: u64,
    pub gid: u64,
}

impl Owner {
    pub const ROOT: Owner = Owner { uid: 0, gid: 0 };
}

impl DockerClient {
    /// The archive of `path` in `container`: the path itself first, then (for a directory)
    /// everything under it, depth first. `FILE_NOT_FOUND` when nothing is there.
    pub async fn archive(&self, container: &str, path: &str) -> Result<ArchiveReader, DockerError> {
        let docker = self.engine().await?;
        let options = DownloadFromContainerOptions {
            path: path.to_string(),
        };
        let mut stream = docker.download_from_container(bare(container), Some(options));
        // Docker answers an unknown container or path with an error before any byte; read the
        // first piece to tell them apart from a stream that starts.
        let first = match stream.next().await {
            Some(Ok(first)) => first,
            Some(Err(err)) => {
                return Err(archive_error(err, container, path, ErrorCode::FileFailed));
            }
            None => Bytes::new(),
        };
        let rest = stream.map_err(|e| std::io::Error::other(chain(&e)));
        let all = futures_util::stream::iter([Ok(first)]).chain(rest);
        Ok(ArchiveReader {
            reader: Box::pin(StreamReader::new(all)),
            remaining: 0,
            padding: 0,
            owner: Owner::ROOT,
        })
    }

    /// What is at `path` (its archive's first entry), or `None` when nothing is.
    pub async fn stat(
        &self,
        container: &str,
        path: &str,
    ) -> Result<Option<FileEntry>, DockerError> {
        Ok(self
            .stat_owned(container, path)
            .await?
            .map(|(entry, _)| entry))
    }

    /// [`stat`](Self::stat) with the entry's owner (the archive's header has it; the stat
    /// header of `HEAD .../archive` has not).
    pub async fn stat_owned(
        &self,
        container: &str,
        path: &str,
    ) -> Result<Option<(FileEntry, Owner)>, DockerError> {
        match self.archive(container, path).await {
            Ok(mut archive) => Ok(archive
                .next_entry()
                .await?
                .map(|entry| (entry, archive.owner()))),
            Err(err) if err.code() == ErrorCode::FileNotFound => Ok(None),
            Err(err) => Err(err),
        }
    }

    /// Extracts the tar stream `tar` into the directory `dir` of `container`.
    pub async fn extract(
        &self,
        container: &str,
        dir: &str,
        tar: mpsc::Receiver<Bytes>,
    ) -> Result<(), DockerError> {
        let docker = self.engine().await?;
        // The engine connection's request timeout is one minute; an upload goes at the
        // client's pace, so it gets a connection of its own with a longer one.
        let docker = docker.with_timeout(std::time::Duration::from_secs(UPLOAD_TIMEOUT_SECS));
        let options = UploadToContainerOptions {
            path: dir.to_string(),
            // A file never replaces a directory, nor a directory a file.
            no_overwrite_dir_non_dir: Some("true".to_string()),
            ..Default::default()
        };
        let body = tokio_stream_from(tar);
        docker
            .upload_to_container(bare(container), Some(options), bollard::body_stream(body))
            .await
            .map_err(|err| archive_error(err, container, dir, ErrorCode::FileFailed))
    }

    /// Removes `path` (recursively) with `rm` in the container, or busybox's when the image has
    /// no `rm` of its own. The archive API has no removal.
    pub async fn remove_path(&self, container: &str, path: &str) -> Result<(), DockerError> {
        for cmd in [
            &["rm", "-rf", "--", path][..],
            &["busybox", "rm", "-rf", "--", path][..],
        ] {
            match self.run_quiet(container, cmd).await? {
                Some(0) => return Ok(()),
                // Not found (126) or not runnable (127): try the next way.
                Some(126 | 127) => continue,
                code => {
                    return Err(DockerError::new(
                        ErrorCode::FileFailed,
                        format!("rm exited with {code:?} removing {path}"),
                    ));
                }
            }
        }
        Err(DockerError::new(
            ErrorCode::FileFailed,
            "the image has neither rm nor busybox; removing files needs one of them",
        ))
    }
}

fn tokio_stream_from(mut rx: mpsc::Receiver<Bytes>) -> impl Stream<Item = Bytes> + Send + 'static {
    futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

/// Docker's message with the server's storage paths (`/var/lib/docker/overlay2/<id>/merged/…`)
/// shown as the paths inside the container they are: the person reading it knows the
/// container's paths, and the server's layout is none of their business.
fn in_container_terms(message: &str) -> String {
    message
        .split(' ')
        .map(|word| match storage_root_end(word) {
            Some(at) => {
                let inside = &word[at + "/merged".len()..];
                if inside.is_empty() || inside.starts_with(':') {
                    format!("/{inside}")
                } else {
                    inside.to_string()
                }
            }
            _ => word.to_string(),
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Where a storage driver's mount of a container (`…/overlay2/<id>/merged`, fuse-overlayfs
/// alike) ends in `word`, when it starts with one.
fn storage_root_end(word: &str) -> Option<usize> {
    if !word.starts_with('/') {
        return None;
    }
    let at = word.find("/merged")?;
    let end = at + "/merged".len();
    let whole_segment = matches!(word.as_bytes().get(end), None | Some(b'/') | Some(b':'));
    (whole_segment && word[..at].contains("overlay")).then_some(at)
}

/// Docker answers 404 for an unknown container and for a missing path alike; its message tells.
fn archive_error(
    err: bollard::errors::Error,
    container: &str,
    path: &str,
    failure: ErrorCode,
) -> DockerError {
    match &err {
        bollard::errors::Error::DockerResponseServerError {
            status_code: 404,
            message,
        } if message.contains("No such container") => DockerError::new(
            ErrorCode::ContainerNotFound,
            format!("no container named or with id {container} on this server"),
        ),
        bollard::errors::Error::DockerResponseServerError {
            status_code: 404, ..
        } => DockerError::new(
            ErrorCode::FileNotFound,
            format!("nothing at {path} in {container}"),
        ),
        bollard::errors::Error::DockerResponseServerError { message, .. } => {
            DockerError::new(failure, in_container_terms(message))
        }
        _ => DockerError::new(failure, chain(&err)),
    }
}

impl ArchiveReader {
    /// The next entry's header (its data is skipped unless read with [`read`](Self::read)
    /// first); `None` at the end of the archive.
    pub async fn next_entry(&mut self) -> Result<Option<FileEntry>, DockerError> {
        self.skip(self.remaining + self.padding).await?;
        self.remaining = 0;
        self.padding = 0;
        let mut long_name: Option<String> = None;
        let mut long_link: Option<String> = None;
        // Ids too large for the header come in PAX records.
        let (mut pax_uid, mut pax_gid): (Option<u64>, Option<u64>) = (None, None);
        loop {
            let mut block = [0u8; 512];
            if !self.read_block(&mut block).await? {
                return Ok(None);
            }
            if block.iter().all(|b| *b == 0) {
                return Ok(None);
            }
            let header = tar::Header::from_byte_slice(&block);
            let size = header.entry_size().map_err(|e| corrupt(&e.to_string()))?;
            let kind = header.entry_type();
            if kind.is_pax_local_extensions() || kind.is_gnu_longname() || kind.is_gnu_longlink() {
                if size > MAX_EXTENSION_BYTES {
                    return Err(corrupt("a tar extension record over 64 KiB"));
                }
                let mut record = vec![0u8; size as usize];
                self.read_exact(&mut record).await?;
                self.skip(padding_of(size)).await?;
                if kind.is_pax_local_extensions() {
                    for (key, value) in pax_records(&record) {
                        match key {
                            "path" => long_name = Some(value.to_string()),
                            "linkpath" => long_link = Some(value.to_string()),
                            "uid" => pax_uid = value.parse().ok(),
                            "gid" => pax_gid = value.parse().ok(),
                            _ => {}
                        }
                    }
                } else {
                    let text = String::from_utf8_lossy(&record)
                        .trim_end_matches('\0')
                        .to_string();
                    if kind.is_gnu_longname() {
                        long_name = Some(text);
                    } else {
                        long_link = Some(text);
                    }
                }
                continue;
            }
            if kind.is_pax_global_extensions() {
                self.skip(size + padding_of(size)).await?;
                continue;
            }
            let name = long_name
                .unwrap_or_else(|| String::from_utf8_lossy(&header.path_bytes()).into_owned());
            let link = long_link.or_else(|| {
                header
                    .link_name_bytes()
                    .map(|l| String::from_utf8_lossy(&l).into_owned())
            });
            let file_kind = if kind.is_file() || kind.is_contiguous() {
                FileKind::File
            } else if kind.is_dir() {
                FileKind::Dir
            } else if kind.is_symlink() {
                FileKind::Symlink
            } else {
                FileKind::Other
            };
            self.owner = Owner {
                uid: pax_uid.unwrap_or_else(|| header.uid().unwrap_or(0)),
                gid: pax_gid.unwrap_or_else(|| header.gid().unwrap_or(0)),
            };
            // Hard links carry no data; everything else's size is its data.
            self.remaining = size;
            self.padding = padding_of(size);
            return Ok(Some(FileEntry {
                name,
                kind: file_kind,
                size: if file_kind == FileKind::Dir { 0 } else { size },
                mode: header.mode().unwrap_or(0) & 0o7777,
                mtime: header.mtime().unwrap_or(0) as i64,
                link_target: if file_kind == FileKind::Symlink {
                    link
                } else {
                    None
                },
            }));
        }
    }

    /// Owner of the entry [`next_entry`](Self::next_entry) returned last.
    pub fn owner(&self) -> Owner {
        self.owner
    }

    /// Data bytes of the current entry not read yet.
    pub fn remaining(&self) -> u64 {
        self.remaining
    }

    /// Reads data of the current entry into `buf`; 0 at its end.
    pub async fn read(&mut self, buf: &mut [u8]) -> Result<usize, DockerError> {
        let want = (buf.len() as u64).min(self.remaining) as usize;
        if want == 0 {
            return Ok(0);
        }
        let n = self
            .read_more(&mut buf[..want], "the archive ended inside a file")
            .await?;
        self.remaining -= n as u64;
        Ok(n)
    }

    async fn read_block(&mut self, block: &mut [u8; 512]) -> Result<bool, DockerError> {
        let mut filled = 0;
        while filled < block.len() {
            let n = self.read_some(&mut block[filled..]).await?;
            if n == 0 {
                // The end of the stream between entries is the end of the archive.
                return if filled == 0 {
                    Ok(false)
                } else {
                    Err(corrupt("the archive ended inside a header"))
                };
            }
            filled += n;
        }
        Ok(true)
    }

    async fn read_exact(&mut self, buf: &mut [u8]) -> Result<(), DockerError> {
        self.reader
            .read_exact(buf)
            .await
            .map(|_| ())
            .map_err(|e| read_failed(&e))
    }

    async fn skip(&mut self, mut bytes: u64) -> Result<(), DockerError> {
        let mut sink = [0u8; 16 * 1024];
        while bytes > 0 {
            let want = (sink.len() as u64).min(bytes) as usize;
            let n = self
                .read_more(&mut sink[..want], "the archive ended early")
                .await?;
            bytes -= n as u64;
        }
        Ok(())
    }

    /// Reads what is there into `buf`, up to its length; 0 at the end of the stream.
    async fn read_some(&mut self, buf: &mut [u8]) -> Result<usize, DockerError> {
        self.reader.read(buf).await.map_err(|e| read_failed(&e))
    }

    /// Like [`read_some`](Self::read_some) where more must come: the stream ending there is a
    /// cut archive (`ended` says where).
    async fn read_more(&mut self, buf: &mut [u8], ended: &str) -> Result<usize, DockerError> {
        match self.read_some(buf).await? {
            0 => Err(corrupt(ended)),
            n => Ok(n),
        }
    }
}

fn padding_of(size: u64) -> u64 {
    (512 - size % 512) % 512
}

/// `"<len> <key>=<value>\n"` records of a PAX header.
fn pax_records(record: &[u8]) -> Vec<(&str, &str)> {
    let text = std::str::from_utf8(record).unwrap_or("");
    let mut out = Vec::new();
    let mut rest = text;
    while let Some((len, _)) = rest.split_once(' ') {
        let Ok(len) = len.parse::<usize>() else { break };
        if len == 0 || len > rest.len() {
            break;
        }
        let line = &rest[..len];
        rest = &rest[len..];
        if let Some((_, kv)) = line.trim_end_matches('\n').split_once(' ')
            && let Some((k, v)) = kv.split_once('=')
        {
            out.push((k, v));
        }
    }
    out
}

fn corrupt(what: &str) -> DockerError {
    DockerError::new(
        ErrorCode::FileFailed,
        format!("Docker sent an unreadable archive: {what}"),
    )
}

fn read_failed(err: &std::io::Error) -> DockerError {
    DockerError::new(
        ErrorCode::FileFailed,
        format!("reading the archive from Docker failed: {err}"),
    )
}

/// The header block(s) of a tar entry: a GNU long-name record first when the name does not fit
/// the header's 100 bytes. Docker's extraction gives the entry the header's owner (ids of the
/// container's own users).
pub fn tar_header(
    name: &str,
    kind: FileKind,
    size: u64,
    mode: u32,
    mtime: u64,
    owner: Owner,
) -> Vec<u8> {
    let mut out = Vec::with_capacity(1536);
    if name.len() > 99 {
        let mut long = tar::Header::new_gnu();
        long.set_entry_type(tar::EntryType::GNULongName);
        let record_len = name.len() as u64 + 1;
        long.set_size(record_len);
        long.as_gnu_mut().expect("gnu header").name[..13].copy_from_slice(b"././@LongLink");
        long.set_mode(0o644);
        long.set_cksum();
        out.extend_from_slice(long.as_bytes());
        out.extend_from_slice(name.as_bytes());
        out.push(0);
        out.resize(out.len() + padding_of(record_len) as usize, 0);
    }
    let mut header = tar::Header::new_gnu();
    let short = &name.as_bytes()[..name.len().min(99)];
    header.as_gnu_mut().expect("gnu header").name[..short.len()].copy_from_slice(short);
    header.set_entry_type(match kind {
        FileKind::Dir => tar::EntryType::Directory,
        _ => tar::EntryType::Regular,
    });
    header.set_size(if kind == FileKind::Dir { 0 } else { size });
    header.set_mode(mode);
    header.set_mtime(mtime);
    // The GNU header stores ids too large for its octal fields in base-256.
    header.set_uid(owner.uid);
    header.set_gid(owner.gid);
    header.set_cksum();
    out.extend_from_slice(header.as_bytes());
    out
}

/// What ends a tar stream after an entry of `size` bytes: its padding and two empty blocks.
pub fn tar_trailer(size: u64) -> Vec<u8> {
    vec![0u8; padding_of(size) as usize + 1024]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_messages_name_paths_inside_the_container() {
        assert_eq!(
            in_container_terms(
                "lstat /var/lib/docker/overlay2/ae5ed975e1/merged/tmp/rand.bin: not a directory"
            ),
            "lstat /tmp/rand.bin: not a directory"
        );
        assert_eq!(
            in_container_terms("open /srv/docker/fuse-overlayfs/x/merged: denied"),
            "open /: denied"
        );
        // A container's own paths are left alone.
        for message in ["no /data/merged.txt here", "no /srv/merged/x here"] {
            assert_eq!(in_container_terms(message), message);
        }
    }

    #[tokio::test]
    async fn reads_back_what_it_writes_with_long_names() {
        let long = "n".repeat(150);
        let steam = Owner {
            uid: 1000,
            gid: 1000,
        };
        let mut tar = tar_header("dir", FileKind::Dir, 0, 0o755, 7, Owner::ROOT);
        tar.extend(tar_header(&long, FileKind::File, 3, 0o600, 8, steam));
        tar.extend(b"abc");
        tar.extend(tar_trailer(3));
        let stream = futures_util::stream::iter([Ok::<_, std::io::Error>(Bytes::from(tar))]);
        let mut reader = ArchiveReader {
            reader: Box::pin(StreamReader::new(stream)),
            remaining: 0,
            padding: 0,
            owner: Owner::ROOT,
        };
        let dir = reader.next_entry().await.unwrap().unwrap();
        assert_eq!(reader.owner(), Owner::ROOT);
        assert_eq!(
            (dir.name.as_str(), dir.kind, dir.mode, dir.mtime),
            ("dir", FileKind::Dir, 0o755, 7)
        );
        let file = reader.next_entry().await.unwrap().unwrap();
        assert_eq!(
            (file.name.as_str(), file.size, file.mode),
            (long.as_str(), 3, 0o600)
        );
        assert_eq!(reader.owner(), steam);
        let mut buf = [0u8; 10];
        let n = reader.read(&mut buf).await.unwrap();
        assert_eq!(&buf[..n], b"abc");
        assert_eq!(reader.read(&mut buf).await.unwrap(), 0);
        assert!(reader.next_entry().await.unwrap().is_none());
    }

    #[test]
    fn pax_records_are_parsed() {
        let rec = b"28 path=some/very/long/name\n19 linkpath=target\n";
        assert_eq!(
            pax_records(rec),
            [("path", "some/very/long/name"), ("linkpath", "target")]
        );
    }
}
