//! The versioned object store behind the double: what etcd plus the watch cache are to
//! kube-apiserver. No I/O, no clock, no locking (the server wraps it in a mutex).
//!
//! ```text
//!   put/remove ──> rv += 1 ──> objects[key] = obj (metadata.resourceVersion = rv)
//!                          └─> history.push(Change{rv, ADDED|MODIFIED|DELETED, obj, prev})
//!   changes_since(N)  : every change with rv > N        (410 Expired when N < oldest())
//!   snapshot(kind, N) : the objects as they were at N   (undoing the history after N)
//!   compact()         : forget the history; oldest() = current rv
//! ```
//! One global resourceVersion counter spans all kinds, as etcd's revision does.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

use serde_json::Value;

use super::resource::Kind;

/// Where an object lives: kind, namespace (`""` for cluster-scoped kinds) and name. Ordered as
/// etcd keys are, so lists come out sorted by namespace, then name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ObjectKey {
    /// The kind.
    pub kind: Kind,
    /// The namespace, empty for cluster-scoped kinds.
    pub namespace: String,
    /// The object's name.
    pub name: String,
}

impl ObjectKey {
    /// A key; `namespace` is ignored for cluster-scoped kinds.
    pub fn new(kind: Kind, namespace: &str, name: &str) -> ObjectKey {
        let namespace = if kind.info().namespaced {
            namespace.to_string()
        } else {
            String::new()
        };
        ObjectKey {
            kind,
            namespace,
            name: name.to_string(),
        }
    }
}

impl std::fmt::Display for ObjectKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.namespace.is_empty() {
            write!(f, "{}/{}", self.kind.info().plural, self.name)
        } else {
            write!(
                f,
                "{}/{}/{}",
                self.kind.info().plural,
                self.namespace,
                self.name
            )
        }
    }
}

/// The type of a watch event (`ADDED`, `MODIFIED`, `DELETED`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    /// The object was created.
    Added,
    /// The object was replaced or patched.
    Modified,
    /// The object was deleted; the event carries its last state.
    Deleted,
}

impl EventType {
    /// The wire name (`ADDED`).
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Added => "ADDED",
            EventType::Modified => "MODIFIED",
            EventType::Deleted => "DELETED",
        }
    }
}

/// One committed change, kept in the history for watches and historical lists.
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    /// The resourceVersion the change was committed at.
    pub rv: u64,
    /// The object changed.
    pub key: ObjectKey,
    /// What happened.
    pub event: EventType,
    /// The object after the change (for `Deleted`, its last state stamped with `rv`).
    pub object: Value,
    /// The object before the change (`None` for `Added`).
    pub prev: Option<Value>,
}

/// A resourceVersion the store cannot serve.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// The history at `requested` has been compacted (HTTP 410, reason `Expired`).
    #[error("too old resource version: {requested} ({oldest})")]
    Expired {
        /// The resourceVersion asked for.
        requested: u64,
        /// The oldest resourceVersion still served.
        oldest: u64,
    },
    /// The resourceVersion is in the future (HTTP 504, `Too large resource version`).
    #[error("Too large resource version: {requested}, current: {current}")]
    TooLarge {
        /// The resourceVersion asked for.
        requested: u64,
        /// The store's current resourceVersion.
        current: u64,
    },
}

/// The store: current objects, the change history after `oldest()`, the global counter.
#[derive(Debug)]
pub struct Store {
    rv: u64,
    oldest: u64,
    objects: BTreeMap<ObjectKey, Value>,
    history: VecDeque<Arc<Change>>,
    history_limit: usize,
}

impl Store {
    /// An empty store at resourceVersion 1 that keeps at most `history_limit` changes (older
    /// ones are compacted away, as kube-apiserver's periodic etcd compaction does).
    pub fn new(history_limit: usize) -> Store {
        Store {
            rv: 1,
            oldest: 1,
            objects: BTreeMap::new(),
            history: VecDeque::new(),
            history_limit: history_limit.max(1),
        }
    }

    /// The current resourceVersion (of the last change).
    pub fn resource_version(&self) -> u64 {
        self.rv
    }

    /// The oldest resourceVersion a watch may start from or a list may be read at.
    pub fn oldest(&self) -> u64 {
        self.oldest
    }

    /// The current state of one object.
    pub fn get(&self, key: &ObjectKey) -> Option<&Value> {
        self.objects.get(key)
    }

