//! Tensors in GPU storage buffers (f32, or f16 and bf16 packed two to a word), with uploads from
//! f32 or native 16-bit host data and async and blocking downloads.

use crate::context::Context;
use crate::dtype::{self, DType};
use crate::error::{Error, Result};

/// A row-major tensor in a GPU storage buffer, of one [`DType`]. Cloning shares the buffer.
///
/// 16-bit tensors are packed two elements to a 32-bit word (element `2w` in the low half of word
/// `w`); a tensor with an odd element count has half a word of padding after its last element,
/// which the library's kernels never write.
#[derive(Debug, Clone)]
pub struct Tensor {
    buffer: wgpu::Buffer,
    /// Byte offset of element 0 in `buffer` (a multiple of the device's storage offset alignment).
    offset: u64,
    shape: Vec<usize>,
    dtype: DType,
}

pub(crate) const TENSOR_USAGE: wgpu::BufferUsages = wgpu::BufferUsages::STORAGE
    .union(wgpu::BufferUsages::COPY_SRC)
    .union(wgpu::BufferUsages::COPY_DST);

fn numel(shape: &[usize]) -> usize {
    shape.iter().product()
}

fn check_size(ctx: &Context, what: &str, shape: &[usize], dtype: DType) -> Result<u64> {
    let bytes = dtype.storage_bytes(numel(shape));
    let limit = ctx.limits().max_buffer_size;
    if bytes > limit {
        return Err(Error::AllocationTooLarge {
            what: what.to_string(),
            shape: shape.to_vec(),
            bytes,
            limit,
        });
    }
    Ok(bytes)
}

fn check_len(what: &str, shape: &[usize], got: usize) -> Result<()> {
    if got != numel(shape) {
        return Err(Error::DataLength {
            what: what.into(),
            shape: shape.to_vec(),
            expected: numel(shape),
            got,
        });
    }
    Ok(())
}

/// The multi-dimensional index of flat element `flat` of `shape`.
fn unflatten(shape: &[usize], flat: usize) -> Vec<usize> {
    let mut index = vec![0; shape.len()];
    let mut rest = flat;
    for (d, &n) in shape.iter().enumerate().rev() {
        index[d] = rest % n.max(1);
        rest /= n.max(1);
    }
    index
}

impl Tensor {
    /// Uploads f32 `data` (row-major) with the given shape, as an f32 tensor.
    pub fn from_data(ctx: &Context, shape: &[usize], data: &[f32]) -> Result<Tensor> {
        Self::from_f32(ctx, shape, data, DType::F32)
    }

    /// Uploads f32 `data` (row-major) as a tensor of `dtype`, each value rounded to the nearest
    /// value of the type (ties to even). A finite value beyond the type's range (f16: magnitude
    /// above 65504) is `Error::NotRepresentable`, naming its index; NaN and ±inf are kept as they
    /// are (the attention call's `check_finite` scan finds them).
    pub fn from_f32(ctx: &Context, shape: &[usize], data: &[f32], dtype: DType) -> Result<Tensor> {
        let what = format!("Tensor::from_f32 ({dtype})");
        check_len(&what, shape, data.len())?;
        check_size(ctx, &what, shape, dtype)?;
        let bytes = dtype::encode(dtype, data).map_err(|e| Error::NotRepresentable {
            what,
            index: unflatten(shape, e.index),
            value: e.value,
            dtype,
        })?;
        Self::upload(ctx, shape, dtype, &bytes)
    }

    /// Uploads native f16 data as an f16 tensor (no conversion).
    pub fn from_f16(ctx: &Context, shape: &[usize], data: &[half::f16]) -> Result<Tensor> {
        Self::from_bits(ctx, shape, bytemuck::cast_slice(data), DType::F16)
    }

    /// Uploads native bf16 data as a bf16 tensor (no conversion).
    pub fn from_bf16(ctx: &Context, shape: &[usize], data: &[half::bf16]) -> Result<Tensor> {
        Self::from_bits(ctx, shape, bytemuck::cast_slice(data), DType::BF16)
    }

    /// Uploads raw 16-bit patterns as a tensor of `dtype` (F16 or BF16; F32 is
    /// `Error::DTypeMismatch`).
    pub fn from_bits(ctx: &Context, shape: &[usize], bits: &[u16], dtype: DType) -> Result<Tensor> {
        let what = format!("Tensor::from_bits ({dtype})");
        if dtype == DType::F32 {
            return Err(Error::DTypeMismatch {
                what,
                expected: "f16 or bf16".into(),
                got: dtype,
            });
        }
        check_len(&what, shape, bits.len())?;
        check_size(ctx, &what, shape, dtype)?;
        Self::upload(ctx, shape, dtype, &dtype::pack_bits(bits))
    }

