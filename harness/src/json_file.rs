//! Small JSON record files (a cached kernel's `package.json`, a root filesystem's stamp):
//! read and written whole, with the file's path in every error.

use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde::Serialize;

/// Why a record file could not be read or written.
#[derive(Debug, thiserror::Error)]
pub(crate) enum JsonFileError {
    /// The file cannot be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The file is not JSON of the expected shape.
    #[error("{path}: {source}")]
    Json {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: serde_json::Error,
    },
}

/// Read the record in `path`.
pub(crate) fn read<T: DeserializeOwned>(path: &Path) -> Result<T, JsonFileError> {
    let text = std::fs::read_to_string(path).map_err(|source| JsonFileError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    serde_json::from_str(&text).map_err(|source| JsonFileError::Json {
        path: path.to_path_buf(),
        source,
    })
}

/// Write `record` to `path` as pretty JSON with a final newline (replacing any).
pub(crate) fn write<T: Serialize>(path: &Path, record: &T) -> Result<(), JsonFileError> {
    let text = serde_json::to_string_pretty(record).map_err(|source| JsonFileError::Json {
        path: path.to_path_buf(),
        source,
    })?;
    std::fs::write(path, text + "\n").map_err(|source| JsonFileError::Io {
        path: path.to_path_buf(),
        source,
    })
}
