//! The write and read operations behind the verbs, shared by the HTTP layer and the handle:
//! each runs under the store lock, so a check and the write it guards are one step.
//!
//! ```text
//!   create   body ─ place, stamp, decode, check ─> lock: namespace? exists? defaults ─> put
//!   replace  body ─ place, decode, check ─> lock: stored? resourceVersion? carry over ─> put
//!   patch    lock: stored ─ patch ─ place, decode, check, carry over ─> put
//!   delete   lock: stored? preconditions ─> (namespace: its objects first) ─> remove
//!   read     lock: a page of current or historical objects, selected and paginated
//! ```
//! Writes that change nothing commit nothing (no new resourceVersion, no event), as
//! kube-apiserver skips them.

use serde_json::{Value, json};

use super::object::{
    self, Allocated, StatusFrom, apply_defaults, carry_over, check_meta, decode, place,
    stamp_create,
};
use super::patch::{self, PatchError};
use super::query::{ContinueToken, ListOptions, ResourceVersion, VersionMatch, WriteOptions};
use super::resource::{Kind, ResourcePath, Subresource};
use super::server::Shared;
use super::status::ApiError;
use super::store::{ObjectKey, Store};

/// The kind of PATCH body (its `Content-Type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PatchType {
    /// `application/merge-patch+json`.
    Merge,
    /// `application/strategic-merge-patch+json`.
    Strategic,
    /// `application/json-patch+json`.
    Json,
    /// `application/apply-patch+yaml` (server-side apply, approximated: the object is created
    /// if missing, otherwise the intent is merged in strategically; no field ownership).
    Apply,
}

impl PatchType {
    /// The patch type of a `Content-Type` value.
    pub(crate) fn from_content_type(ct: &str) -> Option<PatchType> {
        match ct.split(';').next().unwrap_or("").trim() {
            "application/merge-patch+json" => Some(PatchType::Merge),
            "application/strategic-merge-patch+json" => Some(PatchType::Strategic),
            "application/json-patch+json" => Some(PatchType::Json),
            "application/apply-patch+yaml" | "application/apply-patch+cbor" => {
                Some(PatchType::Apply)
            }
            _ => None,
        }
    }
}

/// The media types a PATCH may use (for the 415 answer).
pub(crate) const PATCH_TYPES: &str = "application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml, application/strategic-merge-patch+json";

/// Now, in whole seconds (jiff is built without its clock here).
pub(crate) fn now() -> k8s_openapi::jiff::Timestamp {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(0))
        .unwrap_or(0);
    k8s_openapi::jiff::Timestamp::from_second(secs)
        .unwrap_or(k8s_openapi::jiff::Timestamp::UNIX_EPOCH)
}

/// Now, as a creationTimestamp (RFC 3339, whole seconds).
pub(crate) fn now_rfc3339() -> String {
    now().to_string()
}

fn check_type(kind: Kind, body: &Value) -> Result<(), ApiError> {
    let av = body.get("apiVersion").and_then(Value::as_str);
    let k = body.get("kind").and_then(Value::as_str);
    match (av, k) {
        (Some(av), Some(k)) if av == kind.api_version() && k == kind.info().kind => Ok(()),
        (Some(av), Some(k)) => Err(ApiError::bad_request(format!(
            "the object's type ({av}, {k}) does not match the path's ({}, {})",
            kind.api_version(),
            kind.info().kind
        ))),
        _ => Err(ApiError::bad_request(format!(
            "Object 'Kind' is missing in '{}'",
            truncate(&body.to_string(), 200)
        ))),
    }
}

