//! Reading entries of the local store for a compile: a corrupt or undecodable entry is counted, dropped and
//! treated as a miss. C, C++ and Rust lookups share it.

use crate::context::Context;
use crate::store::{Kind, StoreError};
use rcc_proto::stats::ErrorKind;
use rcc_proto::Digest;

/// Reads an entry, counting and dropping a corrupt one.
fn fetch(ctx: &Context, kind: Kind, key: &Digest) -> Option<Vec<u8>> {
    match ctx.store.get(kind, key) {
        Ok(found) => found,
        Err(e @ StoreError::Corrupt { .. }) => {
            tracing::warn!(error = %e, "dropped a corrupt entry");
            ctx.stats.record(|c| c.count_error(ErrorKind::CorruptEntry));
            None
        }
        Err(e) => {
            tracing::warn!(error = %e, "store read failed");
            ctx.stats.record(|c| c.count_error(ErrorKind::StoreIo));
            None
        }
    }
}

fn decode<T: serde::de::DeserializeOwned>(ctx: &Context, kind: Kind, key: &Digest, bytes: &[u8]) -> Option<T> {
    match postcard::from_bytes(bytes) {
        Ok(v) => Some(v),
        Err(e) => {
            tracing::warn!(error = %e, "undecodable entry dropped");
            ctx.store.remove(kind, key);
            ctx.stats.record(|c| c.count_error(ErrorKind::CorruptEntry));
            None
        }
    }
}

/// An entry of the local store, decoded; a corrupt or undecodable one is counted, dropped and `None`.
pub(crate) fn load<T: serde::de::DeserializeOwned>(ctx: &Context, kind: Kind, key: &Digest) -> Option<T> {
    fetch(ctx, kind, key).and_then(|b| decode(ctx, kind, key, &b))
}
