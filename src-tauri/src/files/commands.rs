//! The file commands: list, download into the Downloads folder, upload, delete, make a
//! directory. Thin wrappers over [`super`], kept here so the files feature stays in one folder.

use tauri::{AppHandle, Manager};

use super::{FileListView, SavedFile};
use crate::error::{AppError, ErrorCode};
use crate::state::client;

/// A directory of a container: directories first, then by name.
#[tauri::command]
#[specta::specta]
pub async fn list_files(
    app: AppHandle,
    agent_id: String,
    container_id: String,
    path: String,
) -> Result<FileListView, AppError> {
    super::list(&client(&app).await?, &agent_id, &container_id, &path).await
}

/// Downloads a container's file into this computer's Downloads folder (`ZEDOPS_DOWNLOAD_DIR`
/// overrides it), under its own name and never overwriting; returns where it was saved.
#[tauri::command]
#[specta::specta]
pub async fn download_file(
    app: AppHandle,
    agent_id: String,
    container_id: String,
    path: String,
) -> Result<SavedFile, AppError> {
    let dir = std::env::var_os("ZEDOPS_DOWNLOAD_DIR")
        .filter(|d| !d.is_empty())
        .map(std::path::PathBuf::from)
        .or_else(|| app.path().download_dir().ok())
        .or_else(|| app.path().home_dir().ok())
        .ok_or_else(|| {
            AppError::new(
                ErrorCode::INVALID_INPUT,
                "This computer has no Downloads folder: set ZEDOPS_DOWNLOAD_DIR to a folder to save into.",
            )
        })?;
    std::fs::create_dir_all(&dir).map_err(|e| {
        AppError::new(
            ErrorCode::INVALID_INPUT,
            format!(
                "Could not use {} ({e}): check that it is a folder you can write to.",
                dir.display()
            ),
        )
    })?;
    super::download(&client(&app).await?, &agent_id, &container_id, &path, &dir).await
}

/// (Admin) Uploads `data` (base64) as the container's file `path`.
#[tauri::command]
#[specta::specta]
pub async fn upload_file(
    app: AppHandle,
    agent_id: String,
    container_id: String,
    path: String,
    data: String,
) -> Result<String, AppError> {
    let bytes = super::decode_base64(
        &data,
        super::MAX_UPLOAD_BYTES,
        "The app uploads files of up to 64 MiB: use `zedops files put` for larger ones.",
    )?;
    super::upload(
        &client(&app).await?,
        &agent_id,
        &container_id,
        &path,
        &bytes,
    )
    .await
}

/// (Admin) Deletes a file or an empty directory; returns the path removed.
#[tauri::command]
#[specta::specta]
pub async fn remove_file(
    app: AppHandle,
    agent_id: String,
    container_id: String,
    path: String,
) -> Result<String, AppError> {
    super::remove(&client(&app).await?, &agent_id, &container_id, &path).await
}

/// (Admin) Makes a directory; returns its path.
#[tauri::command]
#[specta::specta]
pub async fn make_dir(
    app: AppHandle,
    agent_id: String,
    container_id: String,
    path: String,
) -> Result<String, AppError> {
    super::mkdir(&client(&app).await?, &agent_id, &container_id, &path).await
}

/// A text file read whole for the editor (at most 1 MiB; larger ones are refused with a sentence
/// saying to download them): its bytes as base64, size, modification time and mode.
#[tauri::command]
#[specta::specta]
pub async fn open_file_for_edit(
    app: AppHandle,
    agent_id: String,
    container_id: String,
    path: String,
) -> Result<super::OpenedFile, AppError> {
    super::read_for_edit(&client(&app).await?, &agent_id, &container_id, &path).await
}

/// (Admin) Saves the editor's bytes (base64, at most 1 MiB) as the file `path` with the
/// permission bits `mode` it had; returns its new size and modification time.
#[tauri::command]
#[specta::specta]
pub async fn save_edited_file(
    app: AppHandle,
    agent_id: String,
    container_id: String,
    path: String,
    data: String,
    mode: u32,
) -> Result<super::WrittenFile, AppError> {
    let bytes = super::decode_base64(
        &data,
        super::MAX_EDIT_BYTES as usize,
        "The text is over the editor's limit of 1 MiB: upload the file instead.",
    )?;
    super::save_edited(
        &client(&app).await?,
        &agent_id,
        &container_id,
        &path,
        &bytes,
        mode,
    )
    .await
}
