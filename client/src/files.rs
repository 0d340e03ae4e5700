//! A container's files, typed, for the answers that are one frame: list a directory, remove a
//! path, make a directory. Downloads and uploads are streams ([`Client::file_get`],
//! [`Client::file_put`]). The relay checks the role (operator to list, admin to change).

use zedops_protocol::{ClientRequest, FileDone, FileList, FilePathRequest};

use crate::client::Client;
use crate::error::ClientError;

impl Client {
    /// `file.list`: the entries of one directory (operator).
    pub async fn list_files(&self, request: FilePathRequest) -> Result<FileList, ClientError> {
        self.quick_request(ClientRequest::FileList(request)).await
    }

    /// `file.remove`: deletes a file or an empty directory (admin); the answer names it.
    pub async fn remove_file(&self, request: FilePathRequest) -> Result<FileDone, ClientError> {
        self.quick_request(ClientRequest::FileRemove(request)).await
    }

    /// `file.mkdir`: makes a directory (admin); the answer names it.
    pub async fn make_dir(&self, request: FilePathRequest) -> Result<FileDone, ClientError> {
        self.quick_request(ClientRequest::FileMkdir(request)).await
    }
}
