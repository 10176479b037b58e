//! f32 tensors in GPU storage buffers, with async and blocking downloads.

use crate::context::Context;
use crate::error::{Error, Result};

/// A row-major f32 tensor in a GPU storage buffer. Cloning shares the buffer.
#[derive(Debug, Clone)]
pub struct Tensor {
    buffer: wgpu::Buffer,
    /// Byte offset of element 0 in `buffer` (a multiple of the device's storage offset alignment).
    offset: u64,
    shape: Vec<usize>,
}

pub(crate) const TENSOR_USAGE: wgpu::BufferUsages = wgpu::BufferUsages::STORAGE
    .union(wgpu::BufferUsages::COPY_SRC)
    .union(wgpu::BufferUsages::COPY_DST);

fn numel(shape: &[usize]) -> usize {
    shape.iter().product()
}

fn check_size(ctx: &Context, what: &str, shape: &[usize]) -> Result<u64> {
    let bytes = (numel(shape) as u64).saturating_mul(4);
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

impl Tensor {
    /// Uploads `data` (row-major) with the given shape.
    pub fn from_data(ctx: &Context, shape: &[usize], data: &[f32]) -> Result<Tensor> {
        if data.len() != numel(shape) {
            return Err(Error::DataLength {
                what: "Tensor::from_data".into(),
                shape: shape.to_vec(),
                expected: numel(shape),
                got: data.len(),
            });
        }
        check_size(ctx, "Tensor::from_data", shape)?;
        // wgpu rejects zero-sized bindings; a tensor with a zero dimension keeps a 4-byte buffer
        // and is rejected by the attention call's own checks with a clear error.
        let padded;
        let bytes: &[u8] = if data.is_empty() {
            padded = [0f32];
            bytemuck::cast_slice(&padded)
        } else {
            bytemuck::cast_slice(data)
        };
        let buffer = ctx.scoped("tensor upload", || {
            ctx.buffer_with_data("wgpu-attention tensor", TENSOR_USAGE, bytes)
        })?;
        Ok(Tensor {
            buffer,
            offset: 0,
            shape: shape.to_vec(),
        })
    }

    /// A tensor with every element set to `value` (NaN makes a good poison for outputs).
    pub fn filled(ctx: &Context, shape: &[usize], value: f32) -> Result<Tensor> {
        check_size(ctx, "Tensor::filled", shape)?;
        Self::from_data(ctx, shape, &vec![value; numel(shape)])
    }

    /// An uninitialised tensor, for outputs.
    pub(crate) fn empty(ctx: &Context, shape: &[usize]) -> Result<Tensor> {
        let bytes = check_size(ctx, "output", shape)?.max(4);
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
        })
    }

    /// Wraps a caller's buffer of f32 values (it needs STORAGE usage, and COPY_SRC to be read back).
    pub fn from_buffer(buffer: wgpu::Buffer, shape: &[usize]) -> Result<Tensor> {
        let need = numel(shape) as u64 * 4;
        if buffer.size() < need {
            return Err(Error::DataLength {
                what: "Tensor::from_buffer".into(),
                shape: shape.to_vec(),
                expected: numel(shape),
                got: (buffer.size() / 4) as usize,
            });
        }
        Ok(Tensor {
            buffer,
            offset: 0,
            shape: shape.to_vec(),
        })
    }

    /// A view of a caller's buffer: the tensor's elements start `offset` bytes in (a multiple of
    /// the device's `min_storage_buffer_offset_alignment`, usually 256). Kernels bind exactly
    /// `offset .. offset + bytes`, so the rest of the buffer (other tensors, a KV cache's unused
    /// tail) is never read or written. Inputs of one call may share a buffer; an output needs a
    /// buffer no other tensor of the call uses, since wgpu forbids a buffer bound read-write in a
    /// dispatch alongside another binding of it (the call then returns `Error::Gpu`).
    pub fn view(
        ctx: &Context,
        buffer: wgpu::Buffer,
        offset: u64,
        shape: &[usize],
    ) -> Result<Tensor> {
        let align = ctx.limits().min_storage_buffer_offset_alignment as u64;
        let need = numel(shape) as u64 * 4;
        if offset % align != 0 || buffer.size() < offset.saturating_add(need) {
            return Err(Error::DataLength {
                what: format!(
                    "Tensor::view at byte offset {offset} (must be a multiple of {align}) of a {}-byte buffer",
                    buffer.size()
                ),
                shape: shape.to_vec(),
                expected: numel(shape),
                got: (buffer.size().saturating_sub(offset) / 4) as usize,
            });
        }
        Ok(Tensor {
            buffer,
            offset,
            shape: shape.to_vec(),
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
    /// Number of elements.
    pub fn numel(&self) -> usize {
        numel(&self.shape)
    }
    /// Size of the data in bytes.
    pub fn bytes(&self) -> u64 {
        self.numel() as u64 * 4
    }
    /// The buffer holding it (at [`Tensor::offset`]).
    pub fn buffer(&self) -> &wgpu::Buffer {
        &self.buffer
    }

    /// Downloads the tensor (map_async, completion through a futures-intrusive channel).
    pub async fn read(&self, ctx: &Context) -> Result<Vec<f32>> {
        let bytes = self.bytes();
        if bytes == 0 {
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
            bytemuck::cast_slice::<u8, f32>(&view).to_vec()
        };
        staging.unmap();
        Ok(out)
    }

    /// Blocking form of [`Tensor::read`].
    pub fn read_blocking(&self, ctx: &Context) -> Result<Vec<f32>> {
        pollster::block_on(self.read(ctx))
    }

    /// Reads the tensor back and returns the first non-finite element (NaN or ±inf) as its
    /// multi-dimensional index and value, or `None` when every element is finite.
    pub async fn find_non_finite(&self, ctx: &Context) -> Result<Option<(Vec<usize>, f32)>> {
        let data = self.read(ctx).await?;
        Ok(data.iter().position(|x| !x.is_finite()).map(|flat| {
            let mut index = vec![0; self.shape.len()];
            let mut rest = flat;
            for (d, &n) in self.shape.iter().enumerate().rev() {
                index[d] = rest % n.max(1);
                rest /= n.max(1);
            }
            (index, data[flat])
        }))
    }
}
