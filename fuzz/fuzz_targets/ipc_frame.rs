//! The wrapper↔daemon frame codec: a 7-byte header (magic, version, length) then a postcard message.
//! Either side of the socket may be hostile (another local user's daemon, a fake wrapper).
#![no_main]

use libfuzzer_sys::fuzz_target;
use rcc_proto::frame::{self, HEADER_LEN};
use rcc_proto::ipc::{Request, Response};

fuzz_target!(|data: &[u8]| {
    if let Some(header) = data.get(..HEADER_LEN).and_then(|h| <[u8; HEADER_LEN]>::try_from(h).ok()) {
        if let Ok(len) = frame::check_header(&header) {
            let payload = &data[HEADER_LEN..data.len().min(HEADER_LEN + len)];
            let _: Result<Request, _> = frame::decode(payload);
            let _: Result<Response, _> = frame::decode(payload);
        }
    }
    // And the bytes as a bare payload, through the reader every side uses.
    let _: Result<Request, _> = frame::decode(data);
    let _: Result<Response, _> = frame::read_msg(&mut &data[..]);
});
