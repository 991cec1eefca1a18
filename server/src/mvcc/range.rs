//! Range: etcd's applierV3backend.Range, step for step — fetch (limit + 1 when
//! no filter or sort needs everything), drop by min/max mod/create revision,
//! sort, cut to the limit setting `more`, blank values for keys_only.

use std::cmp::Ordering;

use keel_btree::RangeOptions;

use super::{key_range, to_pb, ReadSource};
use crate::api::errors::ApiError;
use crate::proto::etcdserverpb::range_request::{SortOrder, SortTarget};
use crate::proto::etcdserverpb::{RangeRequest, RangeResponse, ResponseHeader};
use crate::proto::mvccpb::KeyValue;

/// Runs `req` against `source`. The header carries only the revision; the
/// caller fills in cluster, member and term.
pub(crate) fn range(
    source: &impl ReadSource,
    req: &RangeRequest,
) -> Result<RangeResponse, ApiError> {
    let filters_or_sorts = req.sort_order != SortOrder::None as i32
        || req.min_mod_revision != 0
        || req.max_mod_revision != 0
        || req.min_create_revision != 0
        || req.max_create_revision != 0;
    let limit = if filters_or_sorts || req.limit <= 0 {
        0
    } else {
        // One extra tells whether there is `more`.
        usize::try_from(req.limit)
            .unwrap_or(usize::MAX - 1)
            .saturating_add(1)
    };
    let opts = RangeOptions {
        limit,
        revision: req.revision,
        count_only: req.count_only,
    };
    let result = source.read(&key_range(&req.key, &req.range_end), &opts)?;
    let mut kvs: Vec<KeyValue> = result.kvs.into_iter().map(to_pb).collect();
    prune(&mut kvs, req);
    sort(&mut kvs, req);
    let mut more = false;
    if let Ok(limit) = usize::try_from(req.limit) {
        if limit > 0 && kvs.len() > limit {
            kvs.truncate(limit);
            more = true;
        }
    }
    if req.keys_only {
        for kv in &mut kvs {
            kv.value = bytes::Bytes::new();
        }
    }
    Ok(RangeResponse {
        header: Some(ResponseHeader {
            revision: result.revision,
            ..Default::default()
        }),
        kvs,
        more,
        count: i64::try_from(result.count).unwrap_or(i64::MAX),
    })
}

fn prune(kvs: &mut Vec<KeyValue>, req: &RangeRequest) {
    if req.max_mod_revision != 0 {
        kvs.retain(|kv| kv.mod_revision <= req.max_mod_revision);
    }
    if req.min_mod_revision != 0 {
        kvs.retain(|kv| kv.mod_revision >= req.min_mod_revision);
    }
    if req.max_create_revision != 0 {
        kvs.retain(|kv| kv.create_revision <= req.max_create_revision);
    }
    if req.min_create_revision != 0 {
        kvs.retain(|kv| kv.create_revision >= req.min_create_revision);
    }
}

/// etcd sorts ascending by default when the target is not the key (results
/// already come in key order). Unknown enum values sort like etcd: not at all.
fn sort(kvs: &mut [KeyValue], req: &RangeRequest) {
    let target = SortTarget::try_from(req.sort_target).unwrap_or(SortTarget::Key);
    let mut order = SortOrder::try_from(req.sort_order).unwrap_or(SortOrder::None);
    if target != SortTarget::Key && order == SortOrder::None {
        order = SortOrder::Ascend;
    }
    let compare: fn(&KeyValue, &KeyValue) -> Ordering = match target {
        SortTarget::Key => |a, b| a.key.cmp(&b.key),
        SortTarget::Version => |a, b| a.version.cmp(&b.version),
        SortTarget::Create => |a, b| a.create_revision.cmp(&b.create_revision),
        SortTarget::Mod => |a, b| a.mod_revision.cmp(&b.mod_revision),
        SortTarget::Value => |a, b| a.value.cmp(&b.value),
    };
    match order {
        SortOrder::None => {}
        SortOrder::Ascend => kvs.sort_by(compare),
        SortOrder::Descend => kvs.sort_by(|a, b| compare(b, a)),
    }
}
