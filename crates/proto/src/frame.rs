//! Frame codec, shared by the wrapper↔daemon Unix socket ([`LOCAL`]) and the QUIC streams to the scheduler
//! ([`REMOTE`]).
//!
//! ```text
//! +---------+---------+---------+------------------+------------------------+
//! | magic 0 | magic 1 | version | length (u32, LE) | payload (postcard)     |
//! +---------+---------+---------+------------------+------------------------+
//!     1 B       1 B       1 B          4 B              `length` bytes
//! ```
//!
//! `RC` for [`LOCAL`] (payload at most 64 MiB: a compile's stdout and stderr travel in it), `RQ` for
//! [`REMOTE`] (at most 1 MiB: blobs travel outside frames, as streamed bodies). The length is checked
//! against the channel's limit before anything is allocated; a peer speaking another version gets
//! [`FrameError::Version`], never a misparse.

use serde::{de::DeserializeOwned, Serialize};
use std::io::{self, Read, Write};

/// Version of the wrapper↔daemon protocol. A daemon and wrapper of different versions refuse each other.
pub const PROTOCOL_VERSION: u8 = 3;

/// Largest payload accepted on the local socket (64 MiB): stdout and stderr of a compile travel in frames.
pub const MAX_FRAME_LEN: u32 = 64 << 20;

/// One framed channel: its magic, version and payload limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Channel {
    /// The two magic bytes.
    pub magic: [u8; 2],
    /// The protocol version spoken.
    pub version: u8,
    /// Largest payload accepted.
    pub max_len: u32,
}

/// The wrapper↔daemon socket.
pub const LOCAL: Channel = Channel { magic: *b"RC", version: PROTOCOL_VERSION, max_len: MAX_FRAME_LEN };

/// Requests and responses on QUIC streams to the scheduler.
pub const REMOTE: Channel = Channel { magic: *b"RQ", version: 2, max_len: 1 << 20 };

/// Bytes in a frame header.
pub const HEADER_LEN: usize = 7;

impl Channel {
    /// Encodes one message as a complete frame.
    pub fn encode<T: Serialize>(&self, msg: &T) -> Result<Vec<u8>, FrameError> {
        let header = vec![self.magic[0], self.magic[1], self.version, 0, 0, 0, 0];
        let mut out = postcard::to_extend(msg, header)?;
        let len = out.len() - HEADER_LEN;
        if len > self.max_len as usize {
            return Err(FrameError::TooLarge(len as u64));
        }
        out[3..7].copy_from_slice(&(len as u32).to_le_bytes());
        Ok(out)
    }

    /// Checks a frame header and returns the payload length it announces.
    pub fn check_header(&self, header: &[u8; HEADER_LEN]) -> Result<usize, FrameError> {
        if header[..2] != self.magic {
            return Err(FrameError::Magic);
        }
        if header[2] != self.version {
            return Err(FrameError::Version { peer: header[2], ours: self.version });
        }
        let len = u32::from_le_bytes([header[3], header[4], header[5], header[6]]);
        if len > self.max_len {
            return Err(FrameError::TooLarge(u64::from(len)));
        }
        Ok(len as usize)
    }
}

