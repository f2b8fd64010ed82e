//! Named tensors from `model.safetensors`, taken out one by one with their shapes checked.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};

use crate::EmbedError;

/// The tensors of a safetensors file, in f32 on the CPU.
pub(crate) struct WeightStore {
    path: PathBuf,
    tensors: HashMap<String, Tensor>,
}

impl WeightStore {
    pub fn load(path: &Path) -> Result<Self, EmbedError> {
        let tensors = candle_core::safetensors::load(path, &Device::Cpu)
            .map_err(|e| EmbedError::BadWeights { path: path.to_path_buf(), reason: e.to_string() })?;
        Ok(Self { path: path.to_path_buf(), tensors })
    }

    /// The f32 tensor called `name` (or `bert.<name>`, as some exports prefix it), which must have `shape`.
    pub fn get(&self, name: &str, shape: &[usize]) -> Result<Tensor, EmbedError> {
        let tensor = self
            .tensors
            .get(name)
            .or_else(|| self.tensors.get(&format!("bert.{name}")))
            .ok_or_else(|| self.error(format!("tensor {name} not found")))?;
        if tensor.dims() != shape {
            return Err(self.error(format!("tensor {name} has shape {:?}, expected {shape:?}", tensor.dims())));
        }
        tensor.to_dtype(DType::F32).map_err(|e| self.error(format!("tensor {name}: {e}")))
    }

    pub fn error(&self, reason: String) -> EmbedError {
        EmbedError::BadWeights { path: self.path.clone(), reason }
    }
}
