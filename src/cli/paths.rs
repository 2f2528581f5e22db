//! How paths are shown to the user: relative to the repo root when inside it.

use std::path::Path;

use crate::repo::Repo;

pub fn display_path(repo: &Repo, path: &Path) -> String {
    path.strip_prefix(&repo.root).unwrap_or(path).display().to_string()
}
