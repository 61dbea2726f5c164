//! The HTTP face: one axum fallback handler that routes kube-apiserver's paths to discovery
//! documents and to the verbs on the served kinds, negotiates the response format and answers
//! failures with Status objects.
//!
//! ```text
//!   request ─ partitioned? hold ─> /version /api /apis /api/v1 /apis/{g}[/{v}]   discovery
//!                                  /api/v1/..., /apis/discovery.k8s.io/v1/...    GET list watch
//!                                                                                POST PUT PATCH DELETE
//!           ─> response (JSON | Table | PartialObjectMetadata | watch stream) ─> request log
//! ```

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use super::discovery;
use super::openapi;
use super::ops::{PATCH_TYPES, PatchType};
use super::query::{Format, ListOptions, ResourceVersion, WriteOptions, negotiate};
use super::resource::{Kind, ResourcePath};
use super::server::{RequestRecord, Shared, Verb};
use super::status::ApiError;
use super::table;
use super::watch;

/// What every request handler can reach.
#[derive(Clone)]
pub(crate) struct Ctx {
    pub(crate) shared: Arc<Shared>,
    pub(crate) shutdown: CancellationToken,
}

/// The router: everything goes through [`dispatch`].
pub(crate) fn router(ctx: Ctx) -> axum::Router {
    axum::Router::new().fallback(dispatch).with_state(ctx)
}

/// The largest request body accepted (kube-apiserver's limit is 3 MiB per object; lists of
/// patches can be larger).
const MAX_BODY: usize = 64 << 20;

fn json_response(code: StatusCode, v: &Value, content_type: &'static str) -> Response {
    let body = serde_json::to_vec(v).unwrap_or_default();
    let mut r = (code, body).into_response();
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    r
}

fn ok(v: &Value) -> Response {
    json_response(StatusCode::OK, v, "application/json")
}

/// A list item as kube-apiserver writes built-in kinds: without `kind` and `apiVersion`
/// (serialized from the stored value, no copy).
struct Untyped<'a>(&'a Value);

impl serde::Serialize for Untyped<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        match self.0 {
            Value::Object(m) => {
                let mut map = s.serialize_map(None)?;
                for (k, v) in m.iter().filter(|(k, _)| *k != "kind" && *k != "apiVersion") {
                    map.serialize_entry(k, v)?;
                }
                map.end()
            }
            other => other.serialize(s),
        }
    }
}

#[derive(serde::Serialize)]
struct ListDoc<'a> {
    kind: String,
    #[serde(rename = "apiVersion")]
    api_version: &'a str,
    metadata: Value,
    items: Vec<Untyped<'a>>,
}