    fn upload(ctx: &Context, shape: &[usize], dtype: DType, bytes: &[u8]) -> Result<Tensor> {
        // wgpu rejects zero-sized bindings; a tensor with a zero dimension keeps a 4-byte buffer
        // and is rejected by the attention call's own checks with a clear error.
        let padded = [0u8; 4];
        let bytes: &[u8] = if bytes.is_empty() { &padded } else { bytes };
        let buffer = ctx.scoped("tensor upload", || {
            ctx.buffer_with_data("wgpu-attention tensor", TENSOR_USAGE, bytes)
        })?;
        Ok(Tensor {
            buffer,
            offset: 0,
            shape: shape.to_vec(),
            dtype,
        })
    }

    /// An f32 tensor with every element set to `value` (NaN makes a good poison for outputs).
    pub fn filled(ctx: &Context, shape: &[usize], value: f32) -> Result<Tensor> {
        Self::filled_as(ctx, shape, value, DType::F32)
    }

    /// A tensor of `dtype` with every element set to `value`, rounded to the type.
    pub fn filled_as(ctx: &Context, shape: &[usize], value: f32, dtype: DType) -> Result<Tensor> {
        check_size(ctx, "Tensor::filled_as", shape, dtype)?;
        Self::from_f32(ctx, shape, &vec![value; numel(shape)], dtype)
    }

    /// An uninitialised tensor, for outputs and scratch.
    pub(crate) fn empty(ctx: &Context, shape: &[usize], dtype: DType) -> Result<Tensor> {
        let bytes = check_size(ctx, "output", shape, dtype)?.max(4);
        let buffer = ctx.scoped("output allocation", || {
            ctx.device().create_buffer(&wgpu::BufferDescriptor {
                label: Some("wgpu-attention output"),
                size: bytes,
                usage: TENSOR_USAGE,
                mapped_at_creation: false,
            })
        })?;
        Ok(Tensor {
            buffer,
            offset: 0,
            shape: shape.to_vec(),
            dtype,
        })
    }

    /// Wraps a caller's buffer of f32 values (it needs STORAGE usage, and COPY_SRC to be read back).
    pub fn from_buffer(buffer: wgpu::Buffer, shape: &[usize]) -> Result<Tensor> {
        Self::from_buffer_as(buffer, shape, DType::F32)
    }

    /// Wraps a caller's buffer of `dtype` values (16-bit ones packed, see [`Tensor`]); the buffer
    /// must hold the whole words the elements occupy.
    pub fn from_buffer_as(buffer: wgpu::Buffer, shape: &[usize], dtype: DType) -> Result<Tensor> {
        let need = dtype.storage_bytes(numel(shape));
        if buffer.size() < need {
            return Err(Error::DataLength {
                what: format!("Tensor::from_buffer_as ({dtype})"),
                shape: shape.to_vec(),
                expected: numel(shape),
                got: (buffer.size() / dtype.size() as u64) as usize,
            });
        }
        Ok(Tensor {
            buffer,
            offset: 0,
            shape: shape.to_vec(),
            dtype,
        })
    }

    /// A view of a caller's buffer of f32 values: the tensor's elements start `offset` bytes in
    /// (a multiple of the device's `min_storage_buffer_offset_alignment`, usually 256). Kernels
    /// bind exactly `offset .. offset + bytes`, so the rest of the buffer (other tensors, a KV
    /// cache's unused tail) is never read or written. Inputs of one call may share a buffer; an
    /// output needs a buffer no other tensor of the call uses, since wgpu forbids a buffer bound
    /// read-write in a dispatch alongside another binding of it (the call then returns
    /// `Error::Gpu`).
    pub fn view(
        ctx: &Context,
        buffer: wgpu::Buffer,
        offset: u64,
        shape: &[usize],
    ) -> Result<Tensor> {
        Self::view_as(ctx, buffer, offset, shape, DType::F32)
    }

    /// [`Tensor::view`] for a tensor of `dtype`. A 16-bit view binds the whole words its
    /// elements occupy; with an odd element count the last word's upper half is not the
    /// tensor's, and the library's kernels leave it as it was.
    pub fn view_as(
        ctx: &Context,
        buffer: wgpu::Buffer,
        offset: u64,
        shape: &[usize],
        dtype: DType,
    ) -> Result<Tensor> {
        let align = ctx.limits().min_storage_buffer_offset_alignment as u64;
        let need = dtype.storage_bytes(numel(shape));
        if offset % align != 0 || buffer.size() < offset.saturating_add(need) {
            return Err(Error::DataLength {
                what: format!(
                    "Tensor::view_as ({dtype}) at byte offset {offset} (must be a multiple of {align}) of a {}-byte buffer",
                    buffer.size()
                ),
                shape: shape.to_vec(),
                expected: numel(shape),
                got: (buffer.size().saturating_sub(offset) / dtype.size() as u64) as usize,
            });
        }
        Ok(Tensor {
            buffer,
            offset,
            shape: shape.to_vec(),
            dtype,
        })
    }

