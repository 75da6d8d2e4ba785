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
    decompress_body(&compressed, size)
}

/// The largest zstd window a body may use (as a power of two): 4 MiB of decoder memory, as the scheduler
/// allows in what it stores.
pub const MAX_WINDOW_LOG: u32 = 22;

/// Decompresses a body announced as `size` bytes. Memory grows with the bytes the frame actually yields, never
/// reserved up front from the announcement (a peer announcing a gigabyte and sending a few bytes costs a few
/// bytes), output past `size` stops the decoder at once, and a frame asking for a window above
/// [`MAX_WINDOW_LOG`] is refused.
pub fn decompress_body(compressed: &[u8], size: u64) -> Result<Vec<u8>, WireError> {
    use std::io::Read;
    let body = |e: std::io::Error| WireError::Body(e.to_string());
    let mut decoder = zstd::stream::read::Decoder::with_buffer(compressed).map_err(body)?;
    decoder.window_log_max(MAX_WINDOW_LOG).map_err(body)?;
    let mut data = Vec::with_capacity(size.min(1 << 20) as usize);
    decoder.take(size.saturating_add(1)).read_to_end(&mut data).map_err(body)?;
    if data.len() as u64 != size {
        return Err(WireError::Body(format!(
            "{}{} bytes where {size} were announced",
            data.len(),
            if data.len() as u64 > size { "+" } else { "" }
        )));
    }
    Ok(data)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_round_trip_and_lies_about_their_size_are_refused() {
        let data = b"object bytes ".repeat(1000);
        let frame = zstd::bulk::compress(&data, 1).unwrap();
        assert_eq!(decompress_body(&frame, data.len() as u64).unwrap(), data);
        assert!(decompress_body(&frame, data.len() as u64 - 1).is_err(), "more than announced");
        assert!(decompress_body(&frame, data.len() as u64 + 1).is_err(), "less than announced");
        assert!(decompress_body(b"not zstd", 8).is_err());
    }

    /// A hostile scheduler announces the largest blob and sends a few bytes: the client reserves nothing
    /// for the announcement. (`zstd::bulk::decompress`, used before, reserved the announced gigabyte: the
    /// process's virtual peak rose by it, and under an address-space limit the allocation aborts the daemon.)
    #[test]
    fn an_announced_gigabyte_costs_only_what_arrives() {
        let tiny = zstd::bulk::compress(b"tiny", 1).unwrap();
        let before = vm_peak();
        assert!(decompress_body(&tiny, MAX_BLOB).is_err());
        let grew = vm_peak() - before;
        assert!(grew < 64 << 20, "the virtual peak grew by {grew} bytes for a 4-byte body");
    }

    #[test]
    fn frames_asking_for_huge_windows_are_refused() {
        let data = vec![7u8; 1 << 20];
        let mut encoder = zstd::stream::write::Encoder::new(Vec::new(), 1).unwrap();
        encoder.window_log(MAX_WINDOW_LOG + 2).unwrap();
        encoder.include_contentsize(false).unwrap();
        std::io::Write::write_all(&mut encoder, &data).unwrap();
        let wide = encoder.finish().unwrap();
        assert!(decompress_body(&wide, data.len() as u64).is_err());
    }

    /// The process's peak virtual memory (VmPeak), in bytes.
    fn vm_peak() -> u64 {
        let status = std::fs::read_to_string("/proc/self/status").unwrap();
        let line = status.lines().find(|l| l.starts_with("VmPeak:")).unwrap();
        line.split_whitespace().nth(1).unwrap().parse::<u64>().unwrap() * 1024
    }
}
