//! Watch streams: newline-delimited `{"type": ..., "object": ...}` events over a chunked
//! HTTP body, as kube-apiserver's cacher sends them.
//!
//! ```text
//!   start: RV unset/"0" or sendInitialEvents ─> synthetic ADDED for what exists now
//!                                               (+ BOOKMARK "k8s.io/initial-events-end")
//!          RV=N ─> the changes after N; N compacted ─> one ERROR (Status 410 Expired), close
//!   loop:  partitioned? hold ─> changes since cursor, filtered by namespace and selectors
//!          (a change that leaves the selection is a DELETED, one that enters it an ADDED)
//!          ─> BOOKMARK every bookmark_interval if allowWatchBookmarks ─> close at timeoutSeconds
//! ```

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::body::Body;
use bytes::Bytes;
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::query::{Format, IncludeObject, ListOptions, ResourceVersion};
use super::resource::Kind;
use super::server::Shared;
use super::status::ApiError;
use super::store::{Change, EventType, StoreError};
use super::table;

/// The default watch length when the client gives no `timeoutSeconds` (kube-apiserver's
/// `--min-request-timeout`).
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(1800);

/// What one stream selects and how it prints.
struct Filter {
    kind: Kind,
    namespace: Option<String>,
    opts: ListOptions,
}

impl Filter {
    fn selects(&self, obj: &Value) -> bool {
        let ns_ok = self.namespace.as_deref().is_none_or(|ns| {
            obj.pointer("/metadata/namespace").and_then(Value::as_str) == Some(ns)
        });
        ns_ok
            && self.opts.label_selector.matches(obj)
            && self.opts.field_selector.matches(self.kind, obj)
    }

    /// The event a change makes for this stream, if any (the cacher's rule: compare whether the
    /// old and new states pass the filter).
    fn event(&self, c: &Change) -> Option<(&'static str, Value)> {
        if c.key.kind != self.kind {
            return None;
        }
        let now = c.event != EventType::Deleted && self.selects(&c.object);
        let before = c.prev.as_ref().is_some_and(|p| self.selects(p));
        match (before, now) {
            (false, true) => Some(("ADDED", c.object.clone())),
            (true, true) => Some(("MODIFIED", c.object.clone())),
            (true, false) => {
                let mut last = c.prev.clone().unwrap_or(Value::Null);
                super::store::set_resource_version(&mut last, c.rv);
                Some(("DELETED", last))
            }
            (false, false) => None,
        }
    }
}

/// Turns events into body lines in the negotiated format.
struct Printer {
    kind: Kind,
    format: Format,
    include: IncludeObject,
    headers_sent: bool,
}

impl Printer {
    fn line(&mut self, ty: &str, obj: Value) -> Bytes {
        let obj = match (self.format, ty) {
            (_, "ERROR" | "BOOKMARK") => obj,
            (Format::Table, _) => {
                let rv = obj
                    .pointer("/metadata/resourceVersion")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string();
                let t = table::table(
                    self.kind,
                    &[&obj],
                    &rv,
                    None,
                    self.include,
                    !self.headers_sent,
                    super::ops::now(),
                );
                self.headers_sent = true;
                t
            }
            (Format::Metadata, _) => table::partial_metadata(&obj),
            _ => obj,
        };
        let mut line = serde_json::to_vec(&json!({"type": ty, "object": obj})).unwrap_or_default();
        line.push(b'\n');
        Bytes::from(line)
    }

    fn bookmark(&mut self, rv: u64, initial_end: bool) -> Bytes {
        let mut meta = json!({"resourceVersion": rv.to_string()});
        if initial_end {
            meta["annotations"] = json!({"k8s.io/initial-events-end": "true"});
        }
        let obj = json!({"kind": self.kind.info().kind, "apiVersion": self.kind.api_version(), "metadata": meta});
        self.line("BOOKMARK", obj)
    }
}

/// Counts a stream in `open_watches` for as long as it lives.
struct OpenWatch(Arc<Shared>);