    /// Byte offset of the first element in [`Tensor::buffer`].
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// The tensor's shape.
    pub fn shape(&self) -> &[usize] {
        &self.shape
    }
    /// The element type.
    pub fn dtype(&self) -> DType {
        self.dtype
    }
    /// Number of elements.
    pub fn numel(&self) -> usize {
        numel(&self.shape)
    }
    /// Size of the elements in bytes (`numel · dtype.size()`).
    pub fn bytes(&self) -> u64 {
        (self.numel() * self.dtype.size()) as u64
    }
    /// Bytes the tensor occupies in its buffer, and that kernels bind: [`Tensor::bytes`] rounded
    /// up to whole 4-byte words.
    pub fn storage_bytes(&self) -> u64 {
        self.dtype.storage_bytes(self.numel())
    }
    /// The buffer holding it (at [`Tensor::offset`]).
    pub fn buffer(&self) -> &wgpu::Buffer {
        &self.buffer
    }

    /// Downloads the raw storage (map_async, completion through a futures-intrusive channel).
    async fn read_storage(&self, ctx: &Context) -> Result<Vec<u8>> {
        let bytes = self.storage_bytes();
        if self.numel() == 0 {
            return Ok(Vec::new());
        }
        let staging = ctx.scoped("readback", || {
            let staging = ctx.device().create_buffer(&wgpu::BufferDescriptor {
                label: Some("wgpu-attention readback"),
                size: bytes,
                usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            });
            let mut enc = ctx
                .device()
                .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                    label: Some("wgpu-attention readback"),
                });
            enc.copy_buffer_to_buffer(&self.buffer, self.offset, &staging, 0, bytes);
            ctx.queue().submit([enc.finish()]);
            staging
        })?;
        let (tx, rx) = futures_intrusive::channel::shared::oneshot_channel();
        staging.slice(..).map_async(wgpu::MapMode::Read, move |r| {
            let _ = tx.send(r);
        });
        ctx.wait_idle(None)?;
        match rx.receive().await {
            Some(Ok(())) => {}
            Some(Err(e)) => {
                ctx.check_alive()?;
                return Err(Error::Map(e.to_string()));
            }
            None => {
                ctx.check_alive()?;
                return Err(Error::Map("map callback dropped".into()));
            }
        }
        let out = {
            let view = staging
                .slice(..)
                .get_mapped_range()
                .map_err(|e| Error::Map(e.to_string()))?;
            view.to_vec()
        };
        staging.unmap();
        Ok(out)
    }

    /// Downloads the tensor as f32 values (16-bit values convert exactly).
    pub async fn read(&self, ctx: &Context) -> Result<Vec<f32>> {
        let bytes = self.read_storage(ctx).await?;
        Ok(dtype::decode(self.dtype, &bytes, self.numel()))
    }

    /// Blocking form of [`Tensor::read`].
    pub fn read_blocking(&self, ctx: &Context) -> Result<Vec<f32>> {
        pollster::block_on(self.read(ctx))
    }

    /// Downloads a 16-bit tensor's raw patterns (`Error::DTypeMismatch` for an f32 tensor).
    pub async fn read_bits(&self, ctx: &Context) -> Result<Vec<u16>> {
        if self.dtype == DType::F32 {
            return Err(Error::DTypeMismatch {
                what: "Tensor::read_bits".into(),
                expected: "f16 or bf16".into(),
                got: self.dtype,
            });
        }
        let bytes = self.read_storage(ctx).await?;
        Ok(dtype::unpack_bits(&bytes, self.numel()))
    }

    /// Blocking download of an f16 tensor as `half::f16` (`Error::DTypeMismatch` otherwise).
    pub fn read_f16_blocking(&self, ctx: &Context) -> Result<Vec<half::f16>> {
        self.expect_dtype("Tensor::read_f16_blocking", DType::F16)?;
        let bits = pollster::block_on(self.read_bits(ctx))?;
        Ok(bits.into_iter().map(half::f16::from_bits).collect())
    }

    /// Blocking download of a bf16 tensor as `half::bf16` (`Error::DTypeMismatch` otherwise).
    pub fn read_bf16_blocking(&self, ctx: &Context) -> Result<Vec<half::bf16>> {
        self.expect_dtype("Tensor::read_bf16_blocking", DType::BF16)?;
        let bits = pollster::block_on(self.read_bits(ctx))?;
        Ok(bits.into_iter().map(half::bf16::from_bits).collect())
    }

    fn expect_dtype(&self, what: &str, dtype: DType) -> Result<()> {
        if self.dtype != dtype {
            return Err(Error::DTypeMismatch {
                what: what.into(),
                expected: dtype.to_string(),
                got: self.dtype,
            });
        }
        Ok(())
    }

    /// Reads the tensor back and returns the first non-finite element (NaN or ±inf) as its
    /// multi-dimensional index and value, or `None` when every element is finite.
    pub async fn find_non_finite(&self, ctx: &Context) -> Result<Option<(Vec<usize>, f32)>> {
        let data = self.read(ctx).await?;
        Ok(data
            .iter()
            .position(|x| !x.is_finite())
            .map(|flat| (unflatten(&self.shape, flat), data[flat])))
    }
}