    /// The current objects of `kind`, in one namespace or all, in key order.
    pub fn objects<'a>(
        &'a self,
        kind: Kind,
        namespace: Option<&'a str>,
    ) -> impl Iterator<Item = (&'a ObjectKey, &'a Value)> + 'a {
        let start = ObjectKey {
            kind,
            namespace: namespace.unwrap_or("").to_string(),
            name: String::new(),
        };
        self.objects.range(start..).take_while(move |(k, _)| {
            k.kind == kind && namespace.is_none_or(|ns| k.namespace == ns)
        })
    }

    /// Stores `obj` under `key` at a new resourceVersion (written into
    /// `metadata.resourceVersion`) and records an `ADDED` or `MODIFIED` change.
    pub fn put(&mut self, key: ObjectKey, mut obj: Value) -> Arc<Change> {
        self.rv += 1;
        set_resource_version(&mut obj, self.rv);
        let prev = self.objects.insert(key.clone(), obj.clone());
        let event = if prev.is_some() {
            EventType::Modified
        } else {
            EventType::Added
        };
        self.record(Change {
            rv: self.rv,
            key,
            event,
            object: obj,
            prev,
        })
    }

    /// Deletes an object at a new resourceVersion and records a `DELETED` change carrying its
    /// last state. `None` if there was no such object.
    pub fn remove(&mut self, key: &ObjectKey) -> Option<Arc<Change>> {
        let prev = self.objects.remove(key)?;
        self.rv += 1;
        let mut last = prev.clone();
        set_resource_version(&mut last, self.rv);
        Some(self.record(Change {
            rv: self.rv,
            key: key.clone(),
            event: EventType::Deleted,
            object: last,
            prev: Some(prev),
        }))
    }

    fn record(&mut self, change: Change) -> Arc<Change> {
        let change = Arc::new(change);
        self.history.push_back(change.clone());
        while self.history.len() > self.history_limit {
            if let Some(dropped) = self.history.pop_front() {
                self.oldest = dropped.rv;
            }
        }
        change
    }

    /// Every change committed after `rv`, oldest first; `Expired` if some were compacted,
    /// `TooLarge` if `rv` is in the future.
    pub fn changes_since(&self, rv: u64) -> Result<Vec<Arc<Change>>, StoreError> {
        self.check(rv)?;
        let from = self.history.partition_point(|c| c.rv <= rv);
        Ok(self.history.range(from..).cloned().collect())
    }

    /// The objects of `kind` (in one namespace or all) as they were at `rv`, in key order.
    pub fn snapshot(
        &self,
        kind: Kind,
        namespace: Option<&str>,
        rv: u64,
    ) -> Result<BTreeMap<ObjectKey, Value>, StoreError> {
        self.check(rv)?;
        let mut out: BTreeMap<ObjectKey, Value> = self
            .objects(kind, namespace)
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let from = self.history.partition_point(|c| c.rv <= rv);
        for c in self.history.range(from..).rev() {
            if c.key.kind != kind || namespace.is_some_and(|ns| c.key.namespace != ns) {
                continue;
            }
            match &c.prev {
                Some(prev) => out.insert(c.key.clone(), prev.clone()),
                None => out.remove(&c.key),
            };
        }
        Ok(out)
    }

    /// Forgets the whole history: watches and reads at any older resourceVersion now get
    /// `Expired` (what `etcdctl compact` plus an apiserver restart do).
    pub fn compact(&mut self) {
        self.history.clear();
        self.oldest = self.rv;
    }

    fn check(&self, rv: u64) -> Result<(), StoreError> {
        if rv < self.oldest {
            Err(StoreError::Expired {
                requested: rv,
                oldest: self.oldest,
            })
        } else if rv > self.rv {
            Err(StoreError::TooLarge {
                requested: rv,
                current: self.rv,
            })
        } else {
            Ok(())
        }
    }
}