fn truncate(s: &str, n: usize) -> &str {
    match s.char_indices().nth(n) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

fn name_of(obj: &Value) -> String {
    obj.pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string()
}

fn namespace_of(obj: &Value) -> String {
    obj.pointer("/metadata/namespace")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string()
}

fn rv_of(obj: &Value) -> &str {
    obj.pointer("/metadata/resourceVersion")
        .and_then(Value::as_str)
        .unwrap_or("")
}

/// The key under which a placed object is stored.
pub(crate) fn key_of(kind: Kind, obj: &Value) -> ObjectKey {
    ObjectKey::new(kind, &namespace_of(obj), &name_of(obj))
}

fn allocated(store: &Store) -> Allocated {
    Allocated::from_services(store.objects(Kind::Service, None).map(|(_, v)| v))
}

/// Stores `new` under `key` unless it equals what is stored (ignoring the resourceVersion);
/// returns what is stored afterwards and the new resourceVersion, if one was committed.
fn write(
    shared: &Shared,
    store: &mut Store,
    key: ObjectKey,
    new: Value,
    dry_run: bool,
) -> (Value, bool) {
    if let Some(old) = store.get(&key) {
        let mut cmp = new.clone();
        crate::apiserver::store::set_resource_version(&mut cmp, 0);
        let mut old_cmp = old.clone();
        crate::apiserver::store::set_resource_version(&mut old_cmp, 0);
        if cmp == old_cmp {
            return (old.clone(), false);
        }
    }
    if dry_run {
        return (new, false);
    }
    let change = store.put(key, new);
    shared.notify(change.rv);
    (change.object.clone(), true)
}

/// Creates the namespace `ns` if it is missing (handle writes only).
fn ensure_namespace(shared: &Shared, store: &mut Store, ns: &str) -> Result<(), ApiError> {
    let key = ObjectKey::new(Kind::Namespace, "", ns);
    if store.get(&key).is_some() {
        return Ok(());
    }
    let mut obj = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}});
    stamp_create(&mut obj, &shared.new_uid(), &now_rfc3339());
    check_meta(Kind::Namespace, &obj)?;
    apply_defaults(
        Kind::Namespace,
        &mut obj,
        None,
        &shared.ranges,
        Allocated::default,
    )?;
    write(shared, store, key, obj, false);
    Ok(())
}

impl Shared {
    /// POST: creates an object of `kind` in `namespace` (from the path).
    pub(crate) fn create(
        &self,
        kind: Kind,
        namespace: Option<&str>,
        body: Value,
        w: &WriteOptions,
    ) -> Result<Value, ApiError> {
        let mut store = self.store();
        self.create_in(&mut store, kind, namespace, body, w)
    }

    fn create_in(
        &self,
        store: &mut Store,
        kind: Kind,
        namespace: Option<&str>,
        mut body: Value,
        w: &WriteOptions,
    ) -> Result<Value, ApiError> {
        check_type(kind, &body)?;
        place(kind, &mut body, namespace)?;
        stamp_create(&mut body, &self.new_uid(), &now_rfc3339());
        let mut obj = decode(kind, &body, w.strict)?;
        check_meta(kind, &obj)?;
        let key = key_of(kind, &obj);
        if kind.info().namespaced
            && store
                .get(&ObjectKey::new(Kind::Namespace, "", &key.namespace))
                .is_none()
        {
            return Err(ApiError::not_found(Kind::Namespace, &key.namespace));
        }
        if store.get(&key).is_some() {
            return Err(ApiError::already_exists(kind, &key.name));
        }
        apply_defaults(kind, &mut obj, None, &self.ranges, || allocated(store))?;
        Ok(write(self, store, key, obj, w.dry_run).0)
    }