/// Why a frame could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// The socket failed or closed mid-frame.
    #[error("socket I/O: {0}")]
    Io(#[from] io::Error),
    /// The peer closed the connection cleanly between frames.
    #[error("peer closed the connection")]
    Closed,
    /// The header's magic bytes are wrong: not an rcc peer.
    #[error("not an rcc frame (bad magic)")]
    Magic,
    /// The peer speaks another protocol version.
    #[error("peer speaks protocol version {peer}, this build speaks {ours}")]
    Version {
        /// The version the peer sent.
        peer: u8,
        /// The version this build speaks.
        ours: u8,
    },
    /// The announced length exceeds the channel's limit.
    #[error("frame of {0} bytes exceeds the channel's limit")]
    TooLarge(u64),
    /// The payload is not a valid message.
    #[error("malformed message: {0}")]
    Decode(#[from] postcard::Error),
}

/// Encodes one message as a complete [`LOCAL`] frame.
pub fn encode<T: Serialize>(msg: &T) -> Result<Vec<u8>, FrameError> {
    LOCAL.encode(msg)
}

/// Checks a [`LOCAL`] frame header and returns the payload length it announces.
pub fn check_header(header: &[u8; HEADER_LEN]) -> Result<usize, FrameError> {
    LOCAL.check_header(header)
}

/// Decodes a payload (the bytes after the header).
pub fn decode<T: DeserializeOwned>(payload: &[u8]) -> Result<T, FrameError> {
    Ok(postcard::from_bytes(payload)?)
}

/// Writes one message to a stream.
pub fn write_msg<W: Write, T: Serialize>(w: &mut W, msg: &T) -> Result<(), FrameError> {
    let bytes = encode(msg)?;
    w.write_all(&bytes)?;
    w.flush()?;
    Ok(())
}

/// Reads one message from a stream; a clean close before the first header byte is [`FrameError::Closed`].
pub fn read_msg<R: Read, T: DeserializeOwned>(r: &mut R) -> Result<T, FrameError> {
    let mut header = [0u8; HEADER_LEN];
    let mut got = 0;
    while got < HEADER_LEN {
        match r.read(&mut header[got..]) {
            Ok(0) if got == 0 => return Err(FrameError::Closed),
            Ok(0) => return Err(FrameError::Io(io::ErrorKind::UnexpectedEof.into())),
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e.into()),
        }
    }
    let len = check_header(&header)?;
    let mut payload = vec![0u8; len];
    r.read_exact(&mut payload)?;
    decode(&payload)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ipc::{Request, Response};

    fn sample() -> Request {
        Request::Ping
    }

    #[test]
    fn round_trip() {
        let bytes = encode(&Response::Done { exit_code: 3 }).unwrap();
        let back: Response = read_msg(&mut &bytes[..]).unwrap();
        assert_eq!(back, Response::Done { exit_code: 3 });
    }

    #[test]
    fn truncation_at_every_offset_is_an_error_not_a_panic() {
        let bytes = encode(&Response::Passthrough { reason: crate::stats::Reason::Linking }).unwrap();
        for cut in 0..bytes.len() {
            let r: Result<Response, _> = read_msg(&mut &bytes[..cut]);
            assert!(r.is_err(), "cut at {cut} decoded");
        }
    }

    #[test]
    fn oversized_length_is_refused_before_allocation() {
        let mut bytes = encode(&sample()).unwrap();
        bytes[3..7].copy_from_slice(&u32::MAX.to_le_bytes());
        let r: Result<Request, _> = read_msg(&mut &bytes[..]);
        assert!(matches!(r, Err(FrameError::TooLarge(_))));
    }

    #[test]
    fn other_version_is_named() {
        let mut bytes = encode(&sample()).unwrap();
        bytes[2] = PROTOCOL_VERSION + 1;
        let r: Result<Request, _> = read_msg(&mut &bytes[..]);
        assert!(matches!(r, Err(FrameError::Version { .. })));
    }

    #[test]
    fn arbitrary_bytes_never_panic() {
        // A cheap deterministic sweep standing in for a fuzzer: every 1..=3-byte payload after a valid header.
        for len in 1..=3usize {
            for seed in 0..(1u32 << (8 * len.min(2))) {
                let mut frame = vec![b'R', b'C', PROTOCOL_VERSION];
                frame.extend_from_slice(&(len as u32).to_le_bytes());
                for i in 0..len {
                    frame.push((seed >> (8 * (i % 2))) as u8 ^ i as u8);
                }
                let _: Result<Request, _> = read_msg(&mut &frame[..]);
            }
        }
    }
}