/// Writes `metadata.resourceVersion` (a decimal string, as kube-apiserver sends it).
pub fn set_resource_version(obj: &mut Value, rv: u64) {
    if let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.insert("resourceVersion".into(), Value::String(rv.to_string()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn svc(ns: &str, name: &str, port: u16) -> (ObjectKey, Value) {
        (
            ObjectKey::new(Kind::Service, ns, name),
            json!({"metadata": {"name": name, "namespace": ns}, "spec": {"ports": [{"port": port}]}}),
        )
    }

    fn rv_of(v: &Value) -> &str {
        v["metadata"]["resourceVersion"].as_str().unwrap()
    }

    #[test]
    fn changes_carry_a_global_counter_and_last_state() {
        let mut s = Store::new(100);
        let (k, v) = svc("default", "web", 80);
        let a = s.put(k.clone(), v);
        assert_eq!((a.rv, a.event), (2, EventType::Added));
        let (kn, vn) = (
            ObjectKey::new(Kind::Node, "ignored", "node1"),
            json!({"metadata": {"name": "node1"}}),
        );
        assert_eq!(kn.namespace, "");
        s.put(kn, vn);
        let (_, v2) = svc("default", "web", 81);
        let m = s.put(k.clone(), v2);
        assert_eq!((m.rv, m.event), (4, EventType::Modified));
        assert_eq!(m.prev.as_ref().map(rv_of), Some("2"));
        assert_eq!(rv_of(s.get(&k).unwrap()), "4");
        let d = s.remove(&k).unwrap();
        assert_eq!(
            (d.rv, d.event, rv_of(&d.object)),
            (5, EventType::Deleted, "5")
        );
        assert_eq!(d.object["spec"]["ports"][0]["port"], 81);
        assert!(s.remove(&k).is_none());
        assert_eq!(s.resource_version(), 5);
        let since: Vec<u64> = s.changes_since(2).unwrap().iter().map(|c| c.rv).collect();
        assert_eq!(since, [3, 4, 5]);
        assert!(s.changes_since(5).unwrap().is_empty());
        assert_eq!(
            s.changes_since(6),
            Err(StoreError::TooLarge {
                requested: 6,
                current: 5
            })
        );
    }

    #[test]
    fn objects_are_listed_in_key_order_per_kind_and_namespace() {
        let mut s = Store::new(100);
        for (ns, name) in [("b", "x"), ("a", "z"), ("a", "y"), ("c", "w")] {
            let (k, v) = svc(ns, name, 80);
            s.put(k, v);
        }
        s.put(
            ObjectKey::new(Kind::Pod, "a", "p"),
            json!({"metadata": {"name": "p"}}),
        );
        let all: Vec<String> = s
            .objects(Kind::Service, None)
            .map(|(k, _)| k.to_string())
            .collect();
        assert_eq!(
            all,
            [
                "services/a/y",
                "services/a/z",
                "services/b/x",
                "services/c/w"
            ]
        );
        let a: Vec<String> = s
            .objects(Kind::Service, Some("a"))
            .map(|(k, _)| k.name.clone())
            .collect();
        assert_eq!(a, ["y", "z"]);
        assert_eq!(s.objects(Kind::Pod, Some("b")).count(), 0);
        assert_eq!(s.objects(Kind::Node, None).count(), 0);
    }

    #[test]
    fn snapshots_undo_later_history() {
        let mut s = Store::new(100);
        let (k1, v1) = svc("d", "one", 80);
        let (k2, v2) = svc("d", "two", 80);
        s.put(k1.clone(), v1); // 2
        s.put(k2.clone(), v2); // 3
        let (_, v1b) = svc("d", "one", 81);
        s.put(k1.clone(), v1b); // 4
        s.remove(&k2); // 5
        let at = |rv| {
            s.snapshot(Kind::Service, Some("d"), rv)
                .unwrap()
                .into_iter()
                .map(|(k, v)| format!("{}:{}:{}", k.name, rv_of(&v), v["spec"]["ports"][0]["port"]))
                .collect::<Vec<_>>()
        };
        assert_eq!(at(1), Vec::<String>::new());
        assert_eq!(at(3), ["one:2:80", "two:3:80"]);
        assert_eq!(at(4), ["one:4:81", "two:3:80"]);
        assert_eq!(at(5), ["one:4:81"]);
    }

    #[test]
    fn compaction_expires_older_versions() {
        let mut s = Store::new(100);
        let (k, v) = svc("d", "one", 80);
        s.put(k.clone(), v.clone());
        s.compact();
        assert_eq!(s.oldest(), 2);
        assert_eq!(
            s.changes_since(1),
            Err(StoreError::Expired {
                requested: 1,
                oldest: 2
            })
        );
        assert_eq!(
            StoreError::Expired {
                requested: 1,
                oldest: 2
            }
            .to_string(),
            "too old resource version: 1 (2)"
        );
        assert!(s.changes_since(2).unwrap().is_empty());
        assert!(s.snapshot(Kind::Service, None, 1).is_err());
        s.put(k, v);
        assert_eq!(s.changes_since(2).unwrap().len(), 1);
    }

    #[test]
    fn the_history_limit_compacts_the_oldest_changes() {
        let mut s = Store::new(2);
        for port in 1..=4 {
            let (k, v) = svc("d", "one", port);
            s.put(k, v); // rv 2..=5
        }
        assert_eq!(s.oldest(), 3);
        assert!(s.changes_since(2).is_err());
        let since: Vec<u64> = s.changes_since(3).unwrap().iter().map(|c| c.rv).collect();
        assert_eq!(since, [4, 5]);
    }
}