/// A `<Kind>List` answer, serialized straight from the items.
fn list_response(kind: String, api_version: &str, items: &[Value], metadata: Value) -> Response {
    let doc = ListDoc {
        kind,
        api_version,
        metadata,
        items: items.iter().map(Untyped).collect(),
    };
    let mut r = (StatusCode::OK, serde_json::to_vec(&doc).unwrap_or_default()).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

fn error_response(e: &ApiError) -> Response {
    let code = StatusCode::from_u16(e.code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    json_response(code, &e.status(), "application/json")
}

struct Req {
    method: Method,
    path: String,
    query: String,
    accept: Option<String>,
    content_type: String,
    body: bytes::Bytes,
}

async fn dispatch(State(ctx): State<Ctx>, req: Request) -> Response {
    if !ctx.shared.pass_partition(&ctx.shutdown).await {
        return error_response(&ApiError::unavailable());
    }
    let (parts, body) = req.into_parts();
    let header = |h: header::HeaderName| {
        parts
            .headers
            .get(h)
            .and_then(|v| v.to_str().ok())
            .map(String::from)
    };
    let body = match axum::body::to_bytes(body, MAX_BODY).await {
        Ok(b) => b,
        Err(e) => {
            return error_response(&ApiError::bad_request(format!(
                "cannot read the request body: {e}"
            )));
        }
    };
    let r = Req {
        method: parts.method.clone(),
        path: parts.uri.path().to_string(),
        query: parts.uri.query().unwrap_or("").to_string(),
        accept: header(header::ACCEPT),
        content_type: header(header::CONTENT_TYPE).unwrap_or_default(),
        body,
    };
    let (verb, kind, result) = route(&ctx, &r).await;
    let resp = result.unwrap_or_else(|e| error_response(&e));
    let record = RequestRecord {
        verb,
        kind,
        method: r.method.to_string(),
        path: r.path,
        query: r.query,
        code: resp.status().as_u16(),
    };
    ctx.shared
        .log
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .record(record);
    resp
}

async fn route(ctx: &Ctx, r: &Req) -> (Verb, Option<Kind>, Result<Response, ApiError>) {
    if let Some(res) = discovery_route(ctx, r) {
        return (Verb::Discovery, None, res);
    }
    match r.path.as_str() {
        "/healthz" | "/livez" | "/readyz" => return (Verb::Other, None, Ok("ok".into_response())),
        "/openapi/v3" | "/openapi/v3/" => {
            return (Verb::Discovery, None, Ok(ok(&openapi::index())));
        }
        p if p.starts_with("/openapi/v3/") => {
            let doc = openapi::group_version(&p["/openapi/v3/".len()..])
                .ok_or_else(ApiError::no_such_path);
            return (Verb::Discovery, None, doc.map(|d| ok(&d)));
        }
        // No OpenAPI v2 (kubectl reads it only as protobuf, and copes without it).
        p if p.starts_with("/openapi/") || p.starts_with("/swagger") => {
            return (Verb::Discovery, None, Err(ApiError::no_such_path()));
        }
        _ => {}
    }
    let Some(path) = ResourcePath::parse(&r.path) else {
        return (Verb::Other, None, Err(ApiError::no_such_path()));
    };
    let kind = Some(path.kind);
    let named = path.name.is_some();
    let verb = match (&r.method, named) {
        (&Method::GET, true) => Verb::Get,
        (&Method::GET, false) => {
            if r.query
                .split('&')
                .any(|p| p == "watch=true" || p == "watch=1")
            {
                Verb::Watch
            } else {
                Verb::List
            }
        }
        (&Method::POST, false) => Verb::Create,
        (&Method::PUT, true) => Verb::Update,
        (&Method::PATCH, true) => Verb::Patch,
        (&Method::DELETE, true) => Verb::Delete,
        (&Method::DELETE, false) => Verb::DeleteCollection,
        _ => return (Verb::Other, kind, Err(ApiError::method_not_allowed())),
    };
    let res = match verb {
        Verb::Get => get(ctx, r, &path),
        Verb::List | Verb::Watch => list_or_watch(ctx, r, &path).await,
        Verb::Create => create(ctx, r, &path),
        Verb::Update => replace(ctx, r, &path),
        Verb::Patch => patch(ctx, r, &path),
        Verb::Delete => delete(ctx, r, &path),
        Verb::DeleteCollection => delete_collection(ctx, r, &path).await,
        Verb::Discovery | Verb::Other => Err(ApiError::method_not_allowed()),
    };
    (verb, kind, res)
}

fn discovery_route(ctx: &Ctx, r: &Req) -> Option<Result<Response, ApiError>> {
    let segs: Vec<&str> = r.path.trim_end_matches('/').split('/').skip(1).collect();
    let doc = match segs.as_slice() {
        ["version"] => Some(discovery::version()),
        ["api"] | ["apis"] => {
            let core = segs[0] == "api";
            let accept = r.accept.as_deref();
            if negotiate(accept, &[Format::Json, Format::AggregatedDiscovery])
                == Some(Format::AggregatedDiscovery)
            {
                let doc = discovery::aggregated(core);
                return Some(Ok(json_response(
                    StatusCode::OK,
                    &doc,
                    discovery::AGGREGATED_CONTENT_TYPE,
                )));
            }
            Some(if core {
                let addr = *ctx.shared.addr.lock().unwrap_or_else(|p| p.into_inner());
                discovery::api_versions(&addr.to_string())
            } else {
                discovery::api_group_list()
            })
        }
        ["api", version] => discovery::api_resource_list("", version),
        ["apis", group] => discovery::api_group(group),
        ["apis", group, version] => discovery::api_resource_list(group, version),
        _ => return None,
    };
    if r.method != Method::GET {
        return Some(Err(ApiError::method_not_allowed()));
    }
    Some(doc.map(|d| ok(&d)).ok_or_else(ApiError::no_such_path))
}

fn format_of(r: &Req) -> Result<Format, ApiError> {
    negotiate(
        r.accept.as_deref(),
        &[Format::Json, Format::Table, Format::Metadata],
    )
    .ok_or_else(|| ApiError::not_acceptable(r.accept.as_deref().unwrap_or("")))
}

fn get(ctx: &Ctx, r: &Req, path: &ResourcePath) -> Result<Response, ApiError> {
    let format = format_of(r)?;
    let opts = ListOptions::parse(&r.query, path.kind)?;
    let obj = ctx.shared.get(
        path.kind,
        path.namespace.as_deref().unwrap_or(""),
        path.name.as_deref().unwrap_or(""),
    )?;
    Ok(ok(&match format {
        Format::Table => {
            let rv = obj
                .pointer("/metadata/resourceVersion")
                .and_then(Value::as_str)
                .unwrap_or("");
            table::table(
                path.kind,
                &[&obj],
                rv,
                None,
                opts.include_object,
                true,
                super::ops::now(),
            )
        }
        Format::Metadata => table::partial_metadata(&obj),
        _ => obj,
    }))
}

/// Waits (up to 3 s) until the store reaches `rv`, as kube-apiserver waits for its cache.
async fn wait_for_rv(shared: &Shared, rv: u64) {
    let mut rx = shared.rv.subscribe();
    let _ = tokio::time::timeout(Duration::from_secs(3), rx.wait_for(|cur| *cur >= rv)).await;
}

async fn list_or_watch(ctx: &Ctx, r: &Req, path: &ResourcePath) -> Result<Response, ApiError> {
    let format = format_of(r)?;
    let opts = ListOptions::parse(&r.query, path.kind)?;
    if opts.watch {
        let body = watch::start(
            ctx.shared.clone(),
            path.kind,
            path.namespace.clone(),
            opts,
            format,
            ctx.shutdown.clone(),
        )
        .await?;
        let mut resp = Response::new(body);
        resp.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        return Ok(resp);
    }
    if let ResourceVersion::At(n) = opts.resource_version {
        wait_for_rv(&ctx.shared, n).await;
    }
    let page = ctx
        .shared
        .list(path.kind, path.namespace.as_deref(), &opts)?;
    let rv = page.resource_version.to_string();
    Ok(match format {
        Format::Table => {
            let refs: Vec<&Value> = page.items.iter().collect();
            let now = super::ops::now();
            let t = table::table(
                path.kind,
                &refs,
                &rv,
                page.continue_token.as_deref(),
                opts.include_object,
                true,
                now,
            );
            ok(&t)
        }
        Format::Metadata => {
            let items: Vec<Value> = page.items.iter().map(table::partial_metadata).collect();
            list_response(
                "PartialObjectMetadataList".into(),
                "meta.k8s.io/v1",
                &items,
                list_meta(&page),
            )
        }
        _ => list_response(
            path.kind.list_kind(),
            path.kind.api_version(),
            &page.items,
            list_meta(&page),
        ),
    })
}

fn list_meta(page: &super::ops::Page) -> Value {
    let mut meta = json!({"resourceVersion": page.resource_version.to_string()});
    if let Some(c) = &page.continue_token {
        meta["continue"] = json!(c);
    }
    if let Some(n) = page.remaining {
        meta["remainingItemCount"] = json!(n);
    }
    meta
}

fn parse_body(r: &Req) -> Result<Value, ApiError> {
    let ct = r.content_type.split(';').next().unwrap_or("").trim();
    let yaml = ct == "application/yaml" || ct == "application/apply-patch+yaml";
    let json_like = ct.is_empty() || ct == "application/json" || ct.ends_with("+json");
    if yaml {
        serde_yaml::from_slice(&r.body)
            .map_err(|e| ApiError::bad_request(format!("cannot parse the YAML body: {e}")))
    } else if json_like {
        serde_json::from_slice(&r.body)
            .map_err(|e| ApiError::bad_request(format!("cannot parse the JSON body: {e}")))
    } else {
        Err(ApiError::unsupported_media_type(
            ct,
            "application/json, application/yaml",
        ))
    }
}

fn create(ctx: &Ctx, r: &Req, path: &ResourcePath) -> Result<Response, ApiError> {
    if path.kind.info().namespaced && path.namespace.is_none() {
        return Err(ApiError::method_not_allowed());
    }
    let w = WriteOptions::parse(&r.query)?;
    let obj = ctx
        .shared
        .create(path.kind, path.namespace.as_deref(), parse_body(r)?, &w)?;
    Ok(json_response(StatusCode::CREATED, &obj, "application/json"))
}

fn replace(ctx: &Ctx, r: &Req, path: &ResourcePath) -> Result<Response, ApiError> {
    let w = WriteOptions::parse(&r.query)?;
    Ok(ok(&ctx.shared.replace(path, parse_body(r)?, &w)?))
}

fn patch(ctx: &Ctx, r: &Req, path: &ResourcePath) -> Result<Response, ApiError> {
    let ty = PatchType::from_content_type(&r.content_type)
        .ok_or_else(|| ApiError::unsupported_media_type(&r.content_type, PATCH_TYPES))?;
    let w = WriteOptions::parse(&r.query)?;
    let (obj, created) = ctx.shared.patch(path, ty, &parse_body(r)?, &w)?;
    let code = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok(json_response(code, &obj, "application/json"))
}

/// DeleteOptions from the body (`preconditions`, `dryRun`), empty when there is none.
fn delete_options(r: &Req) -> Result<(Value, bool), ApiError> {
    let mut w = WriteOptions::parse(&r.query)?;
    if r.body.iter().all(u8::is_ascii_whitespace) {
        return Ok((Value::Null, w.dry_run));
    }
    let opts = parse_body(r)?;
    if opts
        .get("dryRun")
        .and_then(Value::as_array)
        .is_some_and(|a| a.iter().any(|v| v == "All"))
    {
        w.dry_run = true;
    }
    Ok((
        opts.get("preconditions").cloned().unwrap_or(Value::Null),
        w.dry_run,
    ))
}

fn success(kind: Kind, obj: &Value) -> Value {
    let i = kind.info();
    let mut details = json!({
        "name": obj.pointer("/metadata/name").cloned().unwrap_or(Value::Null),
        "kind": i.plural,
        "uid": obj.pointer("/metadata/uid").cloned().unwrap_or(Value::Null),
    });
    if !i.group.is_empty() {
        details["group"] = json!(i.group);
    }
    json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "details": details})
}

