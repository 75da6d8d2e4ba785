//! Moving `rcc_proto::remote` frames and blob bodies over QUIC streams (the codec itself is in rcc-proto).

use rcc_proto::frame::{FrameError, HEADER_LEN, REMOTE};
use rcc_proto::remote::MAX_BLOB;
use serde::de::DeserializeOwned;
use serde::Serialize;

/// A stream failure.
#[derive(Debug, thiserror::Error)]
pub enum WireError {
    /// The frame was malformed, too large or of another version.
    #[error("{0}")]
    Frame(#[from] FrameError),
    /// The stream failed.
    #[error("stream: {0}")]
    Stream(String),
    /// The body was damaged or larger than announced.
    #[error("blob body: {0}")]
    Body(String),
}

fn stream_err(e: impl std::fmt::Display) -> WireError {
    WireError::Stream(e.to_string())
}

/// Reads one frame (payload at most the channel's 1 MiB).
pub async fn read_frame<T: DeserializeOwned>(recv: &mut quinn::RecvStream) -> Result<T, WireError> {
    read_frame_within(recv, REMOTE.max_len).await
}

/// Reads one frame whose payload may take at most `max_len` bytes (the scheduler reads a connection's
/// frames before authentication within a few KiB); a longer one is refused before anything is allocated.
pub async fn read_frame_within<T: DeserializeOwned>(
    recv: &mut quinn::RecvStream,
    max_len: u32,
) -> Result<T, WireError> {
    let mut header = [0u8; HEADER_LEN];
    recv.read_exact(&mut header).await.map_err(stream_err)?;
    let len = REMOTE.check_header(&header)?;
    if len > max_len as usize {
        return Err(WireError::Frame(FrameError::TooLarge(len as u64)));
    }
    let mut payload = vec![0u8; len];
    recv.read_exact(&mut payload).await.map_err(stream_err)?;
    Ok(rcc_proto::frame::decode(&payload)?)
}

/// Writes one frame.
pub async fn write_frame<T: Serialize>(send: &mut quinn::SendStream, msg: &T) -> Result<(), WireError> {
    let bytes = REMOTE.encode(msg)?;
    send.write_all(&bytes).await.map_err(stream_err)
}

/// The most compressed bytes a body of `size` bytes may take (zstd's worst case plus slack).
pub fn compressed_bound(size: u64) -> usize {
    (size + size / 128 + (64 << 10)) as usize
}

/// Writes a blob body (compressed) and ends the stream.
pub async fn write_body(send: &mut quinn::SendStream, data: &[u8]) -> Result<(), WireError> {
    let compressed = zstd::bulk::compress(data, 1).map_err(|e| WireError::Body(e.to_string()))?;
    send.write_all(&compressed).await.map_err(stream_err)?;
    send.finish().map_err(stream_err)
}

/// Writes an already compressed blob body and ends the stream.
pub async fn write_compressed_body(send: &mut quinn::SendStream, compressed: &[u8]) -> Result<(), WireError> {
    send.write_all(compressed).await.map_err(stream_err)?;
    send.finish().map_err(stream_err)
}

/// Reads a compressed body announced as `size` uncompressed bytes chunk by chunk, without decompressing
/// it, and passes each chunk to `to` (a bounded channel: the reader waits for the consumer, so at most
/// the channel's chunks are held). Refused when the body exceeds what `size` bytes can compress to. Ends
/// early, without error, when the consumer stops listening (it has judged the body already).
pub async fn forward_compressed_body(
    recv: &mut quinn::RecvStream,
    size: u64,
    to: &tokio::sync::mpsc::Sender<Vec<u8>>,
) -> Result<(), WireError> {
    let bound = compressed_bound(size);
    let mut received = 0usize;
    while let Some(chunk) = recv.read_chunk(64 << 10, true).await.map_err(|e| WireError::Body(e.to_string()))? {
        received += chunk.bytes.len();
        if received > bound {
            return Err(WireError::Body(format!("more than {bound} compressed bytes for {size}")));
        }
        if to.send(chunk.bytes.to_vec()).await.is_err() {
            return Ok(());
        }
    }
    Ok(())
}

/// Reads a blob body of `size` uncompressed bytes to the end of the stream, bounded before decompressing.
pub async fn read_body(recv: &mut quinn::RecvStream, size: u64) -> Result<Vec<u8>, WireError> {
    if size > MAX_BLOB {
        return Err(WireError::Body(format!("{size} bytes exceeds the {MAX_BLOB}-byte limit")));
    }
    let compressed = recv.read_to_end(compressed_bound(size)).await.map_err(|e| WireError::Body(e.to_string()))?;
    let data = zstd::bulk::decompress(&compressed, size as usize).map_err(|e| WireError::Body(e.to_string()))?;
    if data.len() as u64 != size {
        return Err(WireError::Body(format!("{} bytes where {size} were announced", data.len())));
    }
    Ok(data)
}
