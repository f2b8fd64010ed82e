//! Where the model lives: the files of a model directory, and the default place to look for one.

use std::path::{Path, PathBuf};

use crate::EmbedError;

/// Environment variable that names the all-MiniLM-L6-v2 directory.
pub const MODEL_DIR_ENV: &str = "ATTUNE_MODEL_DIR";

/// The model's folder name under `shared/models`.
const MODEL_NAME: &str = "all-MiniLM-L6-v2";

/// The model directory to use when none is configured explicitly.
///
/// 1. `ATTUNE_MODEL_DIR` when set and not empty, whether or not it exists, so that a wrong setting surfaces as a
///    [`EmbedError::ModelDirNotFound`] naming it instead of being silently replaced by another model.
/// 2. `shared/models/all-MiniLM-L6-v2` in the current directory or any of its ancestors; from the workspace root
///    this finds `../shared/models/all-MiniLM-L6-v2`.
/// 3. `../shared/models/all-MiniLM-L6-v2` relative to the workspace this crate was built in.
///
/// Returns `None` when none of these exists.
pub fn default_model_dir() -> Option<PathBuf> {
    if let Some(configured) = std::env::var_os(MODEL_DIR_ENV).filter(|value| !value.is_empty()) {
        return Some(PathBuf::from(configured));
    }
    let from_current_dir = std::env::current_dir().ok().and_then(|dir| find_in_ancestors(&dir));
    from_current_dir.or_else(|| find_in_ancestors(&build_workspace_root()))
}

/// The workspace root at build time (this crate lives in `<root>/crates/attune-text`).
fn build_workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join("..")
}

fn find_in_ancestors(start: &Path) -> Option<PathBuf> {
    start.ancestors().map(|dir| dir.join("shared").join("models").join(MODEL_NAME)).find(|candidate| candidate.is_dir())
}

/// The files of a sentence-transformers BERT model directory, checked to exist.
#[derive(Debug, Clone)]
pub(crate) struct ModelFiles {
    pub weights: PathBuf,
    pub tokenizer: PathBuf,
    pub config: PathBuf,
    /// `sentence_bert_config.json` (max_seq_length); optional, the model's default applies without it.
    pub sentence_config: Option<PathBuf>,
}

impl ModelFiles {
    pub fn locate(dir: &Path) -> Result<Self, EmbedError> {
        if !dir.is_dir() {
            return Err(EmbedError::ModelDirNotFound { path: dir.to_path_buf() });
        }
        let required = |name: &str| {
            let path = dir.join(name);
            if path.is_file() { Ok(path) } else { Err(EmbedError::MissingFile { path }) }
        };
        let sentence_config = dir.join("sentence_bert_config.json");
        Ok(Self {
            weights: required("model.safetensors")?,
            tokenizer: required("tokenizer.json")?,
            config: required("config.json")?,
            sentence_config: sentence_config.is_file().then_some(sentence_config),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_shared_models_beside_an_ancestor() {
        let root = tempfile::tempdir().expect("temp dir");
        let model = root.path().join("shared/models").join(MODEL_NAME);
        let workspace_subdir = root.path().join("main/crates/attune-text");
        std::fs::create_dir_all(&model).expect("model dir");
        std::fs::create_dir_all(&workspace_subdir).expect("workspace dir");
        assert_eq!(find_in_ancestors(&workspace_subdir), Some(model));
    }

    #[test]
    fn an_empty_directory_adds_no_model_of_its_own() {
        // The machine may have a `shared/models` above the temp dir (CI clones into /tmp with shared beside it),
        // so compare with what the parent finds instead of expecting nothing at all.
        let root = tempfile::tempdir().expect("temp dir");
        let nested = root.path().join("a/b");
        std::fs::create_dir_all(&nested).expect("nested dir");
        let from_parent = find_in_ancestors(root.path().parent().expect("temp dir has a parent"));
        assert_eq!(find_in_ancestors(&nested), from_parent);
        assert!(from_parent.is_none_or(|found| !found.starts_with(root.path())));
    }

    #[test]
    fn locating_files_names_the_missing_one() {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::write(dir.path().join("model.safetensors"), b"").expect("write");
        let error = ModelFiles::locate(dir.path()).expect_err("tokenizer.json is missing");
        assert!(matches!(error, EmbedError::MissingFile { path } if path.ends_with("tokenizer.json")));
    }
}