fn delete(ctx: &Ctx, r: &Req, path: &ResourcePath) -> Result<Response, ApiError> {
    if path.subresource.is_some() {
        return Err(ApiError::method_not_allowed());
    }
    let (preconditions, dry_run) = delete_options(r)?;
    let ns = path.namespace.as_deref().unwrap_or("");
    let last = ctx.shared.delete(
        path.kind,
        ns,
        path.name.as_deref().unwrap_or(""),
        &preconditions,
        dry_run,
    )?;
    Ok(ok(&success(path.kind, &last)))
}

async fn delete_collection(ctx: &Ctx, r: &Req, path: &ResourcePath) -> Result<Response, ApiError> {
    let opts = ListOptions::parse(&r.query, path.kind)?;
    let (_, dry_run) = delete_options(r)?;
    let page = ctx.shared.list(
        path.kind,
        path.namespace.as_deref(),
        &ListOptions {
            limit: None,
            ..opts
        },
    )?;
    let mut deleted = Vec::new();
    for obj in page.items {
        let ns = obj
            .pointer("/metadata/namespace")
            .and_then(Value::as_str)
            .unwrap_or("");
        let name = obj
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or("");
        match ctx
            .shared
            .delete(path.kind, ns, name, &Value::Null, dry_run)
        {
            Ok(last) => deleted.push(last),
            Err(e) if e.code == 404 => {}
            Err(e) => return Err(e),
        }
    }
    let rv = ctx.shared.store().resource_version();
    let meta = json!({"resourceVersion": rv.to_string()});
    Ok(list_response(
        path.kind.list_kind(),
        path.kind.api_version(),
        &deleted,
        meta,
    ))
}
