//! The relay's deploy requests carried out: `container.create` (policy gate, pull when missing
//! with progress, create, start), `image.pull`, and the one-answer `container.remove`,
//! `image.list` and `image.remove`. Streamed answers are [`DeployFrame`]s ending with `end`.

use tokio::sync::{mpsc, oneshot};
use zedops_protocol::{
    ContainerCreate, ContainerRemoveRequest, ContainerRemoved, DeployFrame, Envelope, ErrorCode,
    ErrorReply, ImageListResponse, ImagePullRequest, ImageRemoveRequest, PullProgress, StreamEnd,
};

use crate::docker::{DockerClient, DockerError};
use crate::outbox::send;
use crate::policy::LocalPolicy;

/// Progress snapshots waiting to be framed; the puller drops snapshots beyond this rather than
/// wait, so a slow relay never slows a pull down.
const PROGRESS_QUEUE: usize = 4;

fn failed(err: DockerError) -> StreamEnd {
    StreamEnd {
        error_code: Some(err.code()),
        reason: err.to_string(),
    }
}

/// Carries out `container.create`, sending progress and result frames to `inbox`; returns how
/// it ended (the caller sends that as the last frame).
pub async fn create(
    docker: &DockerClient,
    policy: &LocalPolicy,
    request: ContainerCreate,
    inbox: &str,
    tx: &mpsc::Sender<String>,
    cancel: oneshot::Receiver<()>,
) -> StreamEnd {
    if let Err(denied) = policy.check(&request.spec) {
        tracing::warn!(container = %request.name, field = %denied.field, "refused a container by local policy");
        return StreamEnd {
            error_code: Some(denied.code()),
            reason: denied.to_string(),
        };
    }
    let request = &request;
    let work = async {
        // Before a pull that may take minutes, and whether or not the container is started.
        docker.check_name_free(&request.name).await?;
        docker.check_host_ports(&request.spec).await?;
        let image = request.spec.image.as_str();
        let pulled = with_progress(inbox, tx, |progress| async move {
            docker.ensure_image(image, &progress).await
        })
        .await?;
        if pulled.pulled {
            let _ = send(tx, inbox, &DeployFrame::pulled(pulled)).await;
        }
        docker.create(request).await
    };
    let created = tokio::select! {
        _ = cancel => return StreamEnd::ended("cancelled"),
        created = work => created,
    };
    match created {
        Ok(created) => {
            let reason = if created.started {
                "created and started"
            } else {
                "created"
            };
            let _ = send(tx, inbox, &DeployFrame::created(created)).await;
            StreamEnd::ended(reason)
        }
        Err(err) => {
            tracing::warn!(container = %request.name, %err, "creating a container failed");
            failed(err)
        }
    }
}

/// Carries out `image.pull` like [`create`] (progress frames, then `pulled`).
pub async fn pull(
    docker: &DockerClient,
    request: ImagePullRequest,
    inbox: &str,
    tx: &mpsc::Sender<String>,
    cancel: oneshot::Receiver<()>,
) -> StreamEnd {
    let image = request.image.as_str();
    let work = with_progress(inbox, tx, |progress| async move {
        docker.pull(image, &progress).await
    });
    let pulled = tokio::select! {
        _ = cancel => return StreamEnd::ended("cancelled"),
        pulled = work => pulled,
    };
    match pulled {
        Ok(pulled) => {
            let _ = send(tx, inbox, &DeployFrame::pulled(pulled)).await;
            StreamEnd::ended("pulled")
        }
        Err(err) => {
            tracing::warn!(image = %request.image, %err, "pulling an image failed");
            failed(err)
        }
    }
}

/// Runs `work` with a progress sender whose snapshots become frames to `inbox` while it runs.
async fn with_progress<T, F, Fut>(
    inbox: &str,
    tx: &mpsc::Sender<String>,
    work: F,
) -> Result<T, DockerError>
where
    F: FnOnce(mpsc::Sender<PullProgress>) -> Fut,
    Fut: std::future::Future<Output = Result<T, DockerError>>,
{
    let (progress_tx, mut progress_rx) = mpsc::channel(PROGRESS_QUEUE);
    let forward = async {
        while let Some(progress) = progress_rx.recv().await {
            if !send(tx, inbox, &DeployFrame::progress(progress)).await {
                break;
            }
        }
    };
    // `work` owns the only sender: when it ends, the forwarder drains and ends too.
    let (result, ()) = tokio::join!(work(progress_tx), forward);
    result
}

/// The answer frame to `container.remove`.
pub async fn remove(docker: &DockerClient, request: ContainerRemoveRequest, inbox: &str) -> String {
    match docker
        .remove(&request.container_id, request.force, request.volumes)
        .await
    {
        Ok(id) => Envelope::new(
            inbox,
            ContainerRemoved {
                container_id: id.into(),
                removed: true,
            },
        )
        .to_json(),
        Err(err) => refused(inbox, err, "removing a container failed"),
    }
}

/// The answer frame to `image.list`.
pub async fn images(docker: &DockerClient, inbox: &str) -> String {
    match docker.images().await {
        Ok(images) => {
            let count = images.len();
            Envelope::new(inbox, ImageListResponse { images, count }).to_json()
        }
        Err(err) => refused(inbox, err, "listing images failed"),
    }
}

/// The answer frame to `image.remove`.
pub async fn remove_image(
    docker: &DockerClient,
    request: ImageRemoveRequest,
    inbox: &str,
) -> String {
    match docker.remove_image(&request.image, request.force).await {
        Ok(removed) => Envelope::new(inbox, removed).to_json(),
        Err(err) => refused(inbox, err, "removing an image failed"),
    }
}

fn refused(inbox: &str, err: DockerError, what: &str) -> String {
    if err.code() == ErrorCode::DockerNotAvailable {
        tracing::debug!(%err, "{what}");
    } else {
        tracing::warn!(%err, "{what}");
    }
    Envelope::new(inbox, ErrorReply::from(err)).to_json()
}