    /// PUT: replaces the object at `path` (or only its status, for `/status`).
    pub(crate) fn replace(
        &self,
        path: &ResourcePath,
        mut body: Value,
        w: &WriteOptions,
    ) -> Result<Value, ApiError> {
        let kind = path.kind;
        let url_name = path.name.as_deref().unwrap_or("");
        check_type(kind, &body)?;
        place(kind, &mut body, path.namespace.as_deref())?;
        if name_of(&body) != url_name {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({}) does not match the name on the URL ({url_name})",
                name_of(&body)
            )));
        }
        let given_rv = rv_of(&body).to_string();
        let obj = decode(kind, &body, w.strict)?;
        check_meta(kind, &obj)?;
        let key = key_of(kind, &obj);
        let mut store = self.store();
        let old = store
            .get(&key)
            .cloned()
            .ok_or_else(|| ApiError::not_found(kind, &key.name))?;
        if !given_rv.is_empty() && given_rv != rv_of(&old) {
            return Err(ApiError::stale(kind, &key.name));
        }
        let status = match path.subresource {
            Some(Subresource::Status) => StatusFrom::GivenOnly,
            None => StatusFrom::Stored,
        };
        self.finish_update(&mut store, kind, key, obj, &old, status, w.dry_run)
    }

    #[allow(clippy::too_many_arguments)]
    fn finish_update(
        &self,
        store: &mut Store,
        kind: Kind,
        key: ObjectKey,
        mut obj: Value,
        old: &Value,
        status: StatusFrom,
        dry_run: bool,
    ) -> Result<Value, ApiError> {
        carry_over(kind, &mut obj, old, status)
            .map_err(|why| ApiError::conflict(kind, &key.name, &why))?;
        apply_defaults(kind, &mut obj, Some(old), &self.ranges, || allocated(store))?;
        Ok(write(self, store, key, obj, dry_run).0)
    }

    /// PATCH: applies `patch` to the object at `path`; `(object, created)`. Runs under the
    /// lock, so a patch never conflicts with a concurrent write (kube-apiserver retries).
    pub(crate) fn patch(
        &self,
        path: &ResourcePath,
        ty: PatchType,
        patch: &Value,
        w: &WriteOptions,
    ) -> Result<(Value, bool), ApiError> {
        let kind = path.kind;
        let name = path.name.as_deref().unwrap_or("");
        let key = ObjectKey::new(kind, path.namespace.as_deref().unwrap_or(""), name);
        let mut store = self.store();
        let Some(old) = store.get(&key).cloned() else {
            if ty == PatchType::Apply && path.subresource.is_none() {
                let mut body = patch.clone();
                if name_of(&body).is_empty() && body.is_object() {
                    body["metadata"]["name"] = json!(name);
                }
                let created =
                    self.create_in(&mut store, kind, path.namespace.as_deref(), body, w)?;
                return Ok((created, true));
            }
            return Err(ApiError::not_found(kind, name));
        };
        let mut new = old.clone();
        match ty {
            PatchType::Merge => {
                if !patch.is_object() {
                    return Err(
                        PatchError::Invalid("a merge patch must be a JSON object".into()).into(),
                    );
                }
                patch::merge_patch(&mut new, patch)
            }
            PatchType::Strategic | PatchType::Apply => {
                patch::strategic_merge_patch(kind, &mut new, patch)?
            }
            PatchType::Json => patch::json_patch(&mut new, patch)?,
        }
        if rv_of(&new) != rv_of(&old) {
            return Err(ApiError::stale(kind, name));
        }
        if name_of(&new) != name || (kind.info().namespaced && namespace_of(&new) != key.namespace)
        {
            return Err(ApiError::bad_request(
                "a patch may not change the object's name or namespace",
            ));
        }
        place(kind, &mut new, path.namespace.as_deref())?;
        let new = decode(kind, &new, w.strict)?;
        check_meta(kind, &new)?;
        let status = match path.subresource {
            Some(Subresource::Status) => StatusFrom::GivenOnly,
            None => StatusFrom::Stored,
        };
        self.finish_update(&mut store, kind, key, new, &old, status, w.dry_run)
            .map(|o| (o, false))
    }

    /// DELETE of one object, honouring `preconditions` (uid, resourceVersion). Deleting a
    /// Namespace deletes the objects in it first. Returns the deleted object's last state.
    pub(crate) fn delete(
        &self,
        kind: Kind,
        namespace: &str,
        name: &str,
        preconditions: &Value,
        dry_run: bool,
    ) -> Result<Value, ApiError> {
        let key = ObjectKey::new(kind, namespace, name);
        let mut store = self.store();
        let old = store
            .get(&key)
            .cloned()
            .ok_or_else(|| ApiError::not_found(kind, name))?;
        for (field, pointer) in [
            ("UID", "/metadata/uid"),
            ("ResourceVersion", "/metadata/resourceVersion"),
        ] {
            let want = preconditions
                .get(if field == "UID" {
                    "uid"
                } else {
                    "resourceVersion"
                })
                .and_then(Value::as_str);
            let have = old.pointer(pointer).and_then(Value::as_str).unwrap_or("");
            if let Some(want) = want
                && want != have
            {
                return Err(ApiError::conflict(
                    kind,
                    name,
                    &format!(
                        "Precondition failed: {field} in precondition: {want}, {field} in object meta: {have}"
                    ),
                ));
            }
        }
        if dry_run {
            return Ok(old);
        }
        if kind == Kind::Namespace {
            let inside: Vec<ObjectKey> = Kind::ALL
                .into_iter()
                .filter(|k| k.info().namespaced)
                .flat_map(|k| {
                    store
                        .objects(k, Some(name))
                        .map(|(key, _)| key.clone())
                        .collect::<Vec<_>>()
                })
                .collect();
            for k in inside {
                if let Some(c) = store.remove(&k) {
                    self.notify(c.rv);
                }
            }
        }
        let change = store
            .remove(&key)
            .ok_or_else(|| ApiError::not_found(kind, name))?;
        self.notify(change.rv);
        Ok(change.object.clone())
    }

    /// Creates or replaces `obj` as given (test setup through the handle): its namespace is
    /// created when missing, its status is taken as given, system fields are stamped.
    pub(crate) fn apply_direct(&self, mut obj: Value) -> Result<Value, ApiError> {
        let kind = object::kind_of(&obj)?;
        place(kind, &mut obj, None)?;
        let mut store = self.store();
        let key = key_of(kind, &obj);
        match store.get(&key).cloned() {
            None => {
                stamp_create(&mut obj, &self.new_uid(), &now_rfc3339());
                let mut obj = decode(kind, &obj, false)?;
                check_meta(kind, &obj)?;
                if kind.info().namespaced {
                    ensure_namespace(self, &mut store, &key.namespace)?;
                }
                apply_defaults(kind, &mut obj, None, &self.ranges, || allocated(&store))?;
                Ok(write(self, &mut store, key, obj, false).0)
            }
            Some(old) => {
                let obj = decode(kind, &obj, false)?;
                check_meta(kind, &obj)?;
                let mut obj = obj;
                if let Some(m) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
                    m.remove("uid");
                }
                self.finish_update(&mut store, kind, key, obj, &old, StatusFrom::Given, false)
            }
        }
    }

    /// GET of one object.
    pub(crate) fn get(&self, kind: Kind, namespace: &str, name: &str) -> Result<Value, ApiError> {
        let key = ObjectKey::new(kind, namespace, name);
        self.store()
            .get(&key)
            .cloned()
            .ok_or_else(|| ApiError::not_found(kind, name))
    }

    /// A list page: the selected objects in key order, the resourceVersion they were read
    /// at, the continue token and remaining count. `Err(TooLarge)` answers are the caller's to
    /// wait out (kube-apiserver waits up to 3 s for its cache to catch up).
    pub(crate) fn list(
        &self,
        kind: Kind,
        namespace: Option<&str>,
        o: &ListOptions,
    ) -> Result<Page, ApiError> {
        let store = self.store();
        let current = store.resource_version();
        let (at, after) = match (&o.continue_token, o.resource_version, o.version_match) {
            (Some(t), _, _) => (t.rv, Some((t.namespace.clone(), t.name.clone()))),
            (None, ResourceVersion::At(n), Some(VersionMatch::Exact)) => (n, None),
            (None, ResourceVersion::At(n), _) if n > current => {
                return Err(super::store::StoreError::TooLarge {
                    requested: n,
                    current,
                }
                .into());
            }
            _ => (current, None),
        };
        // Reads at the current version walk the store; older ones a reconstructed snapshot.
        let snapshot;
        let objects: Box<dyn Iterator<Item = (&ObjectKey, &Value)>> = if at == current {
            Box::new(store.objects(kind, namespace))
        } else {
            snapshot = store
                .snapshot(kind, namespace, at)
                .map_err(|e| expired(e, o.continue_token.is_some()))?;
            Box::new(snapshot.iter())
        };
        let mut selected = objects.filter(|(k, v)| {
            after
                .as_ref()
                .is_none_or(|(ns, name)| (&k.namespace, &k.name) > (ns, name))
                && o.label_selector.matches(v)
                && o.field_selector.matches(kind, v)
        });
        // resourceVersion=0 is served from the (always fresh) cache, which ignores `limit`.
        let limit = o
            .limit
            .filter(|_| o.resource_version != ResourceVersion::Any);
        let mut items: Vec<(&ObjectKey, &Value)> = Vec::new();
        let mut continue_token = None;
        let mut remaining = None;
        for (k, v) in selected.by_ref() {
            if limit.is_some_and(|l| items.len() >= l) {
                let rest = 1 + selected.by_ref().count();
                if let Some((last, _)) = items.last() {
                    let token = ContinueToken {
                        rv: at,
                        namespace: last.namespace.clone(),
                        name: last.name.clone(),
                    };
                    continue_token = Some(token.encode());
                }
                remaining = (!o.has_selectors()).then_some(rest);
                break;
            }
            items.push((k, v));
        }
        Ok(Page {
            items: items.into_iter().map(|(_, v)| v.clone()).collect(),
            resource_version: at,
            continue_token,
            remaining,
        })
    }
}

/// The 410 answers of a list whose version was compacted away (with or without a continue
/// token), in kube-apiserver's words.
fn expired(e: super::store::StoreError, continuing: bool) -> ApiError {
    let message = match (e, continuing) {
        (super::store::StoreError::Expired { .. }, true) => {
            "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter."
        }
        (super::store::StoreError::Expired { .. }, false) => {
            "The resourceVersion for the provided list is too old."
        }
        (e, _) => return e.into(),
    };
    ApiError {
        code: 410,
        reason: "Expired",
        message: message.into(),
        details: None,
    }
}

/// One page of a list.
#[derive(Debug, Clone)]
pub(crate) struct Page {
    pub(crate) items: Vec<Value>,
    pub(crate) resource_version: u64,
    pub(crate) continue_token: Option<String>,
    pub(crate) remaining: Option<usize>,
}