impl Drop for OpenWatch {
    fn drop(&mut self) {
        self.0.open_watches.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Starts a watch of `kind` (in `namespace`, or all) and returns the streaming body. An `RV`
/// in the future is waited for up to 3 s, then refused (504), as kube-apiserver does.
pub(crate) async fn start(
    shared: Arc<Shared>,
    kind: Kind,
    namespace: Option<String>,
    opts: ListOptions,
    format: Format,
    shutdown: CancellationToken,
) -> Result<Body, ApiError> {
    if let ResourceVersion::At(n) = opts.resource_version {
        let mut rx = shared.rv.subscribe();
        let caught_up =
            tokio::time::timeout(Duration::from_secs(3), rx.wait_for(|rv| *rv >= n)).await;
        if !matches!(caught_up, Ok(Ok(_))) {
            let current = *shared.rv.borrow();
            return Err(StoreError::TooLarge {
                requested: n,
                current,
            }
            .into());
        }
    }
    let timeout = match opts.timeout_seconds {
        Some(s) if s > 0 => Duration::from_secs(s),
        _ => DEFAULT_TIMEOUT,
    };
    let mut printer = Printer {
        kind,
        format,
        include: opts.include_object,
        headers_sent: false,
    };
    let filter = Filter {
        kind,
        namespace,
        opts,
    };
    let (tx, rx) = mpsc::channel::<Result<Bytes, std::convert::Infallible>>(64);
    // The start: initial events, or the point in history to replay from.
    let mut initial = Vec::new();
    let (cursor, expired) = {
        let store = shared.store();
        let current = store.resource_version();
        let send_initial = match (
            filter.opts.send_initial_events,
            filter.opts.resource_version,
        ) {
            (Some(b), _) => b,
            (None, ResourceVersion::Unset | ResourceVersion::Any) => true,
            (None, ResourceVersion::At(_)) => false,
        };
        if send_initial {
            for (_, obj) in store.objects(kind, filter.namespace.as_deref()) {
                if filter.selects(obj) {
                    initial.push(printer.line("ADDED", obj.clone()));
                }
            }
            if filter.opts.send_initial_events == Some(true) {
                initial.push(printer.bookmark(current, true));
            }
            (current, None)
        } else {
            match filter.opts.resource_version {
                ResourceVersion::At(n) => match store.changes_since(n) {
                    Ok(_) => (n, None),
                    Err(e) => (n, Some(ApiError::from(e))),
                },
                _ => (current, None),
            }
        }
    };
    shared.open_watches.fetch_add(1, Ordering::SeqCst);
    let guard = OpenWatch(shared.clone());
    let conns = shared.conns_token();
    let interval = shared.bookmark_interval;
    tokio::spawn(async move {
        let _guard = guard;
        tokio::select! {
            _ = stream(&shared, filter, printer, initial, cursor, expired, timeout, interval, &tx) => {}
            _ = conns.cancelled() => {}
            _ = shutdown.cancelled() => {}
        }
    });
    Ok(Body::from_stream(
        tokio_stream::wrappers::ReceiverStream::new(rx),
    ))
}

type Tx = mpsc::Sender<Result<Bytes, std::convert::Infallible>>;

#[allow(clippy::too_many_arguments)]
async fn stream(
    shared: &Shared,
    filter: Filter,
    mut printer: Printer,
    initial: Vec<Bytes>,
    mut cursor: u64,
    expired: Option<ApiError>,
    timeout: Duration,
    bookmark_interval: Duration,
    tx: &Tx,
) {
    let never = CancellationToken::new();
    if !shared.pass_partition(&never).await {
        return;
    }
    if let Some(e) = expired {
        let _ = tx.send(Ok(printer.line("ERROR", e.status()))).await;
        return;
    }
    for line in initial {
        if tx.send(Ok(line)).await.is_err() {
            return;
        }
    }
    let deadline = tokio::time::Instant::now() + timeout;
    let mut next_bookmark = tokio::time::Instant::now() + bookmark_interval;
    let mut rv_rx = shared.rv.subscribe();
    loop {
        if !shared.pass_partition(&never).await {
            return;
        }
        // Mark the current version seen before reading, so no commit slips between the two.
        rv_rx.borrow_and_update();
        let changes = {
            let store = shared.store();
            match store.changes_since(cursor) {
                Ok(ch) => {
                    cursor = store.resource_version();
                    Ok(ch)
                }
                Err(e) => Err(ApiError::from(e)),
            }
        };
        match changes {
            Ok(changes) => {
                for c in changes {
                    if let Some((ty, obj)) = filter.event(&c)
                        && tx.send(Ok(printer.line(ty, obj))).await.is_err()
                    {
                        return;
                    }
                }
            }
            Err(e) => {
                // The stream fell behind a compaction: tell the client to relist.
                let _ = tx.send(Ok(printer.line("ERROR", e.status()))).await;
                return;
            }
        }
        if filter.opts.allow_watch_bookmarks && tokio::time::Instant::now() >= next_bookmark {
            next_bookmark = tokio::time::Instant::now() + bookmark_interval;
            if tx.send(Ok(printer.bookmark(cursor, false))).await.is_err() {
                return;
            }
        }
        let bookmark_wait = async {
            if filter.opts.allow_watch_bookmarks {
                tokio::time::sleep_until(next_bookmark).await
            } else {
                std::future::pending().await
            }
        };
        tokio::select! {
            r = rv_rx.changed() => if r.is_err() { return },
            _ = bookmark_wait => {}
            _ = tokio::time::sleep_until(deadline) => {
                // Hold past the deadline while partitioned: the close would not get through.
                if shared.pass_partition(&never).await {
                    return;
                }
            }
            _ = tx.closed() => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apiserver::store::ObjectKey;

    fn svc(name: &str, app: &str, rv: u64) -> Value {
        json!({"metadata": {"name": name, "namespace": "d", "labels": {"app": app}, "resourceVersion": rv.to_string()}})
    }

    fn change(event: EventType, prev: Option<Value>, object: Value, rv: u64) -> Change {
        Change {
            rv,
            key: ObjectKey::new(Kind::Service, "d", "web"),
            event,
            object,
            prev,
        }
    }

    #[test]
    fn selection_changes_become_added_and_deleted() {
        let opts = ListOptions::parse("labelSelector=app%3Dweb", Kind::Service).unwrap();
        let f = Filter {
            kind: Kind::Service,
            namespace: Some("d".into()),
            opts,
        };
        let ev = |c: &Change| {
            f.event(c).map(|(t, o)| {
                (
                    t,
                    o["metadata"]["labels"]["app"].clone(),
                    o["metadata"]["resourceVersion"].clone(),
                )
            })
        };
        assert_eq!(
            ev(&change(EventType::Added, None, svc("web", "web", 2), 2)),
            Some(("ADDED", json!("web"), json!("2")))
        );
        assert_eq!(
            ev(&change(EventType::Added, None, svc("web", "db", 2), 2)),
            None
        );
        assert_eq!(
            ev(&change(
                EventType::Modified,
                Some(svc("web", "web", 2)),
                svc("web", "web", 3),
                3
            )),
            Some(("MODIFIED", json!("web"), json!("3")))
        );
        // Leaving the selection: DELETED with the last selected state at the change's version.
        assert_eq!(
            ev(&change(
                EventType::Modified,
                Some(svc("web", "web", 2)),
                svc("web", "db", 3),
                3
            )),
            Some(("DELETED", json!("web"), json!("3")))
        );
        assert_eq!(
            ev(&change(
                EventType::Modified,
                Some(svc("web", "db", 2)),
                svc("web", "web", 3),
                3
            )),
            Some(("ADDED", json!("web"), json!("3")))
        );
        assert_eq!(
            ev(&change(
                EventType::Deleted,
                Some(svc("web", "web", 2)),
                svc("web", "web", 4),
                4
            )),
            Some(("DELETED", json!("web"), json!("4")))
        );
        let mut other_ns = svc("web", "web", 2);
        other_ns["metadata"]["namespace"] = json!("e");
        assert_eq!(ev(&change(EventType::Added, None, other_ns, 2)), None);
    }

    #[test]
    fn lines_are_newline_delimited_events() {
        let mut p = Printer {
            kind: Kind::Service,
            format: Format::Json,
            include: IncludeObject::Metadata,
            headers_sent: false,
        };
        let line = p.bookmark(7, true);
        assert_eq!(line.last(), Some(&b'\n'));
        let ev: kube::api::WatchEvent<k8s_openapi::api::core::v1::Service> =
            serde_json::from_slice(&line).unwrap();
        match ev {
            kube::api::WatchEvent::Bookmark(b) => {
                assert_eq!(b.metadata.resource_version, "7");
                assert!(
                    b.metadata
                        .annotations
                        .contains_key("k8s.io/initial-events-end")
                );
            }
            other => panic!("not a bookmark: {other:?}"),
        }
        let mut t = Printer {
            format: Format::Table,
            ..p
        };
        let first: Value = serde_json::from_slice(&t.line("ADDED", svc("web", "web", 2))).unwrap();
        let second: Value =
            serde_json::from_slice(&t.line("MODIFIED", svc("web", "web", 3))).unwrap();
        assert_eq!(first["object"]["kind"], "Table");
        assert!(first["object"]["columnDefinitions"].is_array());
        assert!(second["object"].get("columnDefinitions").is_none());
        assert_eq!(second["object"]["rows"][0]["cells"][0], "web");
    }
}
