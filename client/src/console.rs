//! Console sessions and file transfers as the client library hands them out: a stream of the
//! agent's frames (output, grants, the end) plus `stream.input` frames the other way, sent in
//! order. Flow control is the caller's: grant output as it is consumed, send input only within
//! the agent's grants (see docs/PROTOCOL.md, "Flow control").

use zedops_protocol::{
    AttachRequest, ClientRequest, ConsoleOutput, ExecRequest, FileChunk, FileGetRequest,
    FilePutRequest, StreamInput,
};

use crate::client::Client;
use crate::error::ClientError;
use crate::streams::StreamReader;

/// An exec or attach session.
pub type ConsoleSession = StreamReader<ConsoleOutput>;
/// A download or upload.
pub type FileTransfer = StreamReader<FileChunk>;

impl Client {
    /// Starts `container.exec` (its `agentId` names the agent).
    pub async fn exec(&self, request: &ExecRequest) -> Result<ConsoleSession, ClientError> {
        self.open_stream(ClientRequest::ContainerExec(request.clone()))
            .await
    }

    /// Starts `container.attach`.
    pub async fn attach(&self, request: &AttachRequest) -> Result<ConsoleSession, ClientError> {
        self.open_stream(ClientRequest::ContainerAttach(request.clone()))
            .await
    }

    /// Starts `file.get`.
    pub async fn file_get(&self, request: &FileGetRequest) -> Result<FileTransfer, ClientError> {
        self.open_stream(ClientRequest::FileGet(request.clone()))
            .await
    }

    /// Starts `file.put`; the bytes follow with [`StreamReader::input`].
    pub async fn file_put(&self, request: &FilePutRequest) -> Result<FileTransfer, ClientError> {
        self.open_stream(ClientRequest::FilePut(request.clone()))
            .await
    }
}

impl<T> StreamReader<T> {
    /// Sends `input` (its `inbox` is set to this stream's) after every input sent before it.
    pub async fn input(&self, mut input: StreamInput) -> Result<(), ClientError> {
        input.inbox = self.inbox.clone();
        self.shared
            .send_ordered(&ClientRequest::StreamInput(input))
            .await
    }

    /// Grants the agent `bytes` more output: what the caller has consumed (written out), so
    /// the agent may send that much again.
    pub async fn grant(&self, bytes: usize) -> Result<(), ClientError> {
        self.input(StreamInput {
            grant: u32::try_from(bytes).unwrap_or(u32::MAX),
            ..Default::default()
        })
        .await
    }
}
