//! The QUIC protocol's frames: what a client, worker or scheduler sends the other, and the checks applied
//! to an action from the network.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rcc_proto::frame::{self, HEADER_LEN, REMOTE};
use rcc_proto::remote::{Request, Response, SchedulerMessage, WorkerMessage};

fuzz_target!(|data: &[u8]| {
    let payload = match data.get(..HEADER_LEN).and_then(|h| <[u8; HEADER_LEN]>::try_from(h).ok()) {
        Some(header) => match REMOTE.check_header(&header) {
            Ok(len) => &data[HEADER_LEN..data.len().min(HEADER_LEN + len)],
            Err(_) => data,
        },
        None => data,
    };
    if let Ok(request) = frame::decode::<Request>(payload) {
        if let Request::Execute { action } = request {
            let _ = action.validate();
            let _ = action.digest();
        }
    }
    let _: Result<Response, _> = frame::decode(payload);
    let _: Result<WorkerMessage, _> = frame::decode(payload);
    if let Ok(SchedulerMessage::Run { action }) = frame::decode(payload) {
        let _ = action.validate();
    }
});
